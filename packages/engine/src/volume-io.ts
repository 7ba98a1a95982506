import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open, readFile, stat, unlink } from 'node:fs/promises';
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
  /** True when skipped ranges read back as zeros (a new or truncated regular file). */
  readonly holesAreZero: boolean;
  sync(): Promise<void>;
  close(): Promise<void>;
  /** Close and remove what was created, after a failed restore. */
  discard(): Promise<void>;
}

export async function openVolumeTarget(
  path: string,
  size: number,
  options: { overwrite?: boolean } = {},
): Promise<VolumeTarget> {
  const existing = await stat(path).catch(() => undefined);
  let handle: FileHandle;
  let created = false;
  try {
    if (existing?.isBlockDevice()) {
      handle = await open(path, fsConstants.O_WRONLY);
      const deviceSize = await blockDeviceSize(existing.rdev);
      if (deviceSize < size) {
        await handle.close();
        throw new EngineError(
          'target-too-small',
          `${path} holds ${deviceSize} bytes; the backup needs ${size}`,
        );
      }
    } else if (existing) {
      if (!existing.isFile())
        throw new EngineError('invalid-target', `${path} is not a file or block device`);
      if (existing.size > 0 && !options.overwrite) {
        throw new EngineError(
          'target-exists',
          `${path} exists and is not empty (pass --overwrite to replace it)`,
        );
      }
      handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_TRUNC);
      await handle.truncate(size);
    } else {
      handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
      created = true;
      await handle.truncate(size);
    }
  } catch (error) {
    if (error instanceof EngineError) throw error;
    throw ioError('cannot open restore target', path, error);
  }
  const h = handle;
  return {
    path,
    fd: h.fd,
    holesAreZero: !existing?.isBlockDevice(),
    sync: () => h.sync(),
    close: () => h.close(),
    async discard() {
      await h.close().catch(() => {});
      if (created) await unlink(path).catch(() => {});
    },
  };
}

function ioError(what: string, path: string, error: unknown): EngineError {
  const code = (error as { code?: string }).code;
  const detail = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(error);
  return new EngineError('io', `${what} ${path}: ${detail}`, { cause: error });
}
