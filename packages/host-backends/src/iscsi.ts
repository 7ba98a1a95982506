import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { normalizeLocator, outsideRoots } from './confine.js';
import { fromNative, HostBackendError, type HostBackendOp } from './errors.js';
import { blockDeviceSize, handleReader, handleWriter } from './file-io.js';
import type {
  HostBackend,
  OpenOptions,
  ProvisionRequest,
  SnapshotInfo,
  SnapshotResult,
  VolumeInfo,
  VolumeReader,
  VolumeWriter,
} from './host-backend.js';

export interface IscsiTarget {
  /** `host:port` of the target portal. */
  readonly portal: string;
  readonly iqn: string;
  readonly lun: number;
}

export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program (never a shell) and answers its exit code and output; injected so tests can script it. */
export type CommandRunner = (
  argv: readonly string[],
  options: { signal?: AbortSignal; timeoutMs?: number },
) => Promise<CommandResult>;

export interface IscsiBackendOptions {
  /** The LUNs the agent may use; any other locator is `outside-roots`. */
  readonly targets: readonly IscsiTarget[];
  readonly run?: CommandRunner;
  /** Where udev links LUN devices (default `/dev/disk/by-path`). */
  readonly byPathDir?: string;
  /** How long to wait for the LUN's device after login (default 30 s). */
  readonly deviceTimeoutMs?: number;
  readonly pollIntervalMs?: number;
  /** How long one iscsiadm call may take (default 60 s). */
  readonly commandTimeoutMs?: number;
  /** Accepts a regular file where the device should be: for tests, where the "LUN" is an image file. */
  readonly acceptRegularFiles?: boolean;
  readonly now?: () => number;
}

/** iscsiadm's exit codes that mean something here (open-iscsi's include/iscsi_err.h). */
const ISCSI_ERR_NO_OBJS_FOUND = 21;
const ISCSI_ERR_SESS_EXISTS = 15;

interface Session {
  refs: number;
  /** False when the session was there before our login: someone else's, so never logged out by us. */
  owned: boolean;
  ready: Promise<void>;
}

/**
 * LUNs of iSCSI targets, reached through the kernel initiator: `iscsiadm --login`, wait for the LUN's
 * `/dev/disk/by-path` link, then plain positioned I/O on the device, and `--logout` when the last reader or
 * writer of that target closes — on success, on error, on cancel (an aborted `signal` while waiting), on
 * timeout, and when the agent shuts down (`close`). One login serves every LUN of a target; a session that
 * existed before (an operator's) is used but never logged out. No provisioning and no snapshots: a LUN is
 * made and snapshotted on the storage array. CHAP secrets stay in iscsiadm's node records, never on a
 * command line.
 */
export class IscsiBackend implements HostBackend {
  readonly kind = 'iscsi';
  readonly capabilities = { provision: false, snapshot: false } as const;
  readonly #targets: Map<string, IscsiTarget>;
  readonly #run: CommandRunner;
  readonly #options: IscsiBackendOptions;
  readonly #sessions = new Map<string, Session>();
  #closed = false;

  constructor(options: IscsiBackendOptions) {
    this.#options = options;
    this.#run = options.run ?? runCommand;
    const dir = options.byPathDir ?? '/dev/disk/by-path';
    this.#targets = new Map(
      options.targets.map((t) => [`${dir}/ip-${t.portal}-iscsi-${t.iqn}-lun-${t.lun}`, t]),
    );
  }

  /** The locator of a configured LUN: its by-path device link. */
  locatorOf(target: IscsiTarget): string {
    const found = [...this.#targets].find(
      ([, t]) => t.portal === target.portal && t.iqn === target.iqn && t.lun === target.lun,
    );
    if (found === undefined)
      throw new HostBackendError('outside-roots', 'not a configured iSCSI LUN', { op: 'stat' });
    return found[0];
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

  /** Every configured LUN, each stat'ed through a login; a LUN whose target cannot be reached is left out. */
  async list(): Promise<VolumeInfo[]> {
    const volumes: VolumeInfo[] = [];
    for (const locator of [...this.#targets.keys()].sort()) {
      try {
        volumes.push(await this.stat(locator));
      } catch (error) {
        if (!(error instanceof HostBackendError && (error.kind === 'not-found' || error.kind === 'io')))
          throw error;
      }
    }
    return volumes;
  }

  async stat(locator: string): Promise<VolumeInfo> {
    const reader = await this.openReader(locator);
    try {
      return { locator: reader.path, name: basename(reader.path), size: reader.size };
    } finally {
      await reader.close();
    }
  }

  async snapshot(volume: string, _name: string): Promise<SnapshotResult> {
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
    await this.stat(volume);
    return [];
  }

  async openReader(locator: string, options: OpenOptions = {}): Promise<VolumeReader> {
    const { handle, size, release, path } = await this.#open(
      locator,
      fsConstants.O_RDONLY,
      'open-reader',
      options,
    );
    const reader = handleReader(handle, path, size);
    return { ...reader, read: reader.read, close: () => closeThen(reader.close, release) };
  }

  async openWriter(volume: string, options: OpenOptions = {}): Promise<VolumeWriter> {
    // O_EXCL on a block device fails with EBUSY while it is mounted or held exclusively by someone else.
    const flags = fsConstants.O_WRONLY | (this.#options.acceptRegularFiles ? 0 : fsConstants.O_EXCL);
    const { handle, size, release, path } = await this.#open(volume, flags, 'open-writer', options);
    const writer = handleWriter(handle, path, size);
    return { ...writer, close: () => closeThen(writer.close, release) };
  }

  async deleteSnapshot(snapshot: string): Promise<void> {
    throw new HostBackendError('unsupported', 'iSCSI LUNs have no snapshots here', {
      op: 'delete-snapshot',
      locator: this.#allowed(snapshot, 'delete-snapshot'),
    });
  }

  async deleteVolume(volume: string): Promise<void> {
    throw new HostBackendError(
      'unsupported',
      'iSCSI LUNs are deleted on the storage array, not by the agent',
      {
        op: 'delete-volume',
        locator: this.#allowed(volume, 'delete-volume'),
      },
    );
  }

  /** Logs out of every session this backend logged in to; later opens fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const failures: string[] = [];
    for (const [key, session] of [...this.#sessions]) {
      this.#sessions.delete(key);
      await session.ready.catch(() => {});
      if (!session.owned) continue;
      const [iqn, portal] = key.split('\n') as [string, string];
      try {
        await this.#logout(iqn, portal);
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
    if (failures.length > 0) {
      throw new HostBackendError('io', `iSCSI logout failed: ${failures.join('; ')}`, { op: 'logout' });
    }
  }

  #allowed(locator: string, op: HostBackendOp): string {
    const normalized = normalizeLocator(locator, op);
    if (!this.#targets.has(normalized)) throw outsideRoots(normalized, op, 'the configured iSCSI LUNs');
    return normalized;
  }

  async #open(
    locator: string,
    flags: number,
    op: HostBackendOp,
    options: OpenOptions,
  ): Promise<{ handle: FileHandle; size: number; release: () => Promise<void>; path: string }> {
    const path = this.#allowed(locator, op);
    const target = this.#targets.get(path)!;
    if (this.#closed)
      throw new HostBackendError('io', 'the iSCSI backend is shut down', { op, locator: path });
    const release = await this.#acquire(target, op, path, options.signal);
    try {
      await this.#waitForDevice(path, op, options.signal);
      const handle = await open(path, flags).catch((error: unknown) => {
        throw fromNative(error, 'cannot open iSCSI device', op, path);
      });
      try {
        const stats = await handle.stat();
        let size: number;
        if (stats.isBlockDevice()) size = await blockDeviceSize(stats.rdev);
        else if (stats.isFile() && this.#options.acceptRegularFiles) size = stats.size;
        else
          throw new HostBackendError('invalid-locator', `${path} is not a block device`, {
            op,
            locator: path,
          });
        return { handle, size, release, path };
      } catch (error) {
        await handle.close();
        throw error;
      }
    } catch (error) {
      await release().catch(() => {}); // the original error is the one worth reporting
      throw error;
    }
  }

  /** One login per target, shared by its open LUNs; the returned release logs out after the last one. */
  async #acquire(
    target: IscsiTarget,
    op: HostBackendOp,
    path: string,
    signal?: AbortSignal,
  ): Promise<() => Promise<void>> {
    const key = `${target.iqn}\n${target.portal}`;
    let session = this.#sessions.get(key);
    if (session === undefined) {
      const created: Session = { refs: 0, owned: true, ready: Promise.resolve() };
      created.ready = this.#login(target, op, path, signal).then((owned) => {
        created.owned = owned;
      });
      session = created;
      this.#sessions.set(key, session);
      session.ready.catch(() => {
        if (this.#sessions.get(key) === created) this.#sessions.delete(key);
      });
    }
    session.refs++;
    try {
      await session.ready;
    } catch (error) {
      session.refs--;
      throw error;
    }
    const held = session;
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs > 0 || this.#sessions.get(key) !== held) return;
      this.#sessions.delete(key);
      if (held.owned) await this.#logout(target.iqn, target.portal);
    };
  }

  /** Logs in; answers whether the session is ours (false when it was already there). */
  async #login(target: IscsiTarget, op: HostBackendOp, path: string, signal?: AbortSignal): Promise<boolean> {
    const result = await this.#iscsiadm(
      ['-m', 'node', '-T', target.iqn, '-p', target.portal, '--login'],
      op,
      path,
      signal,
    );
    if (result.exitCode === 0) return true;
    if (result.exitCode === ISCSI_ERR_SESS_EXISTS) return false;
    if (result.exitCode === ISCSI_ERR_NO_OBJS_FOUND) {
      throw new HostBackendError(
        'not-found',
        `iSCSI target ${target.iqn} at ${target.portal} has no node record (run: iscsiadm -m discovery -t st -p ${target.portal})`,
        { op, locator: path },
      );
    }
    throw new HostBackendError(
      'io',
      `iSCSI login to ${target.iqn} at ${target.portal} failed: ${firstLine(result)}`,
      {
        op,
        locator: path,
      },
    );
  }

  async #logout(iqn: string, portal: string): Promise<void> {
    const result = await this.#iscsiadm(
      ['-m', 'node', '-T', iqn, '-p', portal, '--logout'],
      'logout',
      undefined,
    );
    // 21: no session to log out of (already gone) is the state we wanted.
    if (result.exitCode !== 0 && result.exitCode !== ISCSI_ERR_NO_OBJS_FOUND) {
      throw new HostBackendError('io', `iSCSI logout from ${iqn} at ${portal} failed: ${firstLine(result)}`, {
        op: 'logout',
      });
    }
  }

  async #iscsiadm(
    args: string[],
    op: HostBackendOp,
    path: string | undefined,
    signal?: AbortSignal,
  ): Promise<CommandResult> {
    try {
      return await this.#run(['iscsiadm', ...args], {
        ...(signal === undefined ? {} : { signal }),
        timeoutMs: this.#options.commandTimeoutMs ?? 60_000,
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new HostBackendError('unsupported', 'iscsiadm not found: install open-iscsi', {
          op,
          locator: path,
          cause: error,
        });
      }
      if (signal?.aborted) throw abortError(op, path);
      throw new HostBackendError('io', `iscsiadm failed: ${(error as Error).message}`, {
        op,
        locator: path,
        cause: error,
      });
    }
  }

  async #waitForDevice(path: string, op: HostBackendOp, signal?: AbortSignal): Promise<void> {
    const now = this.#options.now ?? Date.now;
    const timeout = this.#options.deviceTimeoutMs ?? 30_000;
    const deadline = now() + timeout;
    for (;;) {
      if (signal?.aborted) throw abortError(op, path);
      const found = await stat(path).then(
        () => true,
        () => false,
      );
      if (found) return;
      if (now() >= deadline) {
        throw new HostBackendError(
          'io',
          `iSCSI device ${path} did not appear within ${timeout / 1000} s of login`,
          {
            op,
            locator: path,
          },
        );
      }
      await sleep(this.#options.pollIntervalMs ?? 250, signal);
    }
  }
}

async function closeThen(close: () => Promise<void>, release: () => Promise<void>): Promise<void> {
  try {
    await close();
  } finally {
    await release();
  }
}

function firstLine(result: CommandResult): string {
  const line = (result.stderr || result.stdout).split('\n').find((l) => l.trim() !== '');
  return line === undefined
    ? `exit code ${result.exitCode}`
    : `${line.trim()} (exit code ${result.exitCode})`;
}

function abortError(op: HostBackendOp, path: string | undefined): HostBackendError {
  return new HostBackendError('io', `cancelled while opening ${path ?? 'an iSCSI LUN'}`, {
    op,
    locator: path,
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The default runner: execFile, no shell, output captured, a timeout and an abort signal honoured. */
export const runCommand: CommandRunner = (argv, options) =>
  new Promise((resolve, reject) => {
    const [file, ...args] = argv;
    execFile(
      file!,
      args,
      {
        timeout: options.timeoutMs ?? 0,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
      (error, stdout, stderr) => {
        if (error && typeof (error as { code?: unknown }).code !== 'number') {
          reject(error);
          return;
        }
        resolve({ exitCode: error ? Number((error as { code?: number }).code) : 0, stdout, stderr });
      },
    );
  });
