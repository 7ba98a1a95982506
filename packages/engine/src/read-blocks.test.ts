import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateScanBuffer } from '@stowage/chunker';
import { MemoryObjectStore } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume } from './backup.js';
import { Repository } from './repository.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { seededBytes, writeImage } from './testing/volumes.js';
import { openVolumeSource } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-read-blocks-'));
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
