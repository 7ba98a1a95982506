import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateScanBuffer } from '@stowage/chunker';
import { MemoryObjectStore } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume } from './backup.js';
import { ReadRing } from './read-ring.js';
import { Repository } from './repository.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { seededBytes, writeImage } from './testing/volumes.js';
import { openVolumeSource } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-read-ring-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Where the next scan buffer would start: the same before and after a backup that gave its blocks back. */
function nextScanBuffer(): number {
  const probe = allocateScanBuffer(1);
  const at = probe.bytes.byteOffset;
  probe.release();
  return at;
}

describe('a backup’s read blocks', () => {
  it('go back to the chunker and are detached from the workers, whether it completes, is cancelled or fails', async () => {
    const repository = await Repository.init(new MemoryObjectStore(), {
      passphrase: TEST_PASSPHRASE,
      chunker: TEST_CHUNKER_PARAMS,
      kdf: TEST_KDF,
    });
    const workers = new ChunkWorkers(repository.targetKey, { threads: 2 });
    const keyless = new ChunkWorkers(undefined, { threads: 1 });
    const image = join(dir, 'blocks.img');
    await writeImage(image, 3 << 20, [{ offset: 0, data: seededBytes('blocks', 3 << 20) }]);
    const source = await openVolumeSource(image);
    const backup = (more: Partial<Parameters<typeof backupVolume>[0]>) =>
      backupVolume({ repository, workers, source, volumeName: 'v', readSize: 100_000, ...more });
    try {
      const free = nextScanBuffer();
      expect((await backup({})).chunksNew).toBeGreaterThan(20);
      expect(nextScanBuffer()).toBe(free);
      expect(workers.attachedBuffers).toBe(0);

      const controller = new AbortController();
      const cancelled = await backup({
        signal: controller.signal,
        onProgress: () => controller.abort(),
      }).catch((e) => e);
      expect(cancelled).toMatchObject({ code: 'aborted' });
      expect(nextScanBuffer()).toBe(free);
      expect(workers.attachedBuffers).toBe(0);

      // An error in a worker (here: no key) fails the backup with that error.
      await expect(backup({ workers: keyless, volumeName: 'w' })).rejects.toThrow(/no key yet/);
      expect(nextScanBuffer()).toBe(free);
      expect(keyless.attachedBuffers).toBe(0);

      // And the pools are still good for the next backup.
      expect((await backup({ volumeName: 'x' })).chunksNew).toBe(0);
    } finally {
      await source.close();
      await workers.close();
      await keyless.close();
    }
  });
});

describe('ReadRing', () => {
  it('hands out slots in order, each once free; ranges hold every slot they lie in; the wrap copies to the prefix', async () => {
    const workers = new ChunkWorkers(undefined, { threads: 1 });
    const ring = await ReadRing.open(workers, { maxSize: 10_000, readSize: 4096, readAhead: 1 });
    try {
      // A chunk of up to 10,000 bytes lies in up to 4 slots of 4096; with one read ahead and one spare: 6.
      expect(ring.slotCount).toBe(6);
      expect(workers.attachedBuffers).toBe(1);
      const slots = [];
      for (let i = 0; i < 6; i++) slots.push(await ring.acquireNext());
      expect(slots.map((s) => s.index)).toEqual([0, 1, 2, 3, 4, 5]);
      for (const [i, s] of slots.entries()) {
        expect(s.dataAt - slots[0]!.dataAt).toBe(i * 4096); // back to back: a chunk runs on into the next
        expect(ring.dataOf(s, 4096).buffer).toBe(ring.buffer);
      }
      expect(slots[0]!.dataAt % 4096).toBe(0);
      // A range across slots 1–3 holds all three; slot 1 is not handed out again until it is released.
      const range = ring.hold(slots[1]!.dataAt + 100, 9000);
      expect(range.slots.map((s) => s.index)).toEqual([1, 2, 3]);
      for (const s of slots) ring.releaseSlot(s);
      const again0 = await ring.acquireNext();
      expect(again0.index).toBe(0);
      let got1: number | undefined;
      const next = ring.acquireNext().then((s) => {
        got1 = s.index;
        return s;
      });
      await new Promise((r) => setTimeout(r, 10));
      expect(got1).toBeUndefined();
      ring.release(range);
      expect((await next).index).toBe(1);
      // The wrap: the tail of the last slot moves to just before the first, and counts as the first slot's.
      const whole = new Uint8Array(ring.buffer);
      const tailAt = slots[5]!.dataAt + 4096 - 3000;
      whole.fill(7, tailAt, tailAt + 3000);
      const moved = ring.moveToPrefix(tailAt, 3000);
      expect(moved).toBe(slots[0]!.dataAt - 3000);
      expect(whole.subarray(moved, moved + 3000).every((b) => b === 7)).toBe(true);
      expect(ring.hold(moved, 5000).slots.map((s) => s.index)).toEqual([0]);
      expect(ring.hold(moved, 8000).slots.map((s) => s.index)).toEqual([0, 1]);
    } finally {
      await ring.close();
      await workers.close();
    }
    expect(workers.attachedBuffers).toBe(0);
  });
});
