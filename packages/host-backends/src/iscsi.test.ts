import { mkdir, mkdtemp, readFile, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isHostBackendError } from './errors.js';
import {
  type CommandResult,
  type CommandRunner,
  IscsiBackend,
  type IscsiBackendOptions,
  type IscsiTarget,
  runCommand,
} from './iscsi.js';
import { describeHostBackendConformance, expectBytes, pattern } from './testing/index.js';

// The kernel initiator cannot run here (no iSCSI target, no iscsi_tcp module, no iscsid in this VM), so
// iscsiadm is replaced by a recording fake and the LUN is a file: on --login the fake creates the LUN's
// /dev/disk/by-path link (in a temp directory) pointing at a sparse image file that stands in for the block
// device, on --logout it removes it. The backend under test is the real one (accepting a regular file behind
// the link only because `acceptRegularFiles` says so); what these tests pin down is the exact sequence of
// iscsiadm commands on every path: success, error, cancel, timeout, shutdown, shared sessions.

const MiB = 1024 * 1024;
const TARGET: IscsiTarget = { portal: '10.0.0.5:3260', iqn: 'iqn.2001-05.com.example:vol1', lun: 0 };
const SECOND_LUN: IscsiTarget = { ...TARGET, lun: 1 };
const OTHER: IscsiTarget = { portal: '10.0.0.6:3260', iqn: 'iqn.2001-05.com.example:vol2', lun: 0 };
const LUNS = [TARGET, SECOND_LUN, OTHER];

const login = (t: IscsiTarget) => `iscsiadm -m node -T ${t.iqn} -p ${t.portal} --login`;
const logout = (t: IscsiTarget) => `iscsiadm -m node -T ${t.iqn} -p ${t.portal} --logout`;

interface FakeIscsiadm {
  run: CommandRunner;
  /** Every command, argv joined with spaces, in the order the backend ran them. */
  calls: string[];
  /** The options of every command. */
  options: { signal?: AbortSignal; timeoutMs?: number }[];
  /** Exit codes of the next logins, one each (then 0). 15 means a session was there already. */
  loginExits: number[];
  /** Exit codes of the next logouts, one each (then 0). */
  logoutExits: number[];
  /** What a login makes appear at the LUNs' links: the image file, a directory, or nothing. */
  device: 'image' | 'directory' | 'none';
  /** While set, logins (or logouts) wait for it before answering. */
  loginGate?: Promise<void>;
  logoutGate?: Promise<void>;
  /** The next login rejects as a runner does when iscsiadm is killed (our timeout) or missing. */
  loginThrows?: Error;
}

async function fakeIscsiadm(
  byPath: string,
  images: string,
  luns: readonly IscsiTarget[],
): Promise<FakeIscsiadm> {
  for (const lun of luns) {
    const image = imageOf(images, lun);
    await writeFile(image, '');
    await truncate(image, 8 * MiB);
  }
  await mkdir(join(images, 'not-a-device'), { recursive: true });
  const fake: FakeIscsiadm = {
    calls: [],
    options: [],
    loginExits: [],
    logoutExits: [],
    device: 'image',
    run: async (argv, options): Promise<CommandResult> => {
      fake.calls.push(argv.join(' '));
      fake.options.push(options);
      const iqn = argv[argv.indexOf('-T') + 1]!;
      const portal = argv[argv.indexOf('-p') + 1]!;
      const mine = luns.filter((l) => l.iqn === iqn && l.portal === portal);
      if (argv.includes('--login')) {
        await fake.loginGate;
        const thrown = fake.loginThrows;
        fake.loginThrows = undefined;
        if (thrown !== undefined) throw thrown;
        const code = fake.loginExits.shift() ?? 0;
        if (code !== 0 && code !== 15) {
          return {
            exitCode: code,
            stdout: '',
            stderr: `iscsiadm: Could not login to [iface: default, target: ${iqn}, portal: ${portal}].\niscsiadm: initiator reported error (${code})\n`,
          };
        }
        for (const lun of mine) {
          if (fake.device === 'none') continue;
          const to = fake.device === 'image' ? imageOf(images, lun) : join(images, 'not-a-device');
          await symlink(to, linkOf(byPath, lun)).catch(() => {});
        }
        return code === 15
          ? {
              exitCode: 15,
              stdout: '',
              stderr: 'iscsiadm: default: 1 session requested, but 1 already present.\n',
            }
          : {
              exitCode: 0,
              stdout: `Login to [iface: default, target: ${iqn}, portal: ${portal}] successful.\n`,
              stderr: '',
            };
      }
      if (argv.includes('--logout')) {
        await fake.logoutGate;
        const code = fake.logoutExits.shift() ?? 0;
        if (code !== 0) {
          return {
            exitCode: code,
            stdout: '',
            stderr: 'iscsiadm: Could not logout of all requested sessions\n',
          };
        }
        for (const lun of mine) await unlink(linkOf(byPath, lun)).catch(() => {});
        return {
          exitCode: 0,
          stdout: `Logout of [sid: 1, target: ${iqn}, portal: ${portal}] successful.\n`,
          stderr: '',
        };
      }
      return { exitCode: 7, stdout: '', stderr: 'iscsiadm: unexpected command\n' };
    },
  };
  return fake;
}

function imageOf(images: string, lun: IscsiTarget): string {
  return join(images, `${lun.iqn}-${lun.lun}.img`);
}

function linkOf(byPath: string, lun: IscsiTarget): string {
  return join(byPath, `ip-${lun.portal}-iscsi-${lun.iqn}-lun-${lun.lun}`);
}

/** A clock that only moves when the backend sleeps, so a 30 s device timeout takes no real time. */
function fakeTime(onSleep?: (count: number) => void) {
  const time = { now: 0, sleeps: [] as number[] };
  return {
    time,
    now: () => time.now,
    sleep: async (ms: number) => {
      time.sleeps.push(ms);
      time.now += ms;
      onSleep?.(time.sleeps.length);
    },
  };
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

async function failure(promise: Promise<unknown>): Promise<Error & { kind?: string }> {
  return promise.then(
    (value) => {
      throw new Error(`expected a failure, got ${String(value)}`);
    },
    (error: unknown) => error as Error & { kind?: string },
  );
}

let dir: string;
let byPath: string;
let images: string;
let fake: FakeIscsiadm;
let backend: IscsiBackend;

function newBackend(overrides: Partial<IscsiBackendOptions> = {}): IscsiBackend {
  const time = fakeTime();
  return new IscsiBackend({
    targets: LUNS,
    run: fake.run,
    byPathDir: byPath,
    acceptRegularFiles: true,
    now: time.now,
    sleep: time.sleep,
    ...overrides,
  });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-iscsi-'));
  byPath = join(dir, 'by-path');
  images = join(dir, 'images');
  await mkdir(byPath);
  await mkdir(images);
  fake = await fakeIscsiadm(byPath, images, LUNS);
  backend = newBackend();
});

afterEach(async () => {
  // Whatever the path, iscsiadm only ever saw these two shapes: no secret, no option beyond these.
  for (const call of fake.calls) {
    expect(call).toMatch(/^iscsiadm -m node -T (iqn|eui|naa)\.[A-Za-z0-9.:-]+ -p \S+ --(login|logout)$/);
  }
  await rm(dir, { recursive: true, force: true });
});

describe('iscsi backend — iscsiadm is replaced by a recording fake; the LUN is a file', () => {
  describe('success', () => {
    it('read: login, wait for the device, read it, logout on close', async () => {
      const written = pattern(4096, 1);
      await writeFile(imageOf(images, TARGET), written, { flag: 'r+' });
      const reader = await backend.openReader(linkOf(byPath, TARGET));
      expect(fake.calls).toEqual([login(TARGET)]);
      expect(reader.size).toBe(8 * MiB);
      expect(reader.path).toBe(linkOf(byPath, TARGET));
      const head = new Uint8Array(4096);
      expect(await reader.read(head, 0)).toBe(4096);
      expectBytes(head, written);
      await reader.close();
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
      // iscsiadm is never killed (see the cancel tests for why) and never runs without a time limit.
      expect(fake.options).toEqual([{ timeoutMs: 150_000 }, { timeoutMs: 150_000 }]);
    });

    it('write: login, positioned writes and sync on the device, logout on close', async () => {
      const writer = await backend.openWriter(linkOf(byPath, TARGET));
      expect(fake.calls).toEqual([login(TARGET)]);
      await writer.write(pattern(4096, 2), MiB);
      await writer.sync();
      await expect(writer.write(new Uint8Array(2), 8 * MiB - 1)).rejects.toMatchObject({
        kind: 'invalid-argument',
      });
      await writer.close();
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
      const image = await readFile(imageOf(images, TARGET));
      expectBytes(image.subarray(MiB, MiB + 4096), pattern(4096, 2));
    });

    it('stat logs in to read the size and logs out; list logs in to nothing', async () => {
      expect(await backend.stat(linkOf(byPath, TARGET))).toEqual({
        locator: linkOf(byPath, TARGET),
        name: `ip-${TARGET.portal}-iscsi-${TARGET.iqn}-lun-0`,
        size: 8 * MiB,
      });
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);

      // Nothing logged in: every configured LUN, size not known (0), and not one command.
      const sizes = async () => (await backend.list()).map((v) => [v.locator, v.size]);
      expect(await sizes()).toEqual(LUNS.map((l) => [linkOf(byPath, l), 0]).sort());
      // While a job holds the target, its LUNs' devices are there and the listing says how big they are.
      const reader = await backend.openReader(linkOf(byPath, SECOND_LUN));
      expect(await sizes()).toEqual(
        [
          [linkOf(byPath, TARGET), 8 * MiB],
          [linkOf(byPath, SECOND_LUN), 8 * MiB],
          [linkOf(byPath, OTHER), 0],
        ].sort(),
      );
      await reader.close();
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET), login(TARGET), logout(TARGET)]);
    });
  });

  describe('shared sessions', () => {
    it('two readers of one LUN share one login; the logout comes after the last close', async () => {
      const [a, b] = await Promise.all([
        backend.openReader(linkOf(byPath, TARGET)),
        backend.openReader(linkOf(byPath, TARGET)),
      ]);
      expect(fake.calls).toEqual([login(TARGET)]);
      await a.close();
      await a.close(); // a second close does not give up someone else's hold
      expect(fake.calls).toEqual([login(TARGET)]);
      const writer = await backend.openWriter(linkOf(byPath, TARGET)); // joins the session that is up
      await b.close();
      expect(fake.calls).toEqual([login(TARGET)]);
      await writer.close();
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('LUNs of one target share its login; other targets have their own', async () => {
      const a = await backend.openReader(linkOf(byPath, TARGET));
      const b = await backend.openWriter(linkOf(byPath, SECOND_LUN));
      const c = await backend.openReader(linkOf(byPath, OTHER));
      expect(fake.calls).toEqual([login(TARGET), login(OTHER)]);
      await a.close();
      await c.close();
      expect(fake.calls).toEqual([login(TARGET), login(OTHER), logout(OTHER)]);
      await b.close();
      expect(fake.calls).toEqual([login(TARGET), login(OTHER), logout(OTHER), logout(TARGET)]);
    });

    it('an open during the last close joins the session instead of logging out and in again', async () => {
      const reader = await backend.openReader(linkOf(byPath, TARGET));
      const closing = reader.close(); // still closing its file when the next open comes
      const again = await backend.openReader(linkOf(byPath, TARGET));
      await closing;
      expect(fake.calls).toEqual([login(TARGET)]);
      await again.close();
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('a login waits for a logout of the same target still in progress', async () => {
      const reader = await backend.openReader(linkOf(byPath, TARGET));
      const logoutGate = gate();
      fake.logoutGate = logoutGate.promise;
      const closing = reader.close();
      await vi.waitFor(() => expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]));
      const opening = backend.openReader(linkOf(byPath, TARGET));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]); // not logging in under the logout
      fake.logoutGate = undefined;
      logoutGate.open();
      await closing;
      const again = await opening;
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET), login(TARGET)]);
      await again.close();
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET), login(TARGET), logout(TARGET)]);
    });

    it("uses a session that was there already (exit 15) and never logs it out: it is someone else's", async () => {
      fake.loginExits = [15];
      const reader = await backend.openReader(linkOf(byPath, TARGET));
      expect(reader.size).toBe(8 * MiB);
      await reader.close();
      await backend.close();
      expect(fake.calls).toEqual([login(TARGET)]);
    });
  });

  describe('errors', () => {
    it('the device cannot be opened: the error, and a logout', async () => {
      fake.device = 'directory';
      const writing = await failure(backend.openWriter(linkOf(byPath, TARGET)));
      expect(isHostBackendError(writing, 'invalid-locator'), String(writing)).toBe(true); // EISDIR
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
      const reading = await failure(backend.openReader(linkOf(byPath, TARGET)));
      expect(reading).toMatchObject({
        kind: 'invalid-locator',
        message: expect.stringMatching(/not a block device/),
      });
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET), login(TARGET), logout(TARGET)]);
    });

    it('without acceptRegularFiles, a file where the device should be is refused, and logged out of', async () => {
      const strict = newBackend({ acceptRegularFiles: false });
      const error = await failure(strict.openReader(linkOf(byPath, TARGET)));
      expect(error).toMatchObject({
        kind: 'invalid-locator',
        message: expect.stringMatching(/not a block device/),
      });
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('a failed login: io with iscsiadm’s first line, or not-found for an unknown target; no logout', async () => {
      fake.loginExits = [24, 21];
      const denied = await failure(backend.openReader(linkOf(byPath, TARGET)));
      expect(denied.kind).toBe('io');
      expect(denied.message).toBe(
        `iSCSI login to ${TARGET.iqn} at ${TARGET.portal} failed: iscsiadm: Could not login to [iface: default, target: ${TARGET.iqn}, portal: ${TARGET.portal}]. (exit code 24: authorization failed (check the CHAP settings in the node record))`,
      );
      const unknown = await failure(backend.openWriter(linkOf(byPath, TARGET)));
      expect(unknown.kind).toBe('not-found');
      expect(unknown.message).toContain(`iscsiadm -m discovery -t st -p ${TARGET.portal}`);
      // iscsiadm answered, so no session was made; and a failed login is not remembered.
      const reader = await backend.openReader(linkOf(byPath, TARGET));
      await reader.close();
      expect(fake.calls).toEqual([login(TARGET), login(TARGET), login(TARGET), logout(TARGET)]);
    });

    it('a login iscsiadm never answered (killed by the timeout) is logged out to be sure', async () => {
      fake.loginThrows = Object.assign(new Error('Command failed: iscsiadm … --login'), { killed: true });
      const error = await failure(backend.openReader(linkOf(byPath, TARGET)));
      expect(error).toMatchObject({ kind: 'io', message: expect.stringMatching(/login .* did not finish/) });
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('iscsiadm not installed: unsupported', async () => {
      const missing = newBackend({
        run: (argv, options) => runCommand(['/nonexistent/iscsiadm', ...argv.slice(1)], options),
      });
      const error = await failure(missing.openReader(linkOf(byPath, TARGET)));
      expect(error).toMatchObject({ kind: 'unsupported', message: expect.stringMatching(/open-iscsi/) });
    });

    it('a failed logout fails the close, and the next open logs in afresh', async () => {
      const reader = await backend.openReader(linkOf(byPath, TARGET));
      fake.logoutExits = [10];
      const error = await failure(reader.close());
      expect(error).toMatchObject({ kind: 'io', op: 'logout' });
      expect(error.message).toContain('Could not logout of all requested sessions (exit code 10)');
      await (await backend.openReader(linkOf(byPath, TARGET))).close();
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET), login(TARGET), logout(TARGET)]);
    });

    it('an open that fails and whose logout fails too says both', async () => {
      fake.device = 'none';
      fake.logoutExits = [10];
      const error = await failure(backend.openReader(linkOf(byPath, TARGET)));
      expect(error.kind).toBe('io');
      expect(error.message).toMatch(/did not appear .*; logging out afterwards failed too: .*exit code 10/);
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });
  });

  describe('timeout', () => {
    it('the device never appears: io after the device timeout (30 s by default, polled), and a logout', async () => {
      fake.device = 'none';
      const time = fakeTime();
      const waiting = newBackend({ now: time.now, sleep: time.sleep });
      const error = await failure(waiting.openReader(linkOf(byPath, TARGET)));
      expect(error).toMatchObject({ kind: 'io', op: 'open-reader', locator: linkOf(byPath, TARGET) });
      expect(error.message).toBe(
        `iSCSI device ${linkOf(byPath, TARGET)} did not appear within 30 s of the login (is LUN 0 mapped to this initiator?)`,
      );
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
      expect(time.time.now).toBe(30_000);
      expect(new Set(time.time.sleeps)).toEqual(new Set([250]));
    });
  });

  describe('cancel', () => {
    it('a signal aborted before the open runs nothing', async () => {
      const error = await failure(
        backend.openReader(linkOf(byPath, TARGET), { signal: AbortSignal.abort() }),
      );
      expect(error).toMatchObject({ kind: 'io', message: expect.stringMatching(/cancelled/) });
      expect(fake.calls).toEqual([]);
    });

    it('abort while waiting for the device: the open fails and logs out', async () => {
      fake.device = 'none';
      const controller = new AbortController();
      const time = fakeTime((count) => {
        if (count === 3) controller.abort(new Error('job cancelled'));
      });
      const waiting = newBackend({ now: time.now, sleep: time.sleep });
      const error = await failure(waiting.openWriter(linkOf(byPath, TARGET), { signal: controller.signal }));
      expect(error).toMatchObject({
        kind: 'io',
        op: 'open-writer',
        message: expect.stringMatching(/cancelled/),
      });
      expect((error.cause as Error).message).toBe('job cancelled');
      expect(time.time.sleeps).toHaveLength(3);
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('abort while iscsiadm is logging in: the open fails at once; the session is logged out when the login answers', async () => {
      const loginGate = gate();
      fake.loginGate = loginGate.promise;
      const controller = new AbortController();
      const opening = backend.openReader(linkOf(byPath, TARGET), { signal: controller.signal });
      await vi.waitFor(() => expect(fake.calls).toEqual([login(TARGET)]));
      controller.abort();
      // Killing iscsiadm would not stop iscsid from finishing the login, leaving a session nobody logs out; so
      // the open stops waiting, and the logout follows the login.
      expect(await failure(opening)).toMatchObject({
        kind: 'io',
        message: expect.stringMatching(/cancelled/),
      });
      expect(fake.calls).toEqual([login(TARGET)]);
      loginGate.open();
      await vi.waitFor(() => expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]));
    });

    it('one opener giving up does not fail another waiting for the same login', async () => {
      const loginGate = gate();
      fake.loginGate = loginGate.promise;
      const controller = new AbortController();
      const cancelled = backend.openReader(linkOf(byPath, TARGET), { signal: controller.signal });
      const patient = backend.openReader(linkOf(byPath, SECOND_LUN));
      await vi.waitFor(() => expect(fake.calls).toEqual([login(TARGET)]));
      controller.abort();
      await failure(cancelled);
      loginGate.open();
      const reader = await patient;
      expect(fake.calls).toEqual([login(TARGET)]);
      await reader.close();
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('abort after the open: the reader stays usable until its caller closes it, and the close logs out', async () => {
      const controller = new AbortController();
      const reader = await backend.openReader(linkOf(byPath, TARGET), { signal: controller.signal });
      controller.abort();
      expect(await reader.read(new Uint8Array(512), 0)).toBe(512);
      expect(fake.calls).toEqual([login(TARGET)]);
      await reader.close(); // what a cancelled job's clean-up does
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });
  });

  describe('shutdown', () => {
    it('close logs out of every session still open, once, and refuses everything after', async () => {
      const a = await backend.openReader(linkOf(byPath, TARGET));
      const b = await backend.openWriter(linkOf(byPath, SECOND_LUN));
      const c = await backend.openReader(linkOf(byPath, OTHER));
      await (await backend.openReader(linkOf(byPath, OTHER))).close(); // shared: no logout
      expect(fake.calls).toEqual([login(TARGET), login(OTHER)]);
      await backend.close();
      expect(fake.calls).toEqual([login(TARGET), login(OTHER), logout(TARGET), logout(OTHER)]);
      // The late closes of jobs being torn down log out nothing more.
      await a.close();
      await b.close();
      await c.close();
      await backend.close();
      expect(fake.calls).toHaveLength(4);
      // One at a time: promises made up front would reject before anything awaits them.
      for (const attempt of [
        () => backend.openReader(linkOf(byPath, TARGET)),
        () => backend.openWriter(linkOf(byPath, OTHER)),
        () => backend.stat(linkOf(byPath, TARGET)),
        () => backend.list(),
      ]) {
        expect(await failure(attempt())).toMatchObject({
          kind: 'io',
          message: expect.stringMatching(/shut down/),
        });
      }
      expect(fake.calls).toHaveLength(4);
    });

    it('an open waiting for its device gives up at shutdown, and the session is logged out', async () => {
      fake.device = 'none';
      const realTime = newBackend({
        now: undefined,
        sleep: undefined,
        pollIntervalMs: 5,
        deviceTimeoutMs: 60_000,
      });
      const opening = failure(realTime.openReader(linkOf(byPath, TARGET)));
      await vi.waitFor(() => expect(fake.calls).toEqual([login(TARGET)]));
      await realTime.close();
      expect(await opening).toMatchObject({
        kind: 'io',
        message: expect.stringMatching(/shut down/),
      });
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('a login in progress at shutdown is waited for and logged out', async () => {
      const loginGate = gate();
      fake.loginGate = loginGate.promise;
      const opening = backend.openWriter(linkOf(byPath, TARGET));
      await vi.waitFor(() => expect(fake.calls).toEqual([login(TARGET)]));
      let closed = false;
      const closing = backend.close().then(() => {
        closed = true;
      });
      expect(await failure(opening)).toMatchObject({ message: expect.stringMatching(/shut down/) });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(closed).toBe(false);
      loginGate.open();
      await closing;
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('a logout that fails at shutdown fails the close, naming it', async () => {
      const reader = await backend.openReader(linkOf(byPath, TARGET));
      fake.logoutExits = [10];
      const error = await failure(backend.close());
      expect(error).toMatchObject({ kind: 'io', op: 'logout' });
      expect(error.message).toContain(`iSCSI logout from ${TARGET.iqn} at ${TARGET.portal} failed`);
      await reader.close(); // its session is gone: this closes the file and logs out nothing more
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });
  });

  describe('locators and configuration', () => {
    it('refuses LUNs it was not given, and malformed locators, before running any command', async () => {
      const attempts = [
        ['/dev/sda', 'outside-roots'],
        [join(byPath, 'ip-10.0.0.9:3260-iscsi-iqn.2001-05.com.example:x-lun-0'), 'outside-roots'],
        [`${linkOf(byPath, TARGET)}-part1`, 'outside-roots'],
        [`${byPath}/../by-path/ip-${TARGET.portal}-iscsi-${TARGET.iqn}-lun-0`, 'invalid-locator'],
        ['ip-10.0.0.5:3260-iscsi-x-lun-0', 'invalid-locator'],
        ['', 'invalid-locator'],
      ] as const;
      for (const [locator, kind] of attempts) {
        for (const attempt of [
          () => backend.openReader(locator),
          () => backend.openWriter(locator),
          () => backend.stat(locator),
          () => backend.listSnapshots(locator),
          () => backend.snapshot(locator, 's'),
          () => backend.deleteVolume(locator),
        ]) {
          expect(await failure(attempt())).toMatchObject({ kind });
        }
      }
      expect(fake.calls).toEqual([]);
    });

    it('provisions, snapshots and deletes nothing (the array does), without a command', async () => {
      const locator = linkOf(byPath, TARGET);
      for (const attempt of [
        () => backend.provision({ name: 'x', size: MiB }),
        () => backend.snapshot(locator, 's'),
        () => backend.deleteSnapshot(locator),
        () => backend.deleteVolume(locator),
      ]) {
        expect(await failure(attempt())).toMatchObject({ kind: 'unsupported' });
      }
      expect(await backend.listSnapshots(locator)).toEqual([]);
      expect(fake.calls).toEqual([login(TARGET), logout(TARGET)]);
    });

    it('names each LUN as udev does: the portal’s address and port, IPv6 without brackets, big LUNs in hex', () => {
      const v6: IscsiTarget = { portal: '[fd00::5]:3260', iqn: 'iqn.2001-05.com.example:v6', lun: 2 };
      const big: IscsiTarget = { portal: '10.0.0.5:3261', iqn: 'naa.60014059ad1f2b3c', lun: 300 };
      const named = new IscsiBackend({ targets: [TARGET, v6, big], byPathDir: '/dev/disk/by-path/' });
      expect(named.locatorOf(TARGET)).toBe(
        '/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2001-05.com.example:vol1-lun-0',
      );
      expect(named.locatorOf(v6)).toBe(
        '/dev/disk/by-path/ip-fd00::5:3260-iscsi-iqn.2001-05.com.example:v6-lun-2',
      );
      expect(named.locatorOf(big)).toBe(
        '/dev/disk/by-path/ip-10.0.0.5:3261-iscsi-naa.60014059ad1f2b3c-lun-0x012c000000000000',
      );
      expect(() => named.locatorOf(OTHER)).toThrow(/not a configured iSCSI LUN/);
    });

    it('refuses a configuration that could never match a device', () => {
      const bad: [Partial<IscsiTarget>, RegExp][] = [
        [{ portal: 'san.example.com:3260' }, /IP address and port/],
        [{ portal: '10.0.0.5' }, /IP address and port/],
        [{ portal: '10.0.0.500:3260' }, /IP address and port/],
        [{ portal: '10.0.0.5:70000' }, /IP address and port/],
        [{ portal: '[fd00::zz]:3260' }, /IP address and port/],
        [{ iqn: 'vol1' }, /iqn/],
        [{ iqn: 'iqn.2001-05.com.example:a/../b' }, /iqn/],
        [{ iqn: 'iqn.2001-05.com.example:a b' }, /iqn/],
        [{ lun: -1 }, /lun/],
        [{ lun: 1.5 }, /lun/],
        [{ lun: 2 ** 32 }, /lun/],
      ];
      for (const [change, message] of bad) {
        expect(() => new IscsiBackend({ targets: [{ ...TARGET, ...change }] })).toThrow(message);
      }
      expect(() => new IscsiBackend({ targets: [TARGET, { ...TARGET }] })).toThrow(/twice/);
      expect(() => new IscsiBackend({ targets: [TARGET], byPathDir: 'by-path' })).toThrow(/absolute/);
    });
  });
});

describe('runCommand, the default runner (real processes)', () => {
  it('runs the program with its arguments as they are, no shell, and answers any exit code', async () => {
    const script =
      'process.stdout.write(process.argv.slice(1).join("|")); process.stderr.write("warn\\n"); process.exit(3)';
    expect(
      await runCommand([process.execPath, '-e', script, '$(touch /tmp/x); echo', '*', '-p'], {}),
    ).toEqual({
      exitCode: 3,
      stdout: '$(touch /tmp/x); echo|*|-p',
      stderr: 'warn\n',
    });
  });

  it('rejects when the program is missing or is killed by the timeout', async () => {
    await expect(runCommand(['/nonexistent/iscsiadm'], {})).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(
      runCommand([process.execPath, '-e', 'setTimeout(() => {}, 10_000)'], { timeoutMs: 200 }),
    ).rejects.toMatchObject({ killed: true });
  });
});

describeHostBackendConformance(
  'iscsi (iscsiadm is a recording fake; the LUN is an image file)',
  async () => {
    const base = await mkdtemp(join(tmpdir(), 'stowage-iscsi-conf-'));
    const links = join(base, 'by-path');
    await mkdir(links);
    await mkdir(join(base, 'images'));
    const lun: IscsiTarget = { portal: '10.0.0.7:3260', iqn: 'iqn.2001-05.com.example:conf', lun: 3 };
    // A configured LUN whose target has no node record: iscsiadm answers 21, which is not-found.
    const missingLun: IscsiTarget = { ...lun, iqn: 'iqn.2001-05.com.example:gone' };
    const conformance = await fakeIscsiadm(links, join(base, 'images'), [lun]);
    const run: CommandRunner = async (argv, options) =>
      argv.includes(missingLun.iqn)
        ? { exitCode: 21, stdout: '', stderr: 'iscsiadm: No records found\n' }
        : conformance.run(argv, options);
    const time = fakeTime();
    const subject = new IscsiBackend({
      targets: [lun, missingLun],
      run,
      byPathDir: links,
      acceptRegularFiles: true,
      now: time.now,
      sleep: time.sleep,
    });
    return {
      backend: subject,
      missing: linkOf(links, missingLun),
      existing: linkOf(links, lun),
      dispose: async () => {
        await subject.close();
        await rm(base, { recursive: true, force: true });
      },
    };
  },
  { noSpaceUntestable: 'a LUN has a fixed size; writes past it are invalid-argument, never no-space' },
);
