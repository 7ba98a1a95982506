import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryObjectStore } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume } from './backup.js';
import { EngineError } from './errors.js';
import { Repository } from './repository.js';
import { restoreBackup } from './restore.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { sha256File, writeTestVolume } from './testing/volumes.js';
import { openVolumeSource, type VolumeTarget } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

let dir: string;
let repository: Repository;
let workers: ChunkWorkers;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-restore-target-'));
  repository = await Repository.init(new MemoryObjectStore(), {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  workers = new ChunkWorkers(repository.targetKey, { threads: 2 });
});
afterAll(async () => {
  await workers.close();
  await rm(dir, { recursive: true, force: true });
});

/** A caller-opened target, as the agent makes from a host backend's volume writer. */
async function openedTarget(path: string, size: number, calls: string[]): Promise<VolumeTarget> {
  const handle = await open(path, 'w+');
  await handle.truncate(size);
  return {
    path,
    fd: handle.fd,
    holesAreZero: true,
    async commit() {
      calls.push('commit');
      await handle.sync();
      await handle.close();
    },
    async discard() {
      calls.push('discard');
      await handle.close();
    },
  };
}

describe('restore into a target the caller opened', () => {
  it('writes through its descriptor, commits on success and discards on failure', async () => {
    const image = join(dir, 'source.img');
    await writeTestVolume(image, 5 << 20, 'target');
    const source = await openVolumeSource(image);
    const summary = await backupVolume({ repository, workers, source, volumeName: 'v' }).finally(() =>
      source.close(),
    );
    const manifest = await repository.loadManifest(summary);

    const calls: string[] = [];
    const path = join(dir, 'restored.img');
    await restoreBackup({
      repository,
      workers,
      backup: summary,
      manifest,
      target: await openedTarget(path, manifest.volumeSize, calls),
    });
    expect(calls).toEqual(['commit']);
    expect(await sha256File(path)).toBe(await sha256File(image));

    const failing: string[] = [];
    const controller = new AbortController();
    controller.abort();
    await expect(
      restoreBackup({
        repository,
        workers,
        backup: summary,
        target: await openedTarget(join(dir, 'cancelled.img'), manifest.volumeSize, failing),
        signal: controller.signal,
      }),
    ).rejects.toThrow(EngineError);
    expect(failing).toEqual(['discard']);
  });

  it('refuses a target smaller than the volume, and a manifest of another backup, releasing the target', async () => {
    const image = join(dir, 'small-source.img');
    await writeTestVolume(image, 2 << 20, 'small');
    const source = await openVolumeSource(image);
    const summary = await backupVolume({ repository, workers, source, volumeName: 's' }).finally(() =>
      source.close(),
    );
    const manifest = await repository.loadManifest(summary);

    const calls: string[] = [];
    const path = join(dir, 'too-small.img');
    const small = { ...(await openedTarget(path, 1 << 20, calls)), size: 1 << 20 };
    await expect(
      restoreBackup({ repository, workers, backup: summary, manifest, target: small }),
    ).rejects.toMatchObject({ code: 'target-too-small' });
    expect(calls).toEqual(['discard']);
    expect((await stat(path)).blocks).toBe(0); // nothing written

    const other: string[] = [];
    await expect(
      restoreBackup({
        repository,
        workers,
        backup: { ...summary, backupId: '00000000-0000-4000-8000-000000000000' },
        manifest,
        target: await openedTarget(join(dir, 'other.img'), manifest.volumeSize, other),
      }),
    ).rejects.toMatchObject({ code: 'invalid-argument' });
    expect(other).toEqual(['discard']);

    const missing: string[] = [];
    await expect(
      restoreBackup({
        repository,
        workers,
        backup: { ...summary, manifestKey: `${summary.manifestKey}-missing` },
        target: await openedTarget(join(dir, 'missing.img'), manifest.volumeSize, missing),
      }),
    ).rejects.toMatchObject({ kind: 'not-found' });
    expect(missing).toEqual(['discard']);
  });

  it('needs exactly one of targetPath and target', async () => {
    const backup = { volumeId: '00000000-0000-8000-8000-000000000000', backupId: 'x', manifestKey: 'x' };
    await expect(restoreBackup({ repository, workers, backup })).rejects.toThrow(/exactly one/);
  });
});

describe('trusting the previous manifest', () => {
  it("skips the HEAD of chunks the volume's latest committed manifest names, unless told not to", async () => {
    const { withMetrics, MemoryObjectStore: Memory } = await import('@stowage/object-store');
    const heads: string[] = [];
    const inner = new Memory();
    const store = withMetrics(inner, (event) => {
      if (event.op === 'head' && event.key?.startsWith('chunks/')) heads.push(event.key);
    });
    const repo = await Repository.init(store, {
      passphrase: TEST_PASSPHRASE,
      chunker: TEST_CHUNKER_PARAMS,
      kdf: TEST_KDF,
    });
    const w = new ChunkWorkers(repo.targetKey, { threads: 2 });
    try {
      const image = join(dir, 'trusted.img');
      await writeTestVolume(image, 4 << 20, 'trusted');
      const run = async (options: { trustPreviousManifest?: boolean } = {}) => {
        const source = await openVolumeSource(image);
        try {
          return await backupVolume({
            repository: repo,
            workers: w,
            source,
            volumeName: 'trusted',
            ...options,
          });
        } finally {
          await source.close();
        }
      };
      const first = await run();
      // Nothing to trust yet: one HEAD per distinct chunk, and one per manifest segment.
      expect(first.manifestSegments).toBe(1);
      expect(heads.length).toBe(first.chunks + first.manifestSegments);
      heads.length = 0;
      const second = await run();
      expect(second.chunksNew).toBe(0);
      expect(heads).toEqual([]);
      expect(second.manifestSegmentsNew).toBe(0); // the same entries: the same segment, trusted too
      const checked = await run({ trustPreviousManifest: false });
      expect(checked.chunksNew).toBe(0);
      expect(heads.length).toBe(first.chunks + first.manifestSegments);
    } finally {
      await w.close();
    }
  });
});
