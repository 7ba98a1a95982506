import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodePackIndex,
  describeLocation,
  IntegrityError,
  packObjectKey,
  WrongPassphraseError,
} from '@stowage/format';
import {
  abortedError,
  createSeededRandom,
  MemoryObjectStore,
  type ObjectStore,
  ObjectStoreError,
  type ObjectStoreOp,
  withFaults,
  withRetry,
} from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume } from './backup.js';
import { EngineError } from './errors.js';
import { Repository } from './repository.js';
import { restoreBackup } from './restore.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { restoreAndHash } from './testing/round-trip.js';
import { seededBytes, sha256File, textBytes, writeImage, writeTestVolume } from './testing/volumes.js';
import { verifyBackup } from './verify.js';
import { openVolumeSource } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

// Small chunks so a few MiB of test data makes hundreds of them.
const PARAMS = TEST_CHUNKER_PARAMS;
const FAST_KDF = TEST_KDF;
const PASS = TEST_PASSPHRASE;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-engine-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `store` with some operations replaced (failing, stalling or dying ones); the rest go to `store`. */
function overriding(store: ObjectStore, replaced: Partial<Pick<ObjectStore, 'get' | 'put'>>): ObjectStore {
  return {
    location: store.location,
    head: (k, o) => store.head(k, o),
    list: (p, o) => store.list(p, o),
    get: (k, r, o) => store.get(k, r, o),
    put: (k, b, o) => store.put(k, b, o),
    delete: (k, o) => store.delete(k, o),
    deleteMany: (k, o) => store.deleteMany(k, o),
    ...replaced,
  };
}

/**
 * A request on a dead connection: it never answers, and ends only when its signal aborts, rejecting with
 * `aborted` as every store does. `pending` counts the ones still in flight; one given no signal stays so.
 */
function stallUntilAborted<T>(
  op: ObjectStoreOp,
  key: string,
  signal: AbortSignal | undefined,
  pending: { count: number },
): Promise<T> {
  if (signal?.aborted) return Promise.reject(abortedError(op, key, signal));
  pending.count++;
  return new Promise<T>((_, reject) => {
    signal?.addEventListener(
      'abort',
      () => {
        pending.count--;
        reject(abortedError(op, key, signal));
      },
      { once: true },
    );
  });
}

async function newRepo(store: ObjectStore = new MemoryObjectStore()) {
  const repository = await Repository.init(store, { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
  const workers = new ChunkWorkers(repository.targetKey, { threads: 2 });
  return { repository, workers, store };
}

async function backupFile(
  repository: Repository,
  workers: ChunkWorkers,
  path: string,
  volumeName = 'vol',
  readSize?: number,
  more: Partial<Parameters<typeof backupVolume>[0]> = {},
) {
  const source = await openVolumeSource(path);
  try {
    return await backupVolume({
      repository,
      workers,
      source,
      volumeName,
      ...(readSize ? { readSize } : {}),
      ...more,
    });
  } finally {
    await source.close();
  }
}

describe('backup and restore', () => {
  it('restores byte-exact, leaves holes sparse, and re-backs up unchanged data without uploads', async () => {
    const { repository, workers, store } = await newRepo();
    try {
      const image = join(dir, 'a.img');
      await writeTestVolume(image, 24 << 20);
      const first = await backupFile(repository, workers, image);
      expect(first.size).toBe(24 << 20);
      expect(first.bytesRead).toBe(24 << 20);
      expect(first.holes).toBeGreaterThan(0);
      expect(first.holeBytes).toBeGreaterThan(8 << 20);
      expect(first.chunksNew).toBeGreaterThan(50);
      expect(first.chunksNew).toBeLessThanOrEqual(first.chunks);
      // Holes are never uploaded, and text compresses: far fewer bytes stored than the volume holds.
      expect(first.bytesUploaded).toBeLessThan(first.size - first.holeBytes);

      const again = await backupFile(repository, workers, image);
      expect(again.chunksNew).toBe(0);
      expect(again.chunks).toBe(first.chunks);

      const out = join(dir, 'a.out');
      const restored = await restoreBackup({
        repository,
        workers,
        backup: await repository.resolveBackup(again.backupId),
        targetPath: out,
      });
      expect(restored.size).toBe(24 << 20);
      expect(await sha256File(out)).toBe(await sha256File(image));
      const st = await stat(out);
      expect(st.blocks * 512).toBeLessThan(st.size - (8 << 20)); // holes stayed holes

      const listed = await repository.listBackups();
      expect(listed.backups.map((b) => b.backupId).sort()).toEqual([first.backupId, again.backupId].sort());
      expect(listed.damaged).toEqual([]);
      expect([...(await collectKeys(store, 'manifests/'))]).toHaveLength(2);
    } finally {
      await workers.close();
    }
  });

  it('cuts the same chunks whatever the read size', async () => {
    const { repository, workers } = await newRepo();
    try {
      const image = join(dir, 'b.img');
      await writeTestVolume(image, 5 << 20, 'read-size');
      const ids = async (readSize: number) => {
        const s = await backupFile(repository, workers, image, 'b', readSize);
        const entries = await repository.loadManifestEntries(await repository.resolveBackup(s.backupId));
        return [...entries].map((e) =>
          e.kind === 'hole' ? `hole:${e.length}` : `${Buffer.from(e.id).toString('hex')}:${e.length}`,
        );
      };
      const reference = await ids(8 << 20);
      expect(await ids(300_001)).toEqual(reference);
      expect(await ids(64 << 10)).toEqual(reference);
    } finally {
      await workers.close();
    }
  });

  it('backs up an empty volume and a volume smaller than one chunk', async () => {
    const { repository, workers } = await newRepo();
    try {
      for (const size of [0, 1, 4095]) {
        const image = join(dir, `small-${size}.img`);
        await writeImage(image, size, size ? [{ offset: 0, data: seededBytes('s', size) }] : []);
        const s = await backupFile(repository, workers, image);
        const out = join(dir, `small-${size}.out`);
        expect(await restoreAndHash(repository, workers, s.backupId, out)).toBe(await sha256File(image));
      }
    } finally {
      await workers.close();
    }
  });

  it('dedups identical data across volumes of one repository', async () => {
    const { repository, workers } = await newRepo();
    try {
      const image = join(dir, 'c.img');
      await writeImage(image, 3 << 20, [{ offset: 0, data: seededBytes('dedup', 3 << 20) }]);
      const a = await backupFile(repository, workers, image, 'vol-a');
      const b = await backupFile(repository, workers, image, 'vol-b');
      expect(a.volumeId).not.toBe(b.volumeId);
      expect(b.chunksNew).toBe(0);
    } finally {
      await workers.close();
    }
  });
});

describe('faults', () => {
  it('completes backup and restore byte-exact while the store fails at random', async () => {
    const memory = new MemoryObjectStore();
    const random = createSeededRandom(42);
    const faulty = withRetry(withFaults(memory, { rate: 0.2, random }), {
      attempts: 12,
      baseDelayMs: 1,
      maxDelayMs: 5,
      random,
    });
    const { repository, workers } = await newRepo(faulty);
    try {
      const image = join(dir, 'f.img');
      await writeTestVolume(image, 8 << 20, 'faults');
      const s = await backupFile(repository, workers, image);
      const out = join(dir, 'f.out');
      expect(await restoreAndHash(repository, workers, s.backupId, out)).toBe(await sha256File(image));
      const report = await verifyBackup({
        repository,
        workers,
        backup: await repository.resolveBackup(s.backupId),
      });
      expect(report.problems).toEqual([]);
    } finally {
      await workers.close();
    }
  });

  it('a backup that dies part-way leaves no manifest, and the re-run stores only what no index object names', async () => {
    const memory = new MemoryObjectStore();
    let putsLeft = Number.POSITIVE_INFINITY;
    // Stands in for a crash: pack PUTs start failing for good after a budget.
    const dying = overriding(memory, {
      put: async (key, body, opts) => {
        if (key.startsWith('packs/') && putsLeft-- <= 0) {
          throw new ObjectStoreError('permanent', 'simulated crash', { op: 'put', key });
        }
        return memory.put(key, body, opts);
      },
    });
    const { repository, workers } = await newRepo(dying);
    try {
      const image = join(dir, 'k.img');
      await writeImage(image, 6 << 20, [{ offset: 0, data: seededBytes('kill', 6 << 20) }]);
      // Small packs, an index object every two: the crash leaves several of each.
      const small = { packTarget: 256 << 10, packsPerIndex: 2 };
      putsLeft = 8;
      await expect(backupFile(repository, workers, image, 'vol', undefined, small)).rejects.toThrow(
        'simulated crash',
      );
      expect(await collectKeys(memory, 'manifests/')).toHaveLength(0);
      const indexKeys = await collectKeys(memory, 'index/');
      expect(indexKeys.length).toBeGreaterThanOrEqual(2);
      let indexed = 0;
      for (const key of indexKeys)
        indexed += decodePackIndex(repository.keys, key, await memory.get(key)).count;
      expect(indexed).toBeGreaterThanOrEqual(8);

      putsLeft = Number.POSITIVE_INFINITY;
      const rerun = await backupFile(repository, workers, image, 'vol', undefined, small);
      // The data is random: every chunk is distinct, and the indexed ones are taken where they lie.
      expect(rerun.index?.chunks).toBe(indexed);
      expect(rerun.chunksNew).toBe(rerun.chunks - indexed);
      expect(await collectKeys(memory, 'manifests/')).toHaveLength(1);
      const out = join(dir, 'k.out');
      expect(await restoreAndHash(repository, workers, rerun.backupId, out)).toBe(await sha256File(image));
    } finally {
      await workers.close();
    }
  });

  it('a corrupted or truncated chunk fails restore with an integrity error naming it, and removes the target', async () => {
    const { repository, workers, store } = await newRepo();
    try {
      const image = join(dir, 'x.img');
      await writeImage(image, 2 << 20, [{ offset: 0, data: textBytes(3, 2 << 20) }]);
      const s = await backupFile(repository, workers, image);
      const ref = await repository.resolveBackup(s.backupId);
      const victim = [...(await repository.loadManifestEntries(ref))].find((e) => e.kind === 'chunk');
      if (victim?.kind !== 'chunk') throw new Error('no data chunk');
      const { location } = victim;
      const key = packObjectKey(location.pack);
      const original = await store.get(key);

      const flipped = Uint8Array.from(original);
      flipped[location.offset + location.length - 20]! ^= 0x01;
      await store.put(key, flipped);
      const out = join(dir, 'x.out');
      const err = await restoreBackup({ repository, workers, backup: ref, targetPath: out }).catch((e) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect(err.message).toContain(describeLocation(location));
      await expect(stat(out)).rejects.toThrow();

      const report = await verifyBackup({ repository, workers, backup: ref });
      expect(report.problems).toHaveLength(1);
      expect(report.problems[0]!.objectKey).toContain(key);

      // Truncated before the chunk's end: the range is past the pack's end, which is damage, not a store fault.
      await store.put(key, original.subarray(0, location.offset + location.length - 100));
      const err2 = await restoreBackup({ repository, workers, backup: ref, targetPath: out }).catch((e) => e);
      expect(err2).toBeInstanceOf(IntegrityError);
      expect(err2.message).toContain(describeLocation(location));

      await store.delete(key);
      const report2 = await verifyBackup({ repository, workers, backup: ref });
      expect(report2.problems.length).toBeGreaterThanOrEqual(1);
      expect(report2.problems.every((p) => p.objectKey.includes(key))).toBe(true);
    } finally {
      await workers.close();
    }
  });

  it('a corrupted or truncated manifest is an integrity error naming it', async () => {
    const { repository, workers, store } = await newRepo();
    try {
      const image = join(dir, 'm.img');
      await writeImage(image, 1 << 20, [{ offset: 0, data: seededBytes('m', 1 << 20) }]);
      const s = await backupFile(repository, workers, image);
      const ref = await repository.resolveBackup(s.backupId);
      const bytes = await store.get(ref.manifestKey);
      const flipped = Uint8Array.from(bytes);
      flipped[flipped.length >> 1]! ^= 0x80;
      await store.put(ref.manifestKey, flipped);
      const err = await repository.loadManifest(ref).catch((e) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect(err.message).toContain(ref.manifestKey);
      await store.put(ref.manifestKey, bytes.subarray(0, 40));
      await expect(repository.loadManifest(ref)).rejects.toBeInstanceOf(IntegrityError);
    } finally {
      await workers.close();
    }
  });
});

describe('cancellation and failures', () => {
  it('cancelling a backup, a restore or a verify rejects cleanly and leaves no restored file', async () => {
    const { repository, workers } = await newRepo();
    try {
      const image = join(dir, 'abort.img');
      await writeImage(image, 8 << 20, [{ offset: 0, data: seededBytes('abort', 8 << 20) }]);
      const done = await backupFile(repository, workers, image);
      const ref = await repository.resolveBackup(done.backupId);

      const cancelAfterFirstProgress = () => {
        const controller = new AbortController();
        return { signal: controller.signal, onProgress: () => controller.abort() };
      };
      const source = await openVolumeSource(image);
      const b = await backupVolume({
        repository,
        workers,
        source,
        volumeName: 'abort',
        readSize: 1 << 20,
        ...cancelAfterFirstProgress(),
      }).catch((e) => e);
      await source.close();
      expect(b).toMatchObject({ code: 'aborted' });

      const out = join(dir, 'abort.out');
      const r = await restoreBackup({
        repository,
        workers,
        backup: ref,
        targetPath: out,
        concurrency: 2,
        ...cancelAfterFirstProgress(),
      }).catch((e) => e);
      expect(r).toMatchObject({ code: 'aborted' });
      await expect(stat(out)).rejects.toThrow();
      expect((await readdir(dir)).filter((f) => f.includes('stowage-partial'))).toEqual([]);

      const v = await verifyBackup({
        repository,
        workers,
        backup: ref,
        concurrency: 2,
        ...cancelAfterFirstProgress(),
      }).catch((e) => e);
      expect(v).toMatchObject({ code: 'aborted' });
    } finally {
      await workers.close();
    }
  });

  it('a cancel ends a backup whose chunk PUTs never answer, and commits no manifest', async () => {
    const memory = new MemoryObjectStore();
    const { workers } = await newRepo(memory);
    try {
      const image = join(dir, 'stall-put.img');
      await writeImage(image, 16 << 20, [{ offset: 0, data: seededBytes('stall-put', 16 << 20) }]);
      let landed = 0;
      let stalled = 0;
      const pending = { count: 0 };
      const stalling = await Repository.open(
        overriding(memory, {
          put: (k, b, o) => {
            if (!k.startsWith('packs/') || landed++ < 2) return memory.put(k, b, o);
            stalled++;
            return stallUntilAborted('put', k, o?.signal, pending);
          },
        }),
        { passphrase: PASS },
      );
      const controller = new AbortController();
      const timer = setInterval(() => {
        if (stalled > 0) controller.abort();
      }, 5);
      const source = await openVolumeSource(image);
      const b = await backupVolume({
        repository: stalling,
        workers,
        source,
        volumeName: 'stall-put',
        packTarget: 1 << 20,
        signal: controller.signal,
      }).catch((e) => e);
      clearInterval(timer);
      await source.close();
      expect(b).toMatchObject({ code: 'aborted' });
      expect(await collectKeys(memory, 'manifests/')).toHaveLength(0);
      // The stalled PUTs were aborted, not abandoned: none is still waiting on its dead connection.
      expect(stalled).toBeGreaterThan(0);
      expect(pending.count).toBe(0);
    } finally {
      await workers.close();
    }
  });

  it('a cancel ends a restore or a verify whose chunk GETs never answer, and writes nothing more', async () => {
    const memory = new MemoryObjectStore();
    const { repository, workers } = await newRepo(memory);
    try {
      const image = join(dir, 'stall.img');
      await writeImage(image, 8 << 20, [{ offset: 0, data: seededBytes('stall', 8 << 20) }]);
      const ref = await repository.resolveBackup((await backupFile(repository, workers, image)).backupId);
      // A dead connection: after two chunks every chunk GET hangs until it is aborted.
      let answered = 0;
      const stalled: string[] = [];
      const pending = { count: 0 };
      const stalling = await Repository.open(
        overriding(memory, {
          get: (k, r, o) => {
            if (!k.startsWith('packs/') || answered++ < 2) return memory.get(k, r, o);
            stalled.push(k);
            return stallUntilAborted('get', k, o?.signal, pending);
          },
        }),
        { passphrase: PASS },
      );
      const cancelWhenStalled = () => {
        const controller = new AbortController();
        const timer = setInterval(() => {
          if (stalled.length > 0) controller.abort();
        }, 5);
        return { signal: controller.signal, stop: () => clearInterval(timer) };
      };

      const out = join(dir, 'stall.out');
      const forRestore = cancelWhenStalled();
      const r = await restoreBackup({
        repository: stalling,
        workers,
        backup: ref,
        targetPath: out,
        concurrency: 4,
        signal: forRestore.signal,
      }).catch((e) => e);
      forRestore.stop();
      expect(r).toMatchObject({ code: 'aborted' });
      // Every stalled GET was aborted by the time the restore ended.
      expect(stalled.length).toBeGreaterThan(0);
      expect(pending.count).toBe(0);
      await expect(stat(out)).rejects.toThrow();
      expect((await readdir(dir)).filter((f) => f.includes('stowage-partial'))).toEqual([]);

      answered = 0;
      stalled.length = 0;
      const forVerify = cancelWhenStalled();
      const v = await verifyBackup({
        repository: stalling,
        workers,
        backup: ref,
        concurrency: 4,
        signal: forVerify.signal,
      }).catch((e) => e);
      forVerify.stop();
      expect(v).toMatchObject({ code: 'aborted' });
      expect(stalled.length).toBeGreaterThan(0);
      expect(pending.count).toBe(0);
    } finally {
      await workers.close();
    }
  });

  it('verify fails with the storage error (not a problem list) when the store itself fails', async () => {
    const memory = new MemoryObjectStore();
    const { repository, workers } = await newRepo(memory);
    try {
      const image = join(dir, 'vfail.img');
      await writeImage(image, 2 << 20, [{ offset: 0, data: seededBytes('vfail', 2 << 20) }]);
      const s = await backupFile(repository, workers, image);
      const ref = await repository.resolveBackup(s.backupId);
      const failing = await Repository.open(
        overriding(memory, {
          get: async (k, r) => {
            if (k.startsWith('packs/'))
              throw new ObjectStoreError('auth', 'access denied', { op: 'get', key: k });
            return memory.get(k, r);
          },
        }),
        { passphrase: PASS },
      );
      await expect(verifyBackup({ repository: failing, workers, backup: ref })).rejects.toMatchObject({
        kind: 'auth',
      });
    } finally {
      await workers.close();
    }
  });

  it('a failed restore with --overwrite leaves the existing file as it was', async () => {
    const { repository, workers, store } = await newRepo();
    try {
      const image = join(dir, 'ow.img');
      await writeImage(image, 2 << 20, [{ offset: 0, data: seededBytes('ow', 2 << 20) }]);
      const s = await backupFile(repository, workers, image);
      const ref = await repository.resolveBackup(s.backupId);
      const victim = [...(await repository.loadManifestEntries(ref))].find((e) => e.kind === 'chunk');
      if (victim?.kind !== 'chunk') throw new Error('no data chunk');
      await store.delete(packObjectKey(victim.location.pack));
      const existing = join(dir, 'ow.out');
      await writeImage(existing, 1000, [{ offset: 0, data: seededBytes('keep me', 1000) }]);
      const before = await sha256File(existing);
      await expect(
        restoreBackup({ repository, workers, backup: ref, targetPath: existing, overwrite: true }),
      ).rejects.toMatchObject({ kind: 'not-found' });
      expect(await sha256File(existing)).toBe(before);
    } finally {
      await workers.close();
    }
  });
});

describe('repository', () => {
  it('refuses a wrong passphrase, a second init, and a missing repository', async () => {
    const store = new MemoryObjectStore();
    await Repository.init(store, { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
    await expect(Repository.open(store, { passphrase: 'wrong' })).rejects.toBeInstanceOf(
      WrongPassphraseError,
    );
    const opened = await Repository.open(store, { passphrase: PASS });
    expect(opened.config.chunker).toEqual(PARAMS);
    await expect(
      Repository.init(store, { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF }),
    ).rejects.toMatchObject({
      code: 'repository-exists',
    });
    const err = await Repository.open(new MemoryObjectStore(), { passphrase: PASS }).catch((e) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.code).toBe('repository-not-found');
  });

  it("refuses a target key that is not the repository's with wrong-key, naming the repository", async () => {
    const store = new MemoryObjectStore();
    const repository = await Repository.init(store, { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
    const other = await Repository.init(new MemoryObjectStore(), {
      passphrase: PASS,
      chunker: PARAMS,
      kdf: FAST_KDF,
    });
    for (const key of [other.targetKey, new Uint8Array(32).fill(9)]) {
      const err = await Repository.openWithKey(store, key).catch((e) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect(err.code).toBe('wrong-key');
      expect(err.message).toBe(
        `the key does not open the repository at ${store.location}: it belongs to another repository (or the repository config was altered)`,
      );
      expect(err.cause).toBeInstanceOf(IntegrityError);
    }
    // The right key still opens it, and a missing repository is still repository-not-found.
    expect((await Repository.openWithKey(store, repository.targetKey)).config.repositoryId).toBe(
      repository.config.repositoryId,
    );
    await expect(Repository.openWithKey(new MemoryObjectStore(), repository.targetKey)).rejects.toMatchObject(
      {
        code: 'repository-not-found',
      },
    );
  });

  it('resolves backup id prefixes and rejects unknown or ambiguous ones', async () => {
    const { repository, workers } = await newRepo();
    try {
      const image = join(dir, 'p.img');
      await writeImage(image, 1000, [{ offset: 0, data: seededBytes('p', 1000) }]);
      const s = await backupFile(repository, workers, image);
      expect((await repository.resolveBackup(s.backupId.slice(0, 8))).backupId).toBe(s.backupId);
      await expect(repository.resolveBackup('ffffffff-0000')).rejects.toMatchObject({
        code: 'backup-not-found',
      });
      await expect(repository.resolveBackup('zz')).rejects.toMatchObject({ code: 'invalid-argument' });
    } finally {
      await workers.close();
    }
  });

  it('verifies a random sample of chunks', async () => {
    const { repository, workers } = await newRepo();
    try {
      const image = join(dir, 's.img');
      await writeImage(image, 4 << 20, [{ offset: 0, data: seededBytes('sample', 4 << 20) }]);
      const s = await backupFile(repository, workers, image);
      const ref = await repository.resolveBackup(s.backupId);
      const report = await verifyBackup({ repository, workers, backup: ref, samplePercent: 10 });
      expect(report.chunksChecked).toBe(Math.ceil(report.chunksTotal / 10));
      expect(report.problems).toEqual([]);
    } finally {
      await workers.close();
    }
  });
});

async function collectKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key);
  return keys;
}
