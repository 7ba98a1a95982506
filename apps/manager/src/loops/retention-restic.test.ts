import { execFile, spawnSync } from 'node:child_process';
import { createCipheriv, createHash, randomBytes, randomInt, scryptSync } from 'node:crypto';
import { mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  planRetention,
  type RetentionBackup,
  type RetentionPolicy,
  retentionCountRules,
  wallClockIn,
  wallTimeToInstant,
} from './retention.js';

// The oracle: restic 0.14's own `forget --dry-run --json` on snapshots made with `restic backup --time` under
// TZ=<zone>, over randomly generated sets of timestamps that cross DST changes, ISO-week and month boundaries
// and leap days, compared with planRetention on the same instants: kept and removed sets, and the reasons.
//
// Replay a failure with the seed its test names: STOWAGE_RETENTION_SEED=<seed> npx vitest run <this file>.
// CI sets STOWAGE_REQUIRE_RESTIC=1: there a missing restic (or one that is not 0.14) fails instead of skipping.

const execFileAsync = promisify(execFile);
const required = process.env.STOWAGE_REQUIRE_RESTIC === '1';
const resticBinary = process.env.STOWAGE_RESTIC ?? 'restic';
const unavailable = resticUnavailableReason();
const baseSeed = Number(process.env.STOWAGE_RETENTION_SEED ?? randomInt(2 ** 31));
const password = 'stowage-retention-oracle';

function resticUnavailableReason(): string | undefined {
  const version = spawnSync(resticBinary, ['version'], { encoding: 'utf8' });
  if (version.error !== undefined) return `${resticBinary} cannot run: ${version.error.message}`;
  if (!/^restic 0\.14\./.test(version.stdout)) {
    return `the semantics are restic 0.14's, and ${resticBinary} is ${version.stdout.trim() || 'unknown'}`;
  }
  return undefined;
}

describe.runIf(required && unavailable !== undefined)('restic (required by STOWAGE_REQUIRE_RESTIC=1)', () => {
  it('is installed', () => {
    expect.fail(`STOWAGE_REQUIRE_RESTIC=1 but restic cannot serve as the oracle: ${unavailable}`);
  });
});

// --- a seeded PRNG --------------------------------------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return {
    next,
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    chance: (p: number) => next() < p,
  };
}
type Random = ReturnType<typeof prng>;

// --- time helpers ---------------------------------------------------------------------------------------

const hour = 3_600_000;
const day = 24 * hour;

function offsetAt(zone: string, time: number): number {
  const wall = wallClockIn(zone, new Date(time));
  return (
    Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second) -
    (time - (time % 1000))
  );
}

/** Instants at which the zone's offset changes, in [from, to). */
function transitions(zone: string, from: number, to: number): number[] {
  const found: number[] = [];
  for (let at = from; at < to; at += day) {
    if (offsetAt(zone, at) === offsetAt(zone, at + day)) continue;
    let low = at;
    let high = at + day;
    while (high - low > 1000) {
      const middle = low + Math.floor((high - low) / 2000) * 1000;
      if (offsetAt(zone, middle) === offsetAt(zone, low)) low = middle;
      else high = middle;
    }
    found.push(high);
  }
  return found;
}

/** Local midnight of a wall date in the zone (as Go resolves it). */
function localMidnight(zone: string, year: number, month: number, dayOfMonth: number): number {
  return wallTimeToInstant(zone, { year, month, day: dayOfMonth, hour: 0, minute: 0, second: 0 }).getTime();
}

const pad = (value: number, width = 2) => String(value).padStart(width, '0');

function formatWall(wall: {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}) {
  return `${pad(wall.year, 4)}-${pad(wall.month)}-${pad(wall.day)} ${pad(wall.hour)}:${pad(wall.minute)}:${pad(wall.second)}`;
}

/**
 * What to run `restic backup --time` with so that it records exactly `time`: the zone's wall clock under
 * TZ=<zone>, unless that wall time is ambiguous and Go would pick the other instant (the second pass through
 * a fall-back hour): then the wall clock of the instant's own offset under a fixed-offset zone (Etc/GMT-1 is
 * UTC+1), which restic records with the same offset, so that forget under TZ=<zone> reads it back in the
 * zone. Undefined when no such fixed zone exists (half-hour offsets).
 */
function resticTime(zone: string, time: number): { tz: string; wall: string } | undefined {
  const wall = wallClockIn(zone, new Date(time));
  if (wallTimeToInstant(zone, wall).getTime() === time) return { tz: zone, wall: formatWall(wall) };
  const offset = offsetAt(zone, time);
  if (offset % hour !== 0) return undefined;
  const hours = offset / hour;
  const tz = hours === 0 ? 'UTC' : hours > 0 ? `Etc/GMT-${hours}` : `Etc/GMT+${-hours}`;
  return { tz, wall: formatWall(wallClockIn('UTC', new Date(time + offset))) };
}

// --- generated sets ---------------------------------------------------------------------------------------

interface GeneratedSet {
  readonly name: string;
  readonly seed: number;
  readonly zone: string;
  readonly times: readonly number[];
  readonly policies: readonly RetentionPolicy[];
}

type Focus = 'dst' | 'iso-year' | 'month-end' | 'leap-day' | 'future';

interface SetPlan {
  readonly zone: string;
  readonly focus: readonly Focus[];
  readonly years: readonly [number, number];
}

const setPlans: readonly SetPlan[] = [
  { zone: 'UTC', focus: ['iso-year', 'leap-day', 'month-end'], years: [2019, 2025] },
  { zone: 'Europe/Berlin', focus: ['dst', 'dst', 'month-end'], years: [2023, 2026] },
  { zone: 'Europe/Berlin', focus: ['dst', 'iso-year', 'leap-day'], years: [2019, 2025] },
  { zone: 'America/New_York', focus: ['dst', 'dst', 'iso-year'], years: [2020, 2026] },
  { zone: 'Australia/Lord_Howe', focus: ['dst', 'dst', 'month-end'], years: [2021, 2026] },
  { zone: 'America/Santiago', focus: ['dst', 'leap-day', 'month-end'], years: [2022, 2025] },
  { zone: 'America/New_York', focus: ['future', 'iso-year', 'leap-day'], years: [2026, 2028] },
];

const now = Date.now();
const farFromNow = (time: number) => Math.abs(time - now) > 2 * day;

function randomWithin(random: Random): string {
  return random.pick([
    `${random.int(1, 3)}d`,
    `${random.int(1, 48)}h`,
    '1m',
    `${random.int(1, 2)}m${random.int(1, 5)}d`,
    '1y',
    `${random.int(1, 3)}d${random.int(1, 12)}h`,
    '1y1m1d1h',
    `${random.int(2, 6)}m`,
  ]);
}

function randomPolicy(random: Random): RetentionPolicy {
  const policy: Record<string, number | string> = {};
  for (const rule of retentionCountRules) if (random.chance(0.45)) policy[rule] = random.int(1, 7);
  if (random.chance(0.4) || Object.keys(policy).length === 0) policy.keep_within = randomWithin(random);
  return policy;
}

function generateSet(plan: SetPlan, index: number): GeneratedSet {
  const seed = (baseSeed + index * 0x9e3779b1) >>> 0;
  const random = prng(seed);
  const { zone } = plan;
  const [firstYear, lastYear] = plan.years;
  const rangeStart = Date.UTC(firstYear, 0, 1);
  const rangeEnd = Date.UTC(lastYear + 1, 0, 1);
  const times: number[] = [];
  const add = (time: number) => {
    const rounded = Math.round(time / 1000) * 1000;
    if (farFromNow(rounded) && resticTime(zone, rounded) !== undefined) times.push(rounded);
  };
  /** A cluster of backups before `start`, spaced log-uniformly between a minute and `spread`. */
  const cluster = (start: number, count: number, spread: number) => {
    let at = start;
    for (let i = 0; i < count; i++) {
      add(at);
      at -= Math.exp(Math.log(60_000) + random.next() * (Math.log(spread) - Math.log(60_000)));
    }
  };
  /** Backups every few minutes from two hours before a DST change to two hours after it. */
  const acrossChange = (transition: number) => {
    for (let at = transition - 2 * hour; at < transition + 2 * hour; at += random.int(6, 30) * 60_000)
      add(at);
  };

  // The probe: a DST change with dense backups across it, and the newest backup of the set at the middle of
  // the skipped or repeated wall times, a keep_within duration later. keep_within then puts its cutoff right
  // into the gap or overlap, where Go's resolution of a missing or doubled wall time decides. Everything
  // else in the set is older than the change.
  let probe: { transition: number; newest: number; within: string } | undefined;
  if (plan.focus.includes('dst')) {
    const days = random.int(1, 3);
    const shift = random.pick([
      { within: `${days}d`, fields: [0, 0, days], length: days * day },
      { within: '1m', fields: [0, 1, 0], length: 31 * day },
      { within: '1y', fields: [1, 0, 0], length: 366 * day },
    ] as const);
    const candidates = transitions(zone, rangeStart, Math.min(rangeEnd, now - shift.length - 4 * day));
    if (candidates.length > 0) {
      const transition = random.pick(candidates.slice(-3));
      const oldWall = transition + offsetAt(zone, transition - 1000);
      const newWall = transition + offsetAt(zone, transition);
      const middle = new Date(Math.min(oldWall, newWall) + Math.abs(newWall - oldWall) / 2);
      const newest = wallTimeToInstant(zone, {
        year: middle.getUTCFullYear() + shift.fields[0],
        month: middle.getUTCMonth() + 1 + shift.fields[1],
        day: middle.getUTCDate() + shift.fields[2],
        hour: middle.getUTCHours(),
        minute: middle.getUTCMinutes(),
        second: 0,
      }).getTime();
      probe = { transition, newest, within: shift.within };
    }
  }
  const latest = probe === undefined ? rangeEnd : probe.transition - 3 * hour;
  const randomTime = () => rangeStart + random.next() * (latest - rangeStart);
  const yearBefore = () => new Date(randomTime()).getUTCFullYear();

  let probed = false;
  for (const focus of plan.focus) {
    switch (focus) {
      case 'dst': {
        if (probe !== undefined && !probed) {
          probed = true;
          break;
        }
        const earlier = transitions(zone, rangeStart, latest - 3 * hour);
        if (earlier.length > 0) acrossChange(random.pick(earlier));
        break;
      }
      case 'iso-year': {
        const years = [2015, 2020, 2026, yearBefore()].filter(
          (y) => localMidnight(zone, y + 1, 1, 4) < latest,
        );
        const isoYear = years.length > 0 ? random.pick(years) : yearBefore();
        cluster(localMidnight(zone, isoYear + 1, 1, 4), random.int(6, 9), 3 * day);
        break;
      }
      case 'month-end': {
        const month = new Date(randomTime());
        cluster(
          localMidnight(zone, month.getUTCFullYear(), month.getUTCMonth() + 1, 1) + 4 * day,
          6,
          4 * day,
        );
        break;
      }
      case 'leap-day': {
        const leapYears = [2016, 2020, 2024, 2028].filter((y) => localMidnight(zone, y, 3, 2) < latest);
        if (leapYears.length > 0) {
          cluster(localMidnight(zone, random.pick(leapYears), 3, 2), random.int(5, 7), 2 * day);
        }
        break;
      }
      case 'future': {
        // Snapshots on both sides of now: restic measures keep_within from the newest one before now.
        cluster(now + random.int(10, 60) * day, random.int(3, 5), 20 * day);
        cluster(now - random.int(3, 40) * day, random.int(3, 5), 20 * day);
        break;
      }
    }
  }
  // A sprinkle over the years, for the monthly and yearly buckets.
  for (let i = random.int(3, 6); i > 0; i--) add(randomTime());
  if (probe !== undefined) {
    for (let i = times.length - 1; i >= 0; i--) if (times[i]! >= latest) times.splice(i, 1);
    acrossChange(probe.transition);
    add(probe.newest);
  }
  // Equal times happen (restic orders them arbitrarily; compared by time, the outcome is the same).
  if (times.length > 0 && random.chance(0.5)) times.push(random.pick(times));

  const policies: RetentionPolicy[] = [
    { keep_last: random.int(1, 5) },
    { keep_hourly: random.int(2, 8) },
    { keep_daily: random.int(2, 8) },
    { keep_weekly: random.int(2, 6) },
    { keep_monthly: random.int(2, 6) },
    { keep_yearly: random.int(1, 4) },
    ...(probe === undefined ? [] : [{ keep_within: probe.within }]),
    { keep_within: randomWithin(random) },
    randomPolicy(random),
    randomPolicy(random),
  ];
  const name = `${zone}, ${plan.focus.join('+')} (seed ${seed}, set ${index} of STOWAGE_RETENTION_SEED=${baseSeed})`;
  return { name, seed, zone, times, policies };
}

// --- restic -----------------------------------------------------------------------------------------------

/** Runs processes, at most `limit` at once (backups mostly wait: restic sleeps 200 ms after taking a lock). */
function limiter(limit: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(work: () => Promise<T>): Promise<T> => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    running += 1;
    try {
      return await work();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  };
}
const processes = limiter(8);

interface ResticSnapshot {
  readonly id: string;
  readonly time: string;
}
interface ResticForgetGroup {
  readonly keep: ResticSnapshot[] | null;
  readonly remove: ResticSnapshot[] | null;
  readonly reasons: { readonly matches: string[] }[] | null;
}

class ResticRepository {
  private readonly serial = limiter(1);

  private constructor(
    readonly directory: string,
    private readonly file: string,
  ) {}

  static async create(): Promise<ResticRepository> {
    const directory = await mkdtemp(join(tmpdir(), 'stowage-retention-restic-'));
    const file = join(directory, 'data');
    await writeFile(file, 'a small file\n');
    const repository = new ResticRepository(directory, file);
    await repository.run('UTC', ['init']);
    await repository.cheapenKey();
    return repository;
  }

  async run(tz: string, args: string[]): Promise<string> {
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.directory,
      TZ: tz,
      RESTIC_PASSWORD: password,
      RESTIC_REPOSITORY: join(this.directory, 'repo'),
    };
    return processes(async () => {
      const { stdout } = await execFileAsync(resticBinary, ['--no-cache', ...args], {
        env,
        cwd: this.directory,
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    });
  }

  /**
   * One backup at a time per repository: restic 0.14 taking a lock lists the others' locks and retries
   * loading one that was removed meanwhile for about 40 s ("Load(<lock/…>) returned error, retrying").
   */
  backup(tz: string, wall: string): Promise<string> {
    return this.serial(() =>
      this.run(tz, ['backup', '--quiet', '--time', wall, '--host', 'h', '--tag', 't', this.file]),
    );
  }

  async snapshots(): Promise<ResticSnapshot[]> {
    return JSON.parse(await this.run('UTC', ['--no-lock', 'snapshots', '--json'])) as ResticSnapshot[];
  }

  async forget(tz: string, policy: RetentionPolicy): Promise<ResticForgetGroup[]> {
    const output = await this.run(tz, ['--no-lock', 'forget', '--dry-run', '--json', ...resticFlags(policy)]);
    return JSON.parse(output) as ResticForgetGroup[];
  }

  /**
   * restic init calibrates scrypt to about half a second, and every later command pays it again to open
   * the key: a third of the test's time. The master key is re-wrapped under the same password with small
   * scrypt parameters (restic's key file format, design.rst "Keys, Encryption and MAC"), the original key
   * file removed. Nothing about snapshots or forget depends on it.
   */
  private async cheapenKey(): Promise<void> {
    const master = Buffer.from(await this.run('UTC', ['--no-lock', 'cat', 'masterkey']));
    const salt = randomBytes(64);
    const derived = scryptSync(password, salt, 64, { N: 1024, r: 8, p: 1 });
    const nonce = randomBytes(16);
    const cipher = createCipheriv('aes-256-ctr', derived.subarray(0, 32), nonce);
    const ciphertext = Buffer.concat([cipher.update(master), cipher.final()]);
    const data = Buffer.concat([nonce, ciphertext, poly1305Aes(ciphertext, nonce, derived.subarray(32, 64))]);
    const keyFile = Buffer.from(
      JSON.stringify({
        created: new Date().toISOString(),
        username: 'stowage',
        hostname: 'stowage',
        kdf: 'scrypt',
        N: 1024,
        r: 8,
        p: 1,
        salt: salt.toString('base64'),
        data: data.toString('base64'),
      }),
    );
    const keys = join(this.directory, 'repo', 'keys');
    const old = await readdir(keys);
    await writeFile(join(keys, createHash('sha256').update(keyFile).digest('hex')), keyFile, { mode: 0o400 });
    for (const name of old) await unlink(join(keys, name));
  }

  destroy(): Promise<void> {
    return rm(this.directory, { recursive: true, force: true });
  }
}

/** restic's MAC: Poly1305 keyed with r (masked) and s = AES-128_k(nonce); macKey is k ‖ r. */
function poly1305Aes(message: Buffer, nonce: Buffer, macKey: Buffer): Buffer {
  const aes = createCipheriv('aes-128-ecb', macKey.subarray(0, 16), null).setAutoPadding(false);
  const s = littleEndian(Buffer.concat([aes.update(nonce), aes.final()]));
  const r = littleEndian(macKey.subarray(16, 32)) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const p = (1n << 130n) - 5n;
  let accumulator = 0n;
  for (let at = 0; at < message.length; at += 16) {
    const block = message.subarray(at, at + 16);
    accumulator = ((accumulator + littleEndian(block) + (1n << BigInt(8 * block.length))) * r) % p;
  }
  let tag = (accumulator + s) & ((1n << 128n) - 1n);
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) {
    out[i] = Number(tag & 0xffn);
    tag >>= 8n;
  }
  return out;
}

function littleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
  return value;
}

function resticFlags(policy: RetentionPolicy): string[] {
  const flags: string[] = [];
  for (const rule of retentionCountRules) {
    const count = policy[rule];
    if (count !== undefined) flags.push(`--${rule.replace('_', '-')}`, String(count));
  }
  if (policy.keep_within !== undefined) flags.push('--keep-within', policy.keep_within);
  return flags;
}

// --- the comparison -----------------------------------------------------------------------------------------

/** Kept backups as "time [reasons]" and removed ones as times, newest first; equal times sort by text. */
function outcome(keep: { time: string; reasons: readonly string[] }[], remove: { time: string }[]) {
  const order = (a: string, b: string) =>
    Date.parse(b.split(' ')[0]!) - Date.parse(a.split(' ')[0]!) || (a < b ? -1 : 1);
  return {
    keep: keep.map((entry) => `${entry.time} [${entry.reasons.join(', ')}]`).sort(order),
    remove: remove.map((entry) => entry.time).sort(order),
  };
}

const repositories: ResticRepository[] = [];
afterAll(async () => {
  await Promise.all(repositories.map((repository) => repository.destroy()));
});

describe.skipIf(unavailable !== undefined)(
  `planRetention against restic 0.14 forget${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    const sets = setPlans.map(generateSet);
    it.concurrent.each(sets)('$name', async (set) => {
      const repository = await ResticRepository.create();
      repositories.push(repository);
      await Promise.all(
        set.times.map((time) => {
          const { tz, wall } = resticTime(set.zone, time)!;
          return repository.backup(tz, wall);
        }),
      );
      const snapshots = await repository.snapshots();
      const replay = `${set.name}; replay: STOWAGE_RETENTION_SEED=${baseSeed} npx vitest run apps/manager/src/loops/retention-restic.test.ts`;
      // restic recorded the instants meant, in the zone's offsets.
      expect(
        snapshots.map((snapshot) => Date.parse(snapshot.time)).sort((a, b) => a - b),
        replay,
      ).toEqual([...set.times].sort((a, b) => a - b));
      for (const snapshot of snapshots) {
        const offset = offsetAt(set.zone, Date.parse(snapshot.time)) / 60_000;
        const sign = offset < 0 ? '-' : '+';
        const written =
          offset === 0
            ? /(Z|\+00:00)$/
            : new RegExp(`\\${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}$`);
        expect(snapshot.time, replay).toMatch(written);
      }

      const timeOf = new Map(snapshots.map((snapshot) => [snapshot.id, snapshot.time]));
      // Failed and running backups (newer than all, and in between) must change nothing.
      const noise: RetentionBackup[] = [
        { id: 'failed-newest', time: new Date(Math.max(...set.times) + hour), state: 'failed' },
        { id: 'running', time: new Date(Math.max(...set.times) + 2 * hour), state: 'running' },
        {
          id: 'failed-between',
          time: new Date(set.times[Math.floor(set.times.length / 2)]! + 1000),
          state: 'failed',
        },
      ];
      const backups: RetentionBackup[] = [
        ...noise,
        ...snapshots.map((snapshot) => ({
          id: snapshot.id,
          time: new Date(snapshot.time),
          state: 'completed' as const,
        })),
      ];

      await Promise.all(
        set.policies.map(async (policy) => {
          const groups = await repository.forget(set.zone, policy);
          expect(groups, replay).toHaveLength(1);
          const group = groups[0]!;
          const keep = group.keep ?? [];
          const reasons = group.reasons ?? [];
          expect(reasons).toHaveLength(keep.length);
          const fromRestic = outcome(
            keep.map((snapshot, i) => ({ time: snapshot.time, reasons: reasons[i]!.matches })),
            group.remove ?? [],
          );
          const plan = planRetention(backups, policy, { timeZone: set.zone, now: new Date() });
          expect(plan.ignored.map((entry) => entry.id).sort()).toEqual(noise.map((entry) => entry.id).sort());
          const fromPlan = outcome(
            plan.keep.map((entry) => ({ time: timeOf.get(entry.id)!, reasons: entry.reasons })),
            plan.remove.map((entry) => ({ time: timeOf.get(entry.id)! })),
          );
          expect(fromPlan, `${replay}; policy ${resticFlags(policy).join(' ')} under TZ=${set.zone}`).toEqual(
            fromRestic,
          );
        }),
      );
    });
  },
);
