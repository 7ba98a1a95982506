// A backup is written once: one test body on every kind of store the engine meets — memory, filesystem,
// S3 on the in-process s3rver, and a throwaway Ceph RGW (when radosgw is installed; required in CI).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDefaultStoreStack,
  FsObjectStore,
  MemoryObjectStore,
  type ObjectStore,
  ObjectStoreError,
  openObjectStore,
  S3ObjectStore,
} from '@stowage/object-store';
import {
  cephUnavailableReason,
  startCeph,
  startS3rver,
  type TestS3Server,
} from '@stowage/object-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume } from './backup.js';
import { Repository } from './repository.js';
import { restoreBackup } from './restore.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { seededBytes, sha256File, writeImage } from './testing/volumes.js';
import { openVolumeSource, type VolumeSource } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-commit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What the shared body needs of a backend: a fresh, empty bare store per test. */
interface Backend {
  bare(name: string): Promise<ObjectStore>;
  /** Why the backend ignores `If-None-Match` (so the conditional create cannot close the race), if it does. */
  ifNoneMatchIgnored?: string;
}

function stack(store: ObjectStore): ObjectStore {
  return createDefaultStoreStack(store, { retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 } });
}

/** `store` with some operations replaced; the rest go to `store`. */
function overriding(store: ObjectStore, replaced: Partial<Pick<ObjectStore, 'head' | 'put'>>): ObjectStore {
  return {
    location: store.location,
    head: (k) => store.head(k),
    list: (p) => store.list(p),
    get: (k, r) => store.get(k, r),
    put: (k, b, o) => store.put(k, b, o),
    delete: (k) => store.delete(k),
    deleteMany: (k) => store.deleteMany(k),
    ...(store.flush ? { flush: () => store.flush!() } : {}),
    ...replaced,
  };
}

function describeWriteOnce(name: string, backend: () => Backend): void {
  describe(`a backup is written once: ${name}`, () => {
    let workers: ChunkWorkers;
    let run = 0;
    afterAll(async () => {
      await workers?.close();
    });

    const setup = async () => {
      const bare = await backend().bare(`write-once-${++run}`);
      const repository = await Repository.init(stack(bare), {
        passphrase: TEST_PASSPHRASE,
        chunker: TEST_CHUNKER_PARAMS,
        kdf: TEST_KDF,
      });
      workers ??= new ChunkWorkers(undefined, { threads: 2 });
      await workers.useKey(repository.targetKey);
      const images: string[] = [];
      for (const seed of ['first', 'second']) {
        const image = join(dir, `${name}-${run}-${seed}.img`);
        await writeImage(image, 1 << 20, [
          { offset: 0, data: seededBytes(`${name}/${run}/${seed}`, 1 << 20) },
        ]);
        images.push(image);
      }
      return { bare, repository, first: images[0]!, second: images[1]! };
    };

    const backup = async (
      repository: Repository,
      image: string,
      backupId?: string,
      wrap: (source: VolumeSource) => VolumeSource = (s) => s,
    ) => {
      const source = await openVolumeSource(image);
      try {
        return await backupVolume({
          repository,
          workers,
          source: wrap(source),
          volumeName: 'once',
          ...(backupId ? { backupId } : {}),
        });
      } finally {
        await source.close();
      }
    };

    const restoresAs = async (repository: Repository, backupId: string, image: string) => {
      const out = join(dir, `${name}-${run}-${backupId}-${Math.random()}.out`);
      await restoreBackup({
        repository,
        workers,
        backup: await repository.resolveBackup(backupId),
        targetPath: out,
      });
      expect(await sha256File(out)).toBe(await sha256File(image));
    };

    const manifests = async (store: ObjectStore) => {
      const keys: string[] = [];
      for await (const info of store.list('manifests/')) keys.push(info.key);
      return keys;
    };

    it('reusing a committed backup id fails with backup-exists before the source is read; the first backup restores byte-exact', async () => {
      const { repository, first, second } = await setup();
      const committed = await backup(repository, first);
      let reads = 0;
      const error = await backup(repository, second, committed.backupId, (s) => ({
        ...s,
        path: s.path,
        size: s.size,
        read: (into, at) => {
          reads++;
          return s.read(into, at);
        },
        close: () => s.close(),
      })).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'backup-exists' });
      expect((error as Error).message).toContain(committed.backupId);
      expect((error as Error).message).toContain('untouched');
      expect(reads).toBe(0);
      expect(await manifests(repository.store)).toEqual([committed.manifestKey]);
      await restoresAs(repository, committed.backupId, first);
    });

    it('a backup whose id another writer commits while it runs fails at its commit, and the other backup stays whole', async () => {
      const { repository, first, second } = await setup();
      const backupId = '0b1c2d3e-4f50-4a61-8b72-9c8d7e6f5a4b';
      let raced = false;
      const error = await backup(repository, first, backupId, (s) => ({
        path: s.path,
        size: s.size,
        read: async (into, at) => {
          // The other writer takes the id while this backup is reading its source.
          if (!raced) {
            raced = true;
            await backup(repository, second, backupId);
          }
          return s.read(into, at);
        },
        close: () => s.close(),
      })).catch((caught: unknown) => caught);
      expect(raced).toBe(true);
      expect(error).toMatchObject({ code: 'backup-exists' });
      expect((await manifests(repository.store)).length).toBe(1);
      await restoresAs(repository, backupId, second);
    });

    it.skipIf(backend().ifNoneMatchIgnored !== undefined)(
      `the conditional create refuses a manifest the HEAD before it missed${
        backend().ifNoneMatchIgnored === undefined ? '' : ` (skipped: ${backend().ifNoneMatchIgnored})`
      }`,
      async () => {
        const { bare, repository, first, second } = await setup();
        const committed = await backup(repository, first);
        // A HEAD that misses manifests stands for the race window: another writer committed between the
        // HEAD and the put. Only the store's If-None-Match can catch it now.
        const blind = await Repository.openWithKey(
          stack(
            overriding(bare, {
              head: (k) => (k.startsWith('manifests/') ? Promise.resolve(undefined) : bare.head(k)),
            }),
          ),
          repository.targetKey,
        );
        await expect(backup(blind, second, committed.backupId)).rejects.toMatchObject({
          code: 'backup-exists',
        });
        expect(await manifests(repository.store)).toEqual([committed.manifestKey]);
        await restoresAs(repository, committed.backupId, first);
      },
    );

    it('a commit whose put lands but loses its answer is recognised on the retry as its own', async () => {
      const { bare, repository, first } = await setup();
      let attempts = 0;
      const losing = await Repository.openWithKey(
        stack(
          overriding(bare, {
            put: async (k, b, o) => {
              if (k.startsWith('manifests/')) attempts++;
              await bare.put(k, b, o);
              if (k.startsWith('manifests/') && attempts === 1) {
                throw new ObjectStoreError('transient', `put ${k}: read ECONNRESET (simulated)`, {
                  op: 'put',
                  key: k,
                });
              }
            },
          }),
        ),
        repository.targetKey,
      );
      const summary = await backup(losing, first);
      // The try whose answer was lost, then the retry: refused by If-None-Match (or, where that is ignored,
      // landing again with the same bytes).
      expect(attempts).toBe(2);
      expect(await manifests(repository.store)).toEqual([summary.manifestKey]);
      await restoresAs(repository, summary.backupId, first);
    });
  });
}

describeWriteOnce('memory', () => ({ bare: async () => new MemoryObjectStore() }));

describeWriteOnce('filesystem', () => ({
  bare: async (name) => new FsObjectStore({ root: join(dir, 'fs', name) }),
}));

/** A bare S3ObjectStore opened the way the apps open one: from a store URL. */
function openS3(server: TestS3Server, bucket: string, prefix: string): S3ObjectStore {
  const url = `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(server.endpoint)}&region=us-east-1&path_style=true`;
  const store = openObjectStore(url, {
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
  if (!(store instanceof S3ObjectStore)) throw new Error(`${url} did not open an S3ObjectStore`);
  return store;
}

describe('on s3rver', () => {
  let server: TestS3Server;
  const stores: S3ObjectStore[] = [];
  beforeAll(async () => {
    server = await startS3rver({ buckets: ['stowage'] });
  });
  afterAll(async () => {
    for (const store of stores) store.destroy();
    await server?.stop();
  });
  describeWriteOnce('s3rver', () => ({
    bare: async (name) => {
      const store = openS3(server, 'stowage', name);
      stores.push(store);
      return store;
    },
    // The HEAD right before the put is all that protects a manifest there (docs/object-store.md).
    ifNoneMatchIgnored: 's3rver 3.7.1 ignores If-None-Match on PUT and overwrites',
  }));
});

// CI sets STOWAGE_REQUIRE_CEPH=1: there a missing radosgw is a failure, never a skip.
const required = process.env.STOWAGE_REQUIRE_CEPH === '1';
const unavailable = await cephUnavailableReason();

describe.runIf(required && unavailable !== undefined)('Ceph RGW (required by STOWAGE_REQUIRE_CEPH=1)', () => {
  it('has radosgw installed', () => {
    expect.fail(`STOWAGE_REQUIRE_CEPH=1 but Ceph cannot run here: ${unavailable}`);
  });
});

describe.skipIf(unavailable !== undefined)(
  `on Ceph RGW${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    let ceph: TestS3Server;
    const stores: S3ObjectStore[] = [];
    beforeAll(async () => {
      ceph = await startCeph({ buckets: ['stowage-commit'] });
    }, 120_000);
    afterAll(async () => {
      for (const store of stores) store.destroy();
      await ceph?.stop();
    });
    describeWriteOnce('Ceph RGW', () => ({
      bare: async (name) => {
        const store = openS3(ceph, 'stowage-commit', name);
        stores.push(store);
        return store;
      },
    }));
  },
);
