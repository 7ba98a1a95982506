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
