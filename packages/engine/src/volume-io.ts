import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open, readdir, readFile, readlink, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { EngineError } from './errors.js';

/** A volume image or block device opened for streaming reads. */
export interface VolumeSource {
  readonly path: string;
  readonly size: number;
  read(into: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

/** Size of a block device from sysfs (stat reports 0 for devices). */
async function blockDeviceSize(rdev: number): Promise<number> {
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  const sectors = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(sectors.trim()) * 512;
}

/** Offsets, lengths and buffer addresses of direct reads are multiples of this (any device's logical block). */
const DIRECT_ALIGN = 4096;

export interface VolumeSourceOptions {
  /**
   * Read 4 KiB-aligned ranges with O_DIRECT (default true), past the page cache: a backup reads every byte of
   * the volume once, and through the cache it would evict what the host keeps there and copy each byte once
   * more (≈ 0.3 s of CPU per 2 GiB, measured). Ranges that are not aligned (a volume's last bytes, a buffer
   * not 4 KiB-aligned), and every read on a filesystem that refuses O_DIRECT (tmpfs), are ordinary reads.
   * The kernel writes dirty cached pages of a range back before reading it directly, so both see the same data.
   */
  directIo?: boolean;
}

export async function openVolumeSource(
  path: string,
  options: VolumeSourceOptions = {},
): Promise<VolumeSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY);
  } catch (error) {
    throw ioError('cannot open volume', path, error);
  }
  let direct: FileHandle | undefined;
  try {
    const st = await handle.stat();
    let size: number;
    if (st.isFile()) size = st.size;
    else if (st.isBlockDevice()) size = await blockDeviceSize(st.rdev);
    else throw new EngineError('invalid-source', `${path} is neither a regular file nor a block device`);
    if (options.directIo !== false && fsConstants.O_DIRECT !== undefined) {
      direct = await open(path, fsConstants.O_RDONLY | fsConstants.O_DIRECT).catch(() => undefined);
    }
    // Cleared at the first EINVAL (a filesystem that opens with O_DIRECT but will not read so); the handle
    // stays open until close, since other reads may be running on it.
    let useDirect = direct !== undefined;
    const read = async (into: Uint8Array, offset: number, length: number, position: number) => {
      const aligned = (position | length | (into.byteOffset + offset)) % DIRECT_ALIGN === 0;
      if (useDirect && aligned) {
        try {
          return (await direct!.read(into, offset, length, position)).bytesRead;
        } catch (error) {
          if ((error as { code?: string }).code !== 'EINVAL') throw error;
          useDirect = false;
        }
      }
      return (await handle.read(into, offset, length, position)).bytesRead;
    };
    return {
      path,
      size,
      async read(into, position) {
        let done = 0;
        while (done < into.length) {
          const bytesRead = await read(into, done, into.length - done, position + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done;
      },
      async close() {
        await direct?.close();
        await handle.close();
      },
    };
  } catch (error) {
    await direct?.close();
    await handle.close();
    throw error;
  }
}

/** A restore destination: positioned writes, holes left sparse (or zero-filled on devices). */
export interface VolumeTarget {
  readonly path: string;
  readonly fd: number;
  /** True when skipped ranges read back as zeros (a fresh regular file). */
  readonly holesAreZero: boolean;
  /**
   * Bytes the target holds, when the caller knows (a host backend's volume): a restore into a target smaller
   * than the backup fails before writing anything. The targets opened here check their own size.
   */
  readonly size?: number;
  /** Makes the restored data durable and visible at `path` (fsync; for files, rename into place). */
  commit(): Promise<void>;
  /** Closes and removes what the restore wrote to a file (a device is left as it is), after a failure. */
  discard(): Promise<void>;
}

const PARTIAL_MARK = '.stowage-partial-';

/**
 * Which machine and pid namespace wrote a partial file: a hash of the host name and of this process's pid
 * namespace. A pid means something only where it was issued: another container sharing the directory (its
 * own pid namespace) or another host on a network filesystem may run a restore under a pid that is dead here.
 */
let writerTag: Promise<string> | undefined;
function partialWriterTag(): Promise<string> {
  writerTag ??= (async () => {
    const namespace = await readlink('/proc/self/ns/pid').catch(() => '');
    return createHash('sha256').update(`${hostname()}\0${namespace}`).digest('hex').slice(0, 8);
  })();
  return writerTag;
}

/** `.NAME.stowage-partial-<writer tag>-<pid>-<random>` beside `path`: hidden, and named after its writer. */
async function partialPath(path: string): Promise<string> {
  const tag = await partialWriterTag();
  const name = `.${basename(path)}${PARTIAL_MARK}${tag}-${process.pid}-${randomBytes(6).toString('hex')}`;
  return join(dirname(path), name);
}

/**
 * Removes the partial files of restores to `path` whose writer is gone: a restore killed with SIGKILL (or a
 * power cut) never reaches its cleanup and leaves a hidden file the size of the volume. A file is removed only
 * when it was written on this host and pid namespace (see `partialWriterTag`) by a pid that no longer exists
 * (`kill(pid, 0)` fails with ESRCH), so the partial file of a restore still running in another process is
 * never touched. A reused pid keeps a stale file until that process is gone too, the safe way round. Files of
 * other writers, and those named before writers were recorded (no pid), are left alone. Returns the paths
 * removed.
 */
export async function removeStalePartialFiles(path: string): Promise<string[]> {
  const prefix = `.${basename(path)}${PARTIAL_MARK}`;
  const tag = await partialWriterTag();
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return []; // creating the target reports what is wrong with the directory
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^([0-9a-f]{8})-(\d+)-[0-9a-f]{12}$/.exec(name.slice(prefix.length));
    if (m === null || m[1] !== tag) continue;
    const pid = Number(m[2]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || processExists(pid)) continue;
    const stale = join(dirname(path), name);
    try {
      await unlink(stale);
      removed.push(stale);
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOENT')
        throw ioError('cannot remove stale partial file', stale, error);
    }
  }
  return removed;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists and belongs to someone else. Only ESRCH says nobody has the pid.
    return (error as { code?: string }).code !== 'ESRCH';
  }
}

/**
 * Opens a restore target. A regular file is restored into a temporary file beside it and renamed into place
 * only on success, so a failed or cancelled restore never leaves a full-size, partly written image where the
 * volume should be, and `--overwrite` keeps the old file until the new one is whole. Partial files that
 * killed restores left for the same path are removed first (`removeStalePartialFiles`). A block device must
 * be at least the volume's size and not in use (O_EXCL).
 */
export async function openVolumeTarget(
  path: string,
  size: number,
  options: { overwrite?: boolean } = {},
): Promise<VolumeTarget> {
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isBlockDevice()) return openDeviceTarget(path, size, existing.rdev);
  if (existing && !existing.isFile()) {
    throw new EngineError('invalid-target', `${path} is not a regular file or a block device`);
  }
  if (existing && existing.size > 0 && !options.overwrite) {
    throw new EngineError(
      'target-exists',
      `${path} exists and is not empty (pass --overwrite to replace it)`,
    );
  }
  const directory = dirname(path);
  await removeStalePartialFiles(path);
  const tempPath = await partialPath(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tempPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    await handle.truncate(size);
  } catch (error) {
    await handle?.close().catch(() => {});
    await unlink(tempPath).catch(() => {});
    throw ioError('cannot create restore target', path, error);
  }
  const h = handle;
  return {
    path,
    fd: h.fd,
    holesAreZero: true,
    async commit() {
      try {
        await h.sync();
        await h.close();
        await rename(tempPath, path);
        await syncDirectory(directory);
      } catch (error) {
        await unlink(tempPath).catch(() => {});
        throw ioError('cannot complete restore target', path, error);
      }
    },
    async discard() {
      await h.close().catch(() => {});
      await unlink(tempPath).catch(() => {});
    },
  };
}

async function openDeviceTarget(path: string, size: number, rdev: number): Promise<VolumeTarget> {
  let handle: FileHandle | undefined;
  try {
    // O_EXCL on a block device fails with EBUSY while it is mounted or otherwise held open exclusively.
    handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_EXCL);
    const deviceSize = await blockDeviceSize(rdev);
    if (deviceSize < size) {
      throw new EngineError(
        'target-too-small',
        `${path} holds ${deviceSize} bytes; the backup needs ${size}`,
      );
    }
  } catch (error) {
    await handle?.close().catch(() => {});
    if (error instanceof EngineError) throw error;
    throw ioError('cannot open restore target', path, error);
  }
  const h = handle;
  return {
    path,
    fd: h.fd,
    holesAreZero: false,
    async commit() {
      await h.sync();
      await h.close();
    },
    discard: () => h.close().catch(() => {}),
  };
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function ioError(what: string, path: string, error: unknown): EngineError {
  const code = (error as { code?: string }).code;
  const detail =
    code === 'ENOENT'
      ? 'no such file or directory'
      : code === 'EACCES'
        ? 'permission denied'
        : code === 'ENOSPC'
          ? 'no space left on device'
          : code === 'EBUSY'
            ? 'device is busy (mounted or in use)'
            : ((error as Error).message ?? String(error));
  return new EngineError('io', `${what} ${path}: ${detail}`, { cause: error });
}
