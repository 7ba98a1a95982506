import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openVolumeSource } from './volume-io.js';

let dirs: string[] = [];
beforeAll(async () => {
  dirs = [await mkdtemp(join(tmpdir(), 'stowage-source-'))];
  // tmpfs: a filesystem that may refuse O_DIRECT, where reads must fall back to the page cache.
  if (existsSync('/dev/shm')) dirs.push(await mkdtemp('/dev/shm/stowage-source-'));
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const SIZE = 3 * 1024 * 1024 + 1234; // the last block partial: its read cannot be direct

/** Reads at these [position, length, buffer offset]: aligned (direct), unaligned, past the end. */
const READS: Array<[number, number, number]> = [
  [0, 1 << 20, 0],
  [1 << 20, 1 << 20, 4096],
  [4096, 8192, 1], // an unaligned buffer
  [12_345, 100_000, 0],
  [3 << 20, 8192, 0], // runs past the end: short
  [SIZE - 10, 4096, 0],
  [SIZE, 4096, 0],
];

describe('openVolumeSource', () => {
  it('reads the same bytes with and without direct I/O, aligned or not, on every filesystem here', async () => {
    const data = randomBytes(SIZE);
    for (const dir of dirs) {
      const path = join(dir, 'volume.img');
      await writeFile(path, data);
      for (const directIo of [true, false]) {
        const source = await openVolumeSource(path, { directIo });
        try {
          expect(source.size).toBe(SIZE);
          for (const [position, length, offset] of READS) {
            // Memory from the chunker's kind of buffer is page-aligned; a plain one is whatever it is.
            const buffer = new Uint8Array(new SharedArrayBuffer(length + 8192));
            const into = buffer.subarray(offset, offset + length);
            const got = await source.read(into, position);
            const want = data.subarray(position, position + length);
            expect(got, `${dir} direct=${directIo} at ${position}`).toBe(want.length);
            expect(Buffer.from(into.subarray(0, got)).equals(want)).toBe(true);
          }
        } finally {
          await source.close();
        }
      }
    }
  });

  it('sees data written through the page cache just before (the kernel writes it back first)', async () => {
    const path = join(dirs[0]!, 'fresh.img');
    const data = randomBytes(1 << 20);
    await writeFile(path, data);
    const source = await openVolumeSource(path);
    try {
      const into = new Uint8Array(1 << 20);
      expect(await source.read(into, 0)).toBe(1 << 20);
      expect(Buffer.from(into).equals(data)).toBe(true);
    } finally {
      await source.close();
    }
  });
});
