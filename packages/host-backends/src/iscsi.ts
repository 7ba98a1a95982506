import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { basename } from 'node:path';
import { configuredPath, normalizeLocator, outsideRoots } from './confine.js';
import { cancelled, fromNative, HostBackendError, type HostBackendOp } from './errors.js';
import { blockDeviceSize, handleReader, handleWriter } from './file-io.js';
import type {
  HostBackend,
  OpenOptions,
  ProvisionRequest,
  SnapshotInfo,
  SnapshotOptions,
  SnapshotResult,
  VolumeInfo,
  VolumeReader,
  VolumeWriter,
} from './host-backend.js';

/** One LUN the agent may use. */
export interface IscsiTarget {
  /**
   * `address:port` of the target portal, spelled as in iscsiadm's node record (`iscsiadm -m node` lists them):
   * an IP address (`10.0.0.5:3260`, `[fd00::5]:3260`), since udev names the LUN's device by that address, so
   * a host name could never match it.
   */
  readonly portal: string;
  /** The target's name: `iqn.…`, `eui.…` or `naa.…`. */
  readonly iqn: string;
  /** The LUN number, 0 to 2³²−1. */
  readonly lun: number;
}

export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a program (never through a shell) and answers its exit code and output. It rejects only when the
 * program did not run to an exit code: not found (`code: 'ENOENT'`), killed by the timeout or the signal.
 * Injected so that tests can stand in for iscsiadm.
 */
export type CommandRunner = (
  argv: readonly string[],
  options: { signal?: AbortSignal; timeoutMs?: number },
) => Promise<CommandResult>;

export interface IscsiBackendOptions {
  /** The LUNs the agent may use; any other locator is `outside-roots`. Checked here: a bad one throws. */
  readonly targets: readonly IscsiTarget[];
  /** Runs iscsiadm; `runCommand` (execFile, no shell) by default. */
  readonly run?: CommandRunner;
  /** Where udev links LUN devices (default `/dev/disk/by-path`). */
  readonly byPathDir?: string;
  /** How long to wait for the LUN's device after a login (default 30 s). */
  readonly deviceTimeoutMs?: number;
  /** How often to look for it meanwhile (default 250 ms). */
  readonly pollIntervalMs?: number;
  /**
   * How long one iscsiadm call may take before it is killed (default 150 s: longer than iscsid's own login
   * retries, 8 × 15 s with the stock iscsid.conf, so that a slow portal fails with iscsiadm's reason).
   */
  readonly commandTimeoutMs?: number;
  /** Accepts a regular file where the device should be: for tests, where the "LUN" is an image file. */
  readonly acceptRegularFiles?: boolean;
  /** The clock for the device timeout (default `Date.now`). */
  readonly now?: () => number;
  /** Waits `ms`, or less when `signal` aborts (default: a timer). Injected so tests need not wait. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

const DEFAULT_BY_PATH_DIR = '/dev/disk/by-path';
const DEFAULT_DEVICE_TIMEOUT_MS = 30_000;
const DEFAULT_POLL_INTERVAL_MS = 250;
const DEFAULT_COMMAND_TIMEOUT_MS = 150_000;

/** iscsiadm's exit codes that change what happens here (open-iscsi's include/iscsi_err.h). */
const ISCSI_ERR_SESS_EXISTS = 15;
const ISCSI_ERR_NO_OBJS_FOUND = 21;

/** What the other exit codes of a failed login mean, for the message (same header). */
const LOGIN_FAILURES: Readonly<Record<number, string>> = {
  4: 'transport error',
  5: 'login failed',
  8: 'timed out connecting to the portal',
  12: 'the iSCSI transport module is not loaded (modprobe iscsi_tcp)',
  13: 'permission denied (iscsiadm needs root)',
  18: 'cannot talk to iscsid',
  19: 'the target refused the login',
  20: 'cannot connect to iscsid (is it running?)',
  24: 'authorization failed (check the CHAP settings in the node record)',
};

/** A login to one target (iqn at portal), shared by every reader and writer of its LUNs. */
interface Session {
  readonly key: string;
  readonly iqn: string;
  readonly portal: string;
  /** Readers, writers and opens in progress that hold it. */
  refs: number;
  /** Settles when iscsiadm has answered the login: true when the session is ours to log out. */
  readonly login: Promise<boolean>;
  /** Logged out, or being logged out (last release, or `close`): later releases leave it alone. */
  retired: boolean;
}

/**
 * LUNs of iSCSI targets, reached through the kernel initiator: `iscsiadm --login`, wait for the LUN's
 * `/dev/disk/by-path` link, plain positioned I/O on the device, and `iscsiadm --logout` once the last reader
 * or writer of that target closes. The logout happens on every path — a close, an error while opening (the
 * device never appears, or cannot be opened), a cancelled open (even one cancelled while iscsiadm was still
 * logging in), and shutdown (`close`). One login serves every LUN of a target, counted by reference; a
 * session that was there before (an operator's) is used but never logged out.
 *
 * No provisioning and no snapshots: LUNs are made and snapshotted on the storage array. CHAP secrets stay in
 * iscsiadm's node records and never appear on a command line or in a message. `list` logs in to nothing;
 * `stat` and `listSnapshots` log in to look at the device.
 */
export class IscsiBackend implements HostBackend {
  readonly kind = 'iscsi';
  readonly capabilities = { provision: false, snapshot: false } as const;
  readonly #targets: ReadonlyMap<string, IscsiTarget>;
  readonly #run: CommandRunner;
  readonly #options: IscsiBackendOptions;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #sessions = new Map<string, Session>();
  /**
   * Logouts in progress, per target. A login to the same target waits for its logout: otherwise iscsiadm
   * would find the old session ("exists"), and the logout landing after it would take the device away.
   */
  readonly #settling = new Map<string, Promise<void>>();
  /** Logouts nobody waits for (a login that finished after every opener gave up); `close` waits for them. */
  readonly #background = new Set<Promise<void>>();
  readonly #backgroundFailures: string[] = [];
  /** Aborted by `close`: opens still waiting (for a login, for a device) give up at once. */
  readonly #shutdown = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(options: IscsiBackendOptions) {
    this.#options = options;
    this.#run = options.run ?? runCommand;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? sleep;
    const dir = configuredPath(options.byPathDir ?? DEFAULT_BY_PATH_DIR, 'iSCSI by-path directory');
    const targets = new Map<string, IscsiTarget>();
    for (const target of options.targets) {
      const problem = targetProblem(target);
      if (problem !== undefined) throw new Error(`iSCSI target ${JSON.stringify(target)}: ${problem}`);
      const locator = `${dir}/${byPathName(target)}`;
      if (targets.has(locator)) throw new Error(`iSCSI target ${JSON.stringify(target)} is listed twice`);
      targets.set(locator, { portal: target.portal, iqn: target.iqn, lun: target.lun });
    }
    this.#targets = targets;
  }

  /** The locator of a configured LUN: the by-path link udev makes for it. */
  locatorOf(target: IscsiTarget): string {
    for (const [locator, t] of this.#targets) {
      if (t.portal === target.portal && t.iqn === target.iqn && t.lun === target.lun) return locator;
    }
    throw new HostBackendError(
      'outside-roots',
      `${target.iqn} LUN ${target.lun} at ${target.portal} is not a configured iSCSI LUN`,
      { op: 'stat' },
    );
  }

  async provision(request: ProvisionRequest): Promise<VolumeInfo> {
    throw new HostBackendError(
      'unsupported',
      'iSCSI LUNs are created on the storage array, not by the agent',
      {
        op: 'provision',
        locator: request.name,
      },
    );
  }

  /**
   * Every configured LUN, in locator order, without logging in: a listing must be quick and change nothing
   * on the array. `size` is the device's when the LUN is logged in now (by a running job, or an operator's
   * session) and 0 otherwise — not known until `stat`, which logs in, looks and logs out.
   */
  async list(): Promise<VolumeInfo[]> {
    if (this.#shutdown.signal.aborted) throw shutDown('list', undefined);
    const volumes: VolumeInfo[] = [];
    for (const locator of [...this.#targets.keys()].sort()) {
      volumes.push({ locator, name: basename(locator), size: await this.#presentSize(locator) });
    }
    return volumes;
  }

  /** Logs in (or shares a session already there), reads the device's size, and logs out again. */
  async stat(locator: string): Promise<VolumeInfo> {
    const reader = await this.#openReader(locator, 'stat', {});
    try {
      return { locator: reader.path, name: basename(reader.path), size: reader.size };
    } finally {
      await reader.close();
    }
  }

  /** No snapshots, copies allowed or not (`unsupported`): `options` change nothing. */
  async snapshot(volume: string, _name: string, _options: SnapshotOptions = {}): Promise<SnapshotResult> {
    const locator = this.#allowed(volume, 'snapshot');
    throw new HostBackendError(
      'unsupported',
      `cannot snapshot ${locator}: snapshot iSCSI LUNs on the array`,
      {
        op: 'snapshot',
        locator,
      },
    );
  }

  /** Always empty, once the LUN is known to be there (a login and a look at its device). */
  async listSnapshots(volume: string): Promise<SnapshotInfo[]> {
    const reader = await this.#openReader(volume, 'list-snapshots', {});
    await reader.close();
    return [];
  }

  openReader(locator: string, options: OpenOptions = {}): Promise<VolumeReader> {
    return this.#openReader(locator, 'open-reader', options);
  }

  async openWriter(volume: string, options: OpenOptions = {}): Promise<VolumeWriter> {
    // O_EXCL on a block device fails with EBUSY while it is mounted or held exclusively by someone else.
    const flags = fsConstants.O_WRONLY | (this.#options.acceptRegularFiles ? 0 : fsConstants.O_EXCL);
    const opened = await this.#open(volume, flags, 'open-writer', options);
    const writer = handleWriter(opened.handle, opened.path, opened.size);
    return { ...writer, close: () => closeThen(writer.close, opened.release) };
  }

  async deleteSnapshot(snapshot: string): Promise<void> {
    const locator = this.#allowed(snapshot, 'delete-snapshot');
    throw new HostBackendError('unsupported', `iSCSI LUNs have no snapshots here (${locator})`, {
      op: 'delete-snapshot',
      locator,
    });
  }

  async deleteVolume(volume: string): Promise<void> {
    const locator = this.#allowed(volume, 'delete-volume');
    throw new HostBackendError('unsupported', `iSCSI LUNs are deleted on the storage array (${locator})`, {
      op: 'delete-volume',
      locator,
    });
  }

  /**
   * Shutdown: opens still waiting give up, every session this backend logged in to is logged out (under
   * readers and writers still open too: their device goes away, and their later `close` logs out nothing),
   * and later opens fail. Waits for logins still in progress to answer, so that those are logged out as well.
   * Fails with `io` naming every logout that failed, here or earlier where nobody was waiting.
   */
  close(): Promise<void> {
    this.#closing ??= this.#closeSessions();
    return this.#closing;
  }

  async #closeSessions(): Promise<void> {
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const session of sessions) session.retired = true;
    this.#shutdown.abort();
    const logouts = sessions.map(async (session) => {
      const owned = await session.login.catch(() => false);
      if (owned) await this.#logout(session);
    });
    const results = await Promise.allSettled([...logouts, ...this.#settling.values(), ...this.#background]);
    const failures = [
      ...results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : [])),
      ...this.#backgroundFailures,
    ];
    if (failures.length > 0) throw new HostBackendError('io', failures.join('; '), { op: 'logout' });
  }

  async #openReader(locator: string, op: HostBackendOp, options: OpenOptions): Promise<VolumeReader> {
    const opened = await this.#open(locator, fsConstants.O_RDONLY, op, options);
    const reader = handleReader(opened.handle, opened.path, opened.size);
    return { ...reader, close: () => closeThen(reader.close, opened.release) };
  }

  #allowed(locator: string, op: HostBackendOp): string {
    const normalized = normalizeLocator(locator, op);
    if (!this.#targets.has(normalized)) throw outsideRoots(normalized, op, 'the configured iSCSI LUNs');
    return normalized;
  }

  /** Login, device, open — and on any failure on the way, the logout of what was logged in. */
  async #open(
    locator: string,
    flags: number,
    op: HostBackendOp,
    options: OpenOptions,
  ): Promise<{ handle: FileHandle; size: number; path: string; release: () => Promise<void> }> {
    const path = this.#allowed(locator, op);
    const target = this.#targets.get(path)!;
    if (this.#shutdown.signal.aborted) throw shutDown(op, path);
    if (options.signal?.aborted) throw this.#stopped(op, path, options.signal);
    const { signal, unlink } = this.#linked(options.signal);
    try {
      const session = await this.#acquire(target, op, path, signal);
      try {
        await this.#waitForDevice(path, target, op, signal);
        const opened = await this.#openDevice(path, flags, op);
        if (this.#shutdown.signal.aborted) {
          await opened.handle.close();
          throw shutDown(op, path);
        }
        let released: Promise<void> | undefined;
        return { ...opened, path, release: () => (released ??= this.#release(session)) };
      } catch (error) {
        // After a shutdown, whatever went wrong (the device vanishing under the logout) is the shutdown.
        const failure = this.#shutdown.signal.aborted ? shutDown(op, path) : error;
        throw await this.#release(session).then(
          () => failure,
          (logout: unknown) => alsoFailed(failure, logout),
        );
      }
    } finally {
      unlink();
    }
  }

  /**
   * Joins the target's session, logging in when there is none. The login itself is never killed: iscsid
   * finishes it whatever happens to iscsiadm, so an opener that gives up (its signal, or shutdown) only stops
   * waiting, and the session is logged out when the login answers and nobody holds it any more.
   */
  async #acquire(
    target: IscsiTarget,
    op: HostBackendOp,
    path: string,
    signal: AbortSignal,
  ): Promise<Session> {
    const key = `${target.iqn}\n${target.portal}`;
    let session = this.#sessions.get(key);
    if (session === undefined) {
      const previous = this.#settling.get(key) ?? Promise.resolve();
      session = {
        key,
        iqn: target.iqn,
        portal: target.portal,
        refs: 0,
        retired: false,
        login: previous.then(() => this.#login(target, op, path)),
      };
      this.#sessions.set(key, session);
    }
    session.refs++;
    try {
      await untilAborted(session.login, signal, () => this.#stopped(op, path, signal));
      return session;
    } catch (error) {
      const releasing = this.#release(session);
      if (signal.aborted) {
        // The login may still be running: the logout waits for it, this opener does not.
        this.#track(releasing);
      } else {
        await releasing.catch(() => {}); // a failed login left nothing to log out
      }
      throw error;
    }
  }

  /** Drops one hold on the session; the last one logs out (after the login answered, if it has not yet). */
  #release(session: Session): Promise<void> {
    if (session.retired) return Promise.resolve();
    session.refs--;
    if (session.refs > 0) return Promise.resolve();
    session.retired = true;
    if (this.#sessions.get(session.key) === session) this.#sessions.delete(session.key);
    const done = session.login.then(
      (owned) => (owned ? this.#logout(session) : undefined),
      () => undefined, // a failed login cleaned up after itself
    );
    const settled = done.catch(() => {});
    this.#settling.set(session.key, settled);
    void settled.then(() => {
      if (this.#settling.get(session.key) === settled) this.#settling.delete(session.key);
    });
    return done;
  }

  #track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => {
      this.#backgroundFailures.push((error as Error).message);
    });
    this.#background.add(tracked);
    void tracked.then(() => this.#background.delete(tracked));
  }

  /** Logs in; answers whether the session is ours (false when it was there already: someone else's). */
  async #login(target: IscsiTarget, op: HostBackendOp, path: string): Promise<boolean> {
    const argv = ['iscsiadm', '-m', 'node', '-T', target.iqn, '-p', target.portal, '--login'];
    let result: CommandResult;
    try {
      result = await this.#run(argv, { timeoutMs: this.#commandTimeoutMs });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new HostBackendError('unsupported', 'iscsiadm not found: install open-iscsi', {
          op,
          locator: path,
          cause: error,
        });
      }
      // iscsiadm gave no answer (killed by the timeout): the login may have got through, so log out to be
      // sure. A session that was there before would have been answered "exists" at once, so it is ours.
      const session = { iqn: target.iqn, portal: target.portal };
      const logout = await this.#logout(session).then(
        () => '',
        (e: unknown) => `; logging out afterwards failed too: ${(e as Error).message}`,
      );
      throw new HostBackendError(
        'io',
        `iSCSI login to ${target.iqn} at ${target.portal} did not finish: ${(error as Error).message}${logout}`,
        { op, locator: path, cause: error },
      );
    }
    if (result.exitCode === 0) return true;
    if (result.exitCode === ISCSI_ERR_SESS_EXISTS) return false;
    if (result.exitCode === ISCSI_ERR_NO_OBJS_FOUND) {
      throw new HostBackendError(
        'not-found',
        `iSCSI target ${target.iqn} at ${target.portal} has no node record (discover it: iscsiadm -m discovery -t st -p ${target.portal})`,
        { op, locator: path },
      );
    }
    throw new HostBackendError(
      'io',
      `iSCSI login to ${target.iqn} at ${target.portal} failed: ${describeFailure(result, LOGIN_FAILURES)}`,
      { op, locator: path },
    );
  }

  async #logout(session: { iqn: string; portal: string }): Promise<void> {
    const argv = ['iscsiadm', '-m', 'node', '-T', session.iqn, '-p', session.portal, '--logout'];
    let result: CommandResult;
    try {
      result = await this.#run(argv, { timeoutMs: this.#commandTimeoutMs });
    } catch (error) {
      throw new HostBackendError(
        'io',
        `iSCSI logout from ${session.iqn} at ${session.portal} did not finish: ${(error as Error).message}`,
        { op: 'logout', cause: error },
      );
    }
    // 21: no session to log out of. It is gone already, which is what was wanted.
    if (result.exitCode !== 0 && result.exitCode !== ISCSI_ERR_NO_OBJS_FOUND) {
      throw new HostBackendError(
        'io',
        `iSCSI logout from ${session.iqn} at ${session.portal} failed: ${describeFailure(result, {})}`,
        { op: 'logout' },
      );
    }
  }

  async #waitForDevice(
    path: string,
    target: IscsiTarget,
    op: HostBackendOp,
    signal: AbortSignal,
  ): Promise<void> {
    const timeout = this.#options.deviceTimeoutMs ?? DEFAULT_DEVICE_TIMEOUT_MS;
    const interval = this.#options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    const deadline = this.#now() + timeout;
    for (;;) {
      if (signal.aborted) throw this.#stopped(op, path, signal);
      if (await exists(path)) return;
      const left = deadline - this.#now();
      if (left <= 0) {
        throw new HostBackendError(
          'io',
          `iSCSI device ${path} did not appear within ${timeout / 1000} s of the login (is LUN ${target.lun} mapped to this initiator?)`,
          { op, locator: path },
        );
      }
      await this.#sleep(Math.min(interval, left), signal).catch(() => {}); // an abort is seen at the top
    }
  }

  async #openDevice(
    path: string,
    flags: number,
    op: HostBackendOp,
  ): Promise<{ handle: FileHandle; size: number }> {
    const handle = await open(path, flags).catch((error: unknown) => {
      throw fromNative(error, 'cannot open iSCSI device', op, path);
    });
    try {
      const stats = await handle.stat();
      if (stats.isBlockDevice()) {
        const size = await blockDeviceSize(stats.rdev).catch((error: unknown) => {
          throw fromNative(error, 'cannot read the size of iSCSI device', op, path);
        });
        return { handle, size };
      }
      if (stats.isFile() && this.#options.acceptRegularFiles) return { handle, size: stats.size };
      throw new HostBackendError('invalid-locator', `${path} is not a block device`, { op, locator: path });
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The size of a LUN's device if it is there now, else 0; never logs in. */
  async #presentSize(path: string): Promise<number> {
    try {
      const stats = await stat(path);
      if (stats.isBlockDevice()) return await blockDeviceSize(stats.rdev);
      if (stats.isFile() && this.#options.acceptRegularFiles) return stats.size;
    } catch {
      // Not logged in (no link), or gone in between: size unknown.
    }
    return 0;
  }

  get #commandTimeoutMs(): number {
    return this.#options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  }

  /** Why an open stopped waiting: shutdown, or the caller's signal. */
  #stopped(op: HostBackendOp, path: string, signal: AbortSignal): HostBackendError {
    return this.#shutdown.signal.aborted ? shutDown(op, path) : cancelled(op, path, signal);
  }

  /** One signal for an open: the caller's, or shutdown. Unlinked when the open is done, so nothing piles up. */
  #linked(signal: AbortSignal | undefined): { signal: AbortSignal; unlink: () => void } {
    const shutdown = this.#shutdown.signal;
    if (signal === undefined) return { signal: shutdown, unlink: () => {} };
    const controller = new AbortController();
    const cancel = () => controller.abort(signal.reason); // the caller's reason becomes the error's cause
    const stop = () => controller.abort(shutdown.reason);
    signal.addEventListener('abort', cancel, { once: true });
    shutdown.addEventListener('abort', stop, { once: true });
    return {
      signal: controller.signal,
      unlink: () => {
        signal.removeEventListener('abort', cancel);
        shutdown.removeEventListener('abort', stop);
      },
    };
  }
}

/**
 * The name udev's path_id gives a LUN's device: `ip-<address>:<port>-iscsi-<iqn>-lun-<n>`. The address is
 * the session's persistent address, which iscsid takes from the node record as spelled there (an IPv6 one
 * without its brackets); LUNs from 256 up are written in SCSI's 8-byte form.
 */
function byPathName(target: IscsiTarget): string {
  const at = target.portal.lastIndexOf(':');
  const address = target.portal.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const lun =
    target.lun < 256
      ? String(target.lun)
      : `0x${hex4(target.lun & 0xffff)}${hex4(Math.floor(target.lun / 0x10000) & 0xffff)}00000000`;
  return `ip-${address}:${target.portal.slice(at + 1)}-iscsi-${target.iqn}-lun-${lun}`;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

const PORTAL = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9A-Fa-f:.]+)\]):(\d{1,5})$/;
// RFC 3720 names: letters, digits, '.', '-', ':'; never a '/', a space or anything a shell or path would read.
const TARGET_NAME = /^(?:iqn|eui|naa)\.[A-Za-z0-9.:-]{1,219}$/;

function targetProblem(target: IscsiTarget): string | undefined {
  const portal = PORTAL.exec(typeof target.portal === 'string' ? target.portal : '');
  const port = Number(portal?.[3]);
  if (
    portal === null ||
    (portal[1] !== undefined && !isIPv4(portal[1])) ||
    (portal[2] !== undefined && !isIPv6(portal[2])) ||
    !(port >= 1 && port <= 65535)
  ) {
    return 'portal must be an IP address and port (10.0.0.5:3260, [fd00::5]:3260): the device is named by address, not host name';
  }
  if (typeof target.iqn !== 'string' || !TARGET_NAME.test(target.iqn)) {
    return 'iqn must be an iqn., eui. or naa. name of letters, digits, ".", "-" and ":"';
  }
  if (!Number.isSafeInteger(target.lun) || target.lun < 0 || target.lun > 0xffffffff) {
    return 'lun must be an integer from 0 to 4294967295';
  }
  return undefined;
}

function shutDown(op: HostBackendOp, path: string | undefined): HostBackendError {
  return new HostBackendError('io', 'the iSCSI backend is shut down', { op, locator: path });
}

/** The open's own error, saying also that logging out after it failed (a session may be left behind). */
function alsoFailed(failure: unknown, logout: unknown): unknown {
  if (!(failure instanceof HostBackendError)) return failure;
  return new HostBackendError(
    failure.kind,
    `${failure.message}; logging out afterwards failed too: ${(logout as Error).message}`,
    { op: failure.op, locator: failure.locator, cause: failure },
  );
}

async function closeThen(close: () => Promise<void>, release: () => Promise<void>): Promise<void> {
  try {
    await close();
  } finally {
    await release();
  }
}

function describeFailure(result: CommandResult, meanings: Readonly<Record<number, string>>): string {
  const line = `${result.stderr}\n${result.stdout}`.split('\n').find((l) => l.trim() !== '');
  const meaning = meanings[result.exitCode];
  const code =
    meaning === undefined ? `exit code ${result.exitCode}` : `exit code ${result.exitCode}: ${meaning}`;
  return line === undefined ? code : `${line.trim()} (${code})`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** `promise`, or a rejection with `stopped()` as soon as `signal` aborts (the promise itself runs on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal, stopped: () => unknown): Promise<T> {
  if (signal.aborted) return Promise.reject(stopped());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(stopped());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The default runner: `execFile` (no shell, so no argument is ever interpreted), output captured, the
 * timeout and signal honoured. A program that ran answers its exit code, whatever it was; one that did not
 * (missing, killed) rejects.
 */
export const runCommand: CommandRunner = (argv, options) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    if (file === undefined) {
      reject(new Error('no program to run'));
      return;
    }
    execFile(
      file,
      args,
      {
        timeout: options.timeoutMs ?? 0,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ exitCode: 0, stdout, stderr });
          return;
        }
        const code = (error as { code?: unknown }).code;
        if (typeof code === 'number' && !(error as { killed?: boolean }).killed) {
          resolve({ exitCode: code, stdout, stderr });
          return;
        }
        reject(error);
      },
    );
  });
