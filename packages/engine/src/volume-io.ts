import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open, readFile, rename, stat, unlink } from 'node:fs/promises';
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

export async function openVolumeSource(path: string): Promise<VolumeSource> {
  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY);
  } catch (error) {
    throw ioError('cannot open volume', path, error);
  }
  try {
    const st = await handle.stat();
    let size: number;
    if (st.isFile()) size = st.size;
    else if (st.isBlockDevice()) size = await blockDeviceSize(st.rdev);
    else throw new EngineError('invalid-source', `${path} is neither a regular file nor a block device`);
    return {
      path,
      size,
      async read(into, position) {
        let done = 0;
        while (done < into.length) {
          const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done;
      },
      close: () => handle.close(),
    };
  } catch (error) {
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

/**
 * Opens a restore target. A regular file is restored into a temporary file beside it and renamed into place
 * only on success, so a failed or cancelled restore never leaves a full-size, partly written image where the
 * volume should be, and `--overwrite` keeps the old file until the new one is whole. A block device must be
 * at least the volume's size and not in use (O_EXCL).
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
  const tempPath = join(directory, `.${basename(path)}.stowage-partial-${randomBytes(6).toString('hex')}`);
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
