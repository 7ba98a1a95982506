/**
 * Retention: which completed backups of one volume a policy keeps, and why — restic's `forget` semantics,
 * exactly as Debian's restic 0.14.0 computes them (`internal/restic/snapshot_policy.go` at tag v0.14.0,
 * `ApplyPolicy`), checked against the restic binary by `retention-restic.test.ts`.
 *
 * What counts. Only `completed` backups are considered. A `running` or `failed` backup is neither counted nor
 * pruned: it is reported under `ignored` and appears in neither `keep` nor `remove` (it does not fill a
 * bucket, and it is not "the newest backup" for keep_within).
 *
 * Scope. restic applies a policy to each group of snapshots (by host and paths); here the group is one
 * volume: the caller passes the backups of one volume.
 *
 * Order. The backups are sorted newest first; every rule walks that one list. Equal times are ordered by id
 * (restic orders them by the order it happened to load the snapshots in, which is not deterministic).
 *
 * Rules. Each rule is independent of the others: a backup kept by any rule is kept (unlike PBS, whose rules
 * are cumulative). A count of 0, or an absent rule, is off.
 * - keep_last n: the n newest backups.
 * - keep_hourly / keep_daily / keep_weekly / keep_monthly / keep_yearly n: the buckets are wall-clock hours,
 *   days, ISO weeks (ISO week-year and week number: 2027-01-03 is in 2026-W53, 2020-12-31 in 2020-W53),
 *   months and years in the volume's time zone. Walking newest first, a backup whose bucket differs from the
 *   bucket of the last backup this rule kept is kept and spends one of the n, so the newest backup of each
 *   of the n newest non-empty buckets wins. Wall-clock buckets follow DST: the repeated hour of a fall-back
 *   night is one hourly bucket, a spring-forward day is a 23-hour daily bucket.
 * - keep_within d (restic's duration syntax: numbers with units y, m, d, h, e.g. `1y2m3d4h`): every backup
 *   strictly after a cutoff measured back from the newest backup, not from now. The cutoff is Go's
 *   `newest.AddDate(-y, -m, -d).Add(-h hours)`: years, months and days are wall-clock calendar arithmetic in
 *   the zone with overflow normalised (newest 2026-03-31, within 1m: 2026-02-31 is 2026-03-03, so a backup on
 *   2026-03-02 goes), a wall time that falls into a DST gap or overlap is resolved as Go's `time.Date` does,
 *   and the hours are then taken off in absolute time. "The newest" is the newest completed backup before
 *   `now`; a backup dated in the future is bucketed like any other but never serves as the newest, and if
 *   every backup is in the future the cutoff is Go's zero time, so keep_within keeps them all (restic 0.14
 *   does exactly this).
 *
 * Reasons, per kept backup, worded and ordered as restic's `forget --json` reports them in `matches`:
 * `within <d>` first (the duration as restic prints it: units in the order y m d h, zero units left out, so
 * `2h3d` is `within 3d2h`), then `last snapshot`, `hourly snapshot`, `daily snapshot`, `weekly snapshot`,
 * `monthly snapshot`, `yearly snapshot`. restic 0.14 has no "oldest …" reasons and no `-1` (unlimited).
 *
 * Where the manager is stricter than restic 0.14 (each of these is refused with a `RetentionPolicyError`):
 * - An empty policy (no rule, or only zeros, or keep_within of zero length). restic keeps everything and
 *   says "no policy was specified"; a volume without retention should carry no policy instead.
 * - Negative or fractional counts. restic 0.14 takes `--keep-last -1` as "rule off" while the policy counts
 *   as non-empty, so that `forget --keep-last -1` removes every snapshot.
 * - Negative numbers, a repeated unit (restic: the last one wins), other units, or numbers above 100000 in
 *   keep_within.
 * - Unknown fields.
 * restic's `--keep-tag` and `--keep-within-{hourly,daily,…}` have no counterpart here.
 */

export const backupStates = ['running', 'completed', 'failed'] as const;
export type BackupState = (typeof backupStates)[number];

/** One backup of a volume, as far as retention cares. */
export interface RetentionBackup {
  readonly id: string;
  /** When the backup was taken (its snapshot time). */
  readonly time: Date;
  readonly state: BackupState;
}

/** The rules of a volume's retention policy (the `volume.retention` column). */
export interface RetentionPolicy {
  readonly keep_last?: number;
  readonly keep_hourly?: number;
  readonly keep_daily?: number;
  readonly keep_weekly?: number;
  readonly keep_monthly?: number;
  readonly keep_yearly?: number;
  /** restic's duration syntax, e.g. `1y2m3d4h`; measured back from the newest backup. */
  readonly keep_within?: string;
}

export const retentionCountRules = [
  'keep_last',
  'keep_hourly',
  'keep_daily',
  'keep_weekly',
  'keep_monthly',
  'keep_yearly',
] as const;
export type RetentionCountRule = (typeof retentionCountRules)[number];

/** A parsed keep_within. */
export interface KeepWithin {
  readonly years: number;
  readonly months: number;
  readonly days: number;
  readonly hours: number;
}

export interface RetentionPlan {
  /** Newest first, each with restic's reasons in restic's order. */
  readonly keep: readonly { readonly id: string; readonly reasons: readonly string[] }[];
  /** Newest first. */
  readonly remove: readonly { readonly id: string }[];
  /** Running and failed backups: never counted, never pruned. In the order given. */
  readonly ignored: readonly { readonly id: string; readonly state: Exclude<BackupState, 'completed'> }[];
}

export interface PlanRetentionOptions {
  /** IANA time zone whose wall clock the buckets and keep_within's calendar arithmetic use. */
  readonly timeZone: string;
  /** Backups after `now` do not serve as the newest backup for keep_within (restic's rule). */
  readonly now: Date;
}

/** A policy the manager refuses; the message says why and is fit for a 400 answer. */
export class RetentionPolicyError extends Error {
  override readonly name = 'RetentionPolicyError';
}

const reasonOf: Record<RetentionCountRule, string> = {
  keep_last: 'last snapshot',
  keep_hourly: 'hourly snapshot',
  keep_daily: 'daily snapshot',
  keep_weekly: 'weekly snapshot',
  keep_monthly: 'monthly snapshot',
  keep_yearly: 'yearly snapshot',
};

const maxWithinNumber = 100_000;
const withinUnits = { y: 'years', m: 'months', d: 'days', h: 'hours' } as const;

/** Parses restic's duration syntax (`1y2m3d4h`, units in any order, each at most once). */
export function parseKeepWithin(text: string): KeepWithin {
  const source = text.trim();
  if (source === '') throw new RetentionPolicyError('keep_within is empty; leave it out instead');
  const parsed = { years: 0, months: 0, days: 0, hours: 0 };
  const seen = new Set<string>();
  const token = /(\d+)(.?)/suy;
  let at = 0;
  while (at < source.length) {
    token.lastIndex = at;
    const match = token.exec(source);
    if (match === null) {
      throw new RetentionPolicyError(
        `keep_within ${JSON.stringify(text)}: expected a number at position ${at + 1} (restic's syntax: numbers with units y, m, d, h, e.g. 1y2m3d4h)`,
      );
    }
    const [, digits, unit] = match as unknown as [string, string, string];
    if (unit === '') {
      throw new RetentionPolicyError(`keep_within ${JSON.stringify(text)}: no unit after ${digits}`);
    }
    if (!(unit in withinUnits)) {
      throw new RetentionPolicyError(
        `keep_within ${JSON.stringify(text)}: unknown unit ${JSON.stringify(unit)} (units are y, m, d, h)`,
      );
    }
    if (seen.has(unit)) {
      throw new RetentionPolicyError(`keep_within ${JSON.stringify(text)}: unit ${unit} given twice`);
    }
    seen.add(unit);
    const value = Number(digits);
    if (value > maxWithinNumber) {
      throw new RetentionPolicyError(
        `keep_within ${JSON.stringify(text)}: ${digits}${unit} is more than ${maxWithinNumber}`,
      );
    }
    parsed[withinUnits[unit as keyof typeof withinUnits]] = value;
    at = token.lastIndex;
  }
  return parsed;
}

/** A duration as restic prints it (`Duration.String`): units in the order y m d h, zero units left out. */
export function formatKeepWithin(within: KeepWithin): string {
  return (
    (within.years !== 0 ? `${within.years}y` : '') +
    (within.months !== 0 ? `${within.months}m` : '') +
    (within.days !== 0 ? `${within.days}d` : '') +
    (within.hours !== 0 ? `${within.hours}h` : '')
  );
}

function isZero(within: KeepWithin): boolean {
  return within.years === 0 && within.months === 0 && within.days === 0 && within.hours === 0;
}

/**
 * Checks a policy read from anywhere (an API body, the jsonb column) and returns it typed. `null` stands for
 * an absent rule. Throws `RetentionPolicyError` for everything the module comment lists.
 */
export function parseRetentionPolicy(value: unknown): RetentionPolicy {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RetentionPolicyError('a retention policy is an object of keep_* rules');
  }
  const policy: Record<string, number | string> = {};
  for (const [key, rule] of Object.entries(value)) {
    if (rule === null || rule === undefined) continue;
    if (key === 'keep_within') {
      if (typeof rule !== 'string')
        throw new RetentionPolicyError('keep_within is a string such as "1y2m3d4h"');
      parseKeepWithin(rule);
      policy[key] = rule;
    } else if ((retentionCountRules as readonly string[]).includes(key)) {
      if (typeof rule !== 'number' || !Number.isSafeInteger(rule) || rule < 0) {
        throw new RetentionPolicyError(`${key} must be a whole number of at least 0 (0 turns the rule off)`);
      }
      policy[key] = rule;
    } else {
      throw new RetentionPolicyError(
        `unknown retention rule ${JSON.stringify(key)} (rules: ${[...retentionCountRules, 'keep_within'].join(', ')})`,
      );
    }
  }
  const counts = retentionCountRules.some((rule) => ((policy[rule] as number | undefined) ?? 0) > 0);
  const within = policy.keep_within !== undefined && !isZero(parseKeepWithin(policy.keep_within as string));
  if (!counts && !within) {
    throw new RetentionPolicyError(
      'the retention policy keeps nothing: set at least one keep_* rule above 0 (restic would keep every backup and prune none; leave the policy out for that)',
    );
  }
  return policy as RetentionPolicy;
}

/**
 * Plans retention for the backups of one volume. Pure: nothing is deleted, `now` and the zone are given.
 * Throws `RetentionPolicyError` for a policy `parseRetentionPolicy` refuses, `RangeError` for an unknown zone.
 */
export function planRetention(
  backups: readonly RetentionBackup[],
  policy: RetentionPolicy,
  options: PlanRetentionOptions,
): RetentionPlan {
  const checked = parseRetentionPolicy(policy);
  const zone = wallClockOf(options.timeZone);
  const ignored: { id: string; state: Exclude<BackupState, 'completed'> }[] = [];
  const completed: RetentionBackup[] = [];
  for (const backup of backups) {
    if (backup.state === 'completed') completed.push(backup);
    else ignored.push({ id: backup.id, state: backup.state });
  }
  completed.sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  const keep: { id: string; reasons: string[] }[] = [];
  const remove: { id: string }[] = [];
  if (completed.length === 0) return { keep, remove, ignored };

  let cutoff: number | undefined;
  let withinReason = '';
  if (checked.keep_within !== undefined) {
    const within = parseKeepWithin(checked.keep_within);
    if (!isZero(within)) {
      cutoff = keepWithinCutoff(completed, within, options.now.getTime(), zone);
      withinReason = `within ${formatKeepWithin(within)}`;
    }
  }

  const buckets = retentionCountRules
    .map((rule) => ({ rule, left: checked[rule] ?? 0, last: undefined as number | undefined }))
    .filter((bucket) => bucket.left > 0);

  completed.forEach((backup, index) => {
    const reasons: string[] = [];
    const time = backup.time.getTime();
    if (cutoff !== undefined && time > cutoff) reasons.push(withinReason);
    const wall = zone.wallClock(time);
    for (const bucket of buckets) {
      if (bucket.left === 0) continue;
      const value = bucketOf(bucket.rule, wall, index);
      if (value !== bucket.last) {
        bucket.last = value;
        bucket.left -= 1;
        reasons.push(reasonOf[bucket.rule]);
      }
    }
    if (reasons.length > 0) keep.push({ id: backup.id, reasons });
    else remove.push({ id: backup.id });
  });
  return { keep, remove, ignored };
}

/** The bucket a backup falls into, as an integer (YYYYMMDDHH, YYYYMMDD, YYYYWW, YYYYMM, YYYY). */
function bucketOf(rule: RetentionCountRule, wall: WallClock, index: number): number {
  switch (rule) {
    case 'keep_last':
      return index;
    case 'keep_hourly':
      return ((wall.year * 100 + wall.month) * 100 + wall.day) * 100 + wall.hour;
    case 'keep_daily':
      return (wall.year * 100 + wall.month) * 100 + wall.day;
    case 'keep_weekly': {
      const { year, week } = isoWeek(wall.year, wall.month, wall.day);
      return year * 100 + week;
    }
    case 'keep_monthly':
      return wall.year * 100 + wall.month;
    case 'keep_yearly':
      return wall.year;
  }
}

/** ISO 8601 week-year and week of a calendar date (Go's `Time.ISOWeek`). */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = utcMs(year, month, day, 0, 0, 0, 0);
  const weekday = (new Date(date).getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(date + (3 - weekday) * 86_400_000);
  const isoYear = thursday.getUTCFullYear();
  const dayOfYear = (thursday.getTime() - utcMs(isoYear, 1, 1, 0, 0, 0, 0)) / 86_400_000;
  return { year: isoYear, week: Math.floor(dayOfYear / 7) + 1 };
}

/**
 * restic's cutoff: the newest backup before `now` (Go's zero time if there is none), `AddDate(-y, -m, -d)`
 * on its wall clock, then `Add(-h hours)`. A backup is kept when its time is strictly after the cutoff.
 */
function keepWithinCutoff(
  newestFirst: readonly RetentionBackup[],
  within: KeepWithin,
  now: number,
  zone: Zone,
): number {
  const newest = newestFirst.find((backup) => backup.time.getTime() < now);
  let shifted: number;
  if (newest === undefined) {
    // Go's zero time, 0001-01-01 00:00:00 UTC, in UTC.
    shifted = utcMs(1 - within.years, 1 - within.months, 1 - within.days, 0, 0, 0, 0);
  } else {
    const wall = zone.wallClock(newest.time.getTime());
    shifted = zone.goDate(
      wall.year - within.years,
      wall.month - within.months,
      wall.day - within.days,
      wall.hour,
      wall.minute,
      wall.second,
      wall.millisecond,
    );
  }
  return shifted - within.hours * 3_600_000;
}

interface WallClock {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly millisecond: number;
}

interface Zone {
  wallClock(time: number): WallClock;
  /**
   * Go's `time.Date` in this zone: normalises out-of-range fields (month 14, day 0, Feb 31) as a proleptic
   * Gregorian calendar does, then picks the instant for the wall time. For a wall time in a gap or an
   * overlap Go takes the zone offset in effect at "the wall time read as UTC" and, if the instant that
   * offset gives lies outside that offset's period, the offset in effect at that instant instead:
   * offset = offsetAt(W − offsetAt(W)), W being the wall time read as UTC. (In Berlin a gap's 02:30 becomes
   * 03:30 CEST and an overlap's 02:30 the later, CET one; in New York a gap's 02:30 becomes 01:30 EST and an
   * overlap's 01:30 the earlier, EDT one.)
   */
  goDate(
    year: number,
    month: number,
    day: number,
    hour: number,
    minute: number,
    second: number,
    millisecond: number,
  ): number;
}

/** Milliseconds since the epoch of a UTC wall time, fields normalised, years 0–99 taken literally. */
function utcMs(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  millisecond: number,
): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millisecond);
  return date.getTime();
}

const zones = new Map<string, Zone>();

function wallClockOf(timeZone: string): Zone {
  const cached = zones.get(timeZone);
  if (cached !== undefined) return cached;
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch {
    throw new RangeError(`unknown time zone ${JSON.stringify(timeZone)}`);
  }
  const wallClock = (time: number): WallClock => {
    const fields: Record<string, string> = {};
    for (const part of format.formatToParts(time)) fields[part.type] = part.value;
    const eraYear = Number(fields.year);
    const millisecond = ((time % 1000) + 1000) % 1000;
    return {
      year: fields.era === 'BC' || fields.era === 'B' ? 1 - eraYear : eraYear,
      month: Number(fields.month),
      day: Number(fields.day),
      hour: Number(fields.hour),
      minute: Number(fields.minute),
      second: Number(fields.second),
      millisecond,
    };
  };
  const offsetAt = (time: number): number => {
    const wall = wallClock(time);
    return (
      utcMs(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, 0) -
      (time - wall.millisecond)
    );
  };
  const zone: Zone = {
    wallClock,
    goDate(year, month, day, hour, minute, second, millisecond) {
      const asUtc = utcMs(year, month, day, hour, minute, second, millisecond);
      return asUtc - offsetAt(asUtc - offsetAt(asUtc));
    },
  };
  zones.set(timeZone, zone);
  return zone;
}

/** Go's `time.ParseInLocation` of a wall time in a zone (what `restic backup --time` records); for tests. */
export function wallTimeToInstant(
  timeZone: string,
  wall: { year: number; month: number; day: number; hour: number; minute: number; second: number },
): Date {
  return new Date(
    wallClockOf(timeZone).goDate(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, 0),
  );
}

/** The wall clock of an instant in a zone; for tests. */
export function wallClockIn(timeZone: string, time: Date): WallClock {
  return wallClockOf(timeZone).wallClock(time.getTime());
}
