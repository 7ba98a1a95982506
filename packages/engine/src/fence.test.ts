// The commit fence (BackupOptions.beforeCommit): a backup's root is written only with leave, within its limit.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryObjectStore, type ObjectStore } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from './errors.js';
import { backupImage, newTestRepository } from './testing/round-trip.js';
import { seededBytes } from './testing/volumes.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-fence-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function image(name: string): Promise<string> {
  const path = join(dir, name);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(path, seededBytes(name, 3 << 20));
  return path;
}

/** A store whose manifest puts take `delayMs` (a slow S3 answer at the commit point). */
class SlowManifestStore extends MemoryObjectStore {
  constructor(private readonly delayMs: number) {
    super();
  }
  override async put(key: string, body: Uint8Array, options?: Parameters<ObjectStore['put']>[2]) {
    if (key.startsWith('manifests/')) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, this.delayMs);
        options?.signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(options.signal?.reason);
        });
      });
      options?.signal?.throwIfAborted();
    }
    return super.put(key, body, options);
  }
}

describe('the commit fence', () => {
  it('asks once, after everything but the root is stored, and commits with leave', async () => {
    const { repository, workers, store } = await newTestRepository();
    try {
      let asked = 0;
      let packsWhenAsked = 0;
      const summary = await backupImage(repository, workers, await image('ok'), 'ok', {
        beforeCommit: async () => {
          asked++;
          for await (const _ of store.list('packs/')) packsWhenAsked++;
          return { validForMs: 10_000 };
        },
      });
      expect(asked).toBe(1);
      expect(packsWhenAsked).toBe(summary.packs);
      expect(await store.head(summary.manifestKey)).toBeDefined();
    } finally {
      await workers.close();
    }
  });

  it('commits nothing when leave is refused: the packs stay for GC, no root exists', async () => {
    const { repository, workers, store } = await newTestRepository();
    try {
      const backupId = '0b7e9d4c-6a1f-4c2e-9f3a-5d8b7c6e1a20';
      await expect(
        backupImage(repository, workers, await image('refused'), 'refused', {
          backupId,
          beforeCommit: async () => {
            throw new EngineError('commit-refused', 'the lease has ended');
          },
        }),
      ).rejects.toMatchObject({ code: 'commit-refused' });
      const roots = [];
      for await (const info of store.list('manifests/')) roots.push(info.key);
      expect(roots).toEqual([]);
      const packs = [];
      for await (const info of store.list('packs/')) packs.push(info.key);
      expect(packs.length).toBeGreaterThan(0);
    } finally {
      await workers.close();
    }
  });

  it('aborts a root write that outlasts the leave (commit-expired), leaving no root', async () => {
    const { repository, workers, store } = await newTestRepository(new SlowManifestStore(2_000));
    try {
      const started = performance.now();
      await expect(
        backupImage(repository, workers, await image('slow'), 'slow', {
          beforeCommit: async () => ({ validForMs: 200 }),
        }),
      ).rejects.toMatchObject({ code: 'commit-expired' });
      expect(performance.now() - started).toBeLessThan(10_000);
      const roots = [];
      for await (const info of store.list('manifests/')) roots.push(info.key);
      expect(roots).toEqual([]);
    } finally {
      await workers.close();
    }
  });
});
