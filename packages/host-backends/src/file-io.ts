import type { FileHandle } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { fromNative, HostBackendError } from './errors.js';
import type { VolumeReader, VolumeWriter } from './host-backend.js';

/** Size of a block device from sysfs: stat reports 0 for devices. */
export async function blockDeviceSize(rdev: number): Promise<number> {
  // glibc's dev_t layout: major in bits 8–19 (and 32–43), minor in bits 0–7 and 20–31.
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  const sectors = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
  return Number(sectors.trim()) * 512;
}

/** A reader over an open handle; it owns the handle from here on. */
export function handleReader(handle: FileHandle, path: string, size: number): VolumeReader {
  return {
    path,
    size,
    async read(into, position) {
      let done = 0;
      try {
        while (done < into.length) {
          const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
      } catch (error) {
        throw fromNative(error, 'cannot read', 'read', path);
      }
      return done;
    },
    close: () => handle.close(),
  };
}

/** A writer over an open handle, refusing writes past `size`; it owns the handle from here on. */
export function handleWriter(handle: FileHandle, path: string, size: number): VolumeWriter {
  return {
    path,
    size,
    fd: handle.fd,
    async write(data, position) {
      if (!Number.isSafeInteger(position) || position < 0 || position + data.length > size) {
        throw new HostBackendError(
          'invalid-argument',
          `cannot write ${data.length} bytes at ${position} to ${path}: the volume holds ${size}`,
          { op: 'write', locator: path },
        );
      }
      let done = 0;
      try {
        while (done < data.length) {
          const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
          done += bytesWritten;
        }
      } catch (error) {
        throw fromNative(error, 'cannot write', 'write', path);
      }
    },
    async sync() {
      try {
        await handle.sync();
      } catch (error) {
        throw fromNative(error, 'cannot sync', 'sync', path);
      }
    },
    close: () => handle.close(),
  };
}
