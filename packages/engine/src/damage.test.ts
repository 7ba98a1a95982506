// Dedup heals instead of spreading damage (issue 7): checkRepository and verifyBackup record what they find in
// damage records, and the next backup stores recorded chunks again instead of naming them on the word of a
// manifest. The acceptance body runs on memory, filesystem, s3rver and Ceph RGW (when radosgw is installed;
// required in CI); the finer cases on memory.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkObjectKey, DamagedChunks, type ManifestEntries } from '@stowage/format';
import {
  createDefaultStoreStack,
  createSeededRandom,
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
import { type CheckProgress, checkRepository } from './check.js';
import { RepositoryDamage } from './damage.js';
import { type BackupRef, Repository } from './repository.js';
import { restoreBackup } from './restore.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { seededBytes, sha256File, writeImage, writeTestVolume } from './testing/volumes.js';
import { verifyBackup } from './verify.js';
import { openVolumeSource } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

let dir: string;
let workers: ChunkWorkers;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-damage-'));
  workers = new ChunkWorkers(undefined, { threads: 2 });
});
afterAll(async () => {
  await workers?.close();
  await rm(dir, { recursive: true, force: true });
});

function stack(store: ObjectStore): ObjectStore {
  return createDefaultStoreStack(store, { retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 } });
}

let images = 0;
async function image(size = 3 << 20, seed = `image-${++images}`): Promise<string> {
  const path = join(dir, `${seed}.img`);
  await writeImage(path, size, [{ offset: 0, data: seededBytes(seed, size) }]);
  return path;
}

async function newRepository(bare: ObjectStore = new MemoryObjectStore()): Promise<Repository> {
  const repository = await Repository.init(stack(bare), {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  await workers.useKey(repository.targetKey);
  return repository;
}

async function backup(repository: Repository, path: string, volumeName = 'heal') {
  const source = await openVolumeSource(path);
  try {
    return await backupVolume({ repository, workers, source, volumeName });
  } finally {
    await source.close();
  }
}

/** The first chunk of the backup's manifest, with its object key. */
async function firstChunk(repository: Repository, ref: BackupRef) {
  const entries: ManifestEntries = await repository.loadManifestEntries(ref);
  let at = 0;
  while (!entries.isChunkAt(at)) at++;
  const id = entries.idAt(at).slice();
  return { id, hex: Buffer.from(id).toString('hex'), key: chunkObjectKey(id) };
}

const byBackupId = (refs: readonly { backupId: string }[]) => refs.map((r) => r.backupId).sort();

async function restoresAs(repository: Repository, ref: BackupRef, path: string) {
  const out = join(dir, `${ref.backupId}-${Math.random()}.out`);
  await restoreBackup({ repository, workers, backup: ref, targetPath: out });
  expect(await sha256File(out)).toBe(await sha256File(path));
}

/** The acceptance test of issue 7, on one backend. */
function describeHealing(name: string, bare: (name: string) => Promise<ObjectStore>): void {
  describe(`dedup heals instead of spreading damage: ${name}`, () => {
    it('a chunk deleted from the bucket: check records it missing in every backup naming it, the next backup uploads it, and the records clear', async () => {
      const repository = await newRepository(await bare('missing'));
      const store = repository.store;
      const path = await image();
      const b1 = await backup(repository, path);
      const b2 = await backup(repository, path);
      expect(b2.chunksNew).toBe(0);
      const victim = await firstChunk(repository, b2);
      await store.delete(victim.key);

      const found = await checkRepository({ repository, workers });
      expect(found.clean).toBe(false);
      expect(found.manifestsChecked).toBe(2);
      expect(found.chunksChecked).toBe(b1.chunks);
      expect(found.missingCount).toBe(1);
      expect(found.missingChunks).toHaveLength(1);
      expect(found.missingChunks[0]).toMatchObject({
        chunkId: victim.hex,
        objectKey: victim.key,
        problem: 'missing',
        message: `chunk ${victim.key} is missing`,
      });
      expect(byBackupId(found.missingChunks[0]!.backups)).toEqual(byBackupId([b1, b2]));
      expect(found.corruptChunks).toEqual([]);
      expect(byBackupId(found.damageRecordsWritten.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
      for (const b of [b1, b2]) {
        const record = await repository.readDamageRecord(b);
        expect([...record!.chunks].map((d) => [Buffer.from(d.id).toString('hex'), d.problem])).toEqual([
          [victim.hex, 'missing'],
        ]);
      }

      // Both backups that name it are marked: the next backup trusts neither, HEADs the chunk and uploads it.
      const b3 = await backup(repository, path);
      expect(b3.trustedManifest).toBeUndefined();
      expect(b3.chunksNew).toBeGreaterThanOrEqual(1);
      expect(b3.chunksRepaired).toBe(1);
      expect(await store.head(victim.key)).toBeDefined();
      for (const b of [b1, b2, b3]) {
        const report = await verifyBackup({ repository, workers, backup: b, recordDamage: false });
        expect(report.problems).toEqual([]);
        await restoresAs(repository, b, path);
      }

      const healed = await checkRepository({ repository, workers });
      expect(healed.clean).toBe(true);
      expect(healed.missingChunks).toEqual([]);
      expect(healed.chunksRead).toBe(1); // the recorded chunk, read to be sure it is whole again
      expect(byBackupId(healed.damageRecordsCleared.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
      expect(await repository.readDamageRecord(b1)).toBeUndefined();
      expect(await repository.readDamageRecord(b2)).toBeUndefined();
      expect((await repository.listDamage()).empty).toBe(true);

      // Clean again: the next backup trusts the latest manifest once more.
      const b4 = await backup(repository, path);
      expect(b4.trustedManifest).toBeDefined();
      expect(b4.chunksNew).toBe(0);
      expect(b4.chunksRepaired).toBe(0);
    });

    it('a bit-flipped chunk: check with readData all records it corrupt, the next backup re-uploads it though it exists', async () => {
      const repository = await newRepository(await bare('corrupt'));
      const store = repository.store;
      const path = await image();
      const b1 = await backup(repository, path);
      const b2 = await backup(repository, path);
      const victim = await firstChunk(repository, b1);
      const object = Uint8Array.from(await store.get(victim.key));
      object[object.length - 20]! ^= 0x01;
      await store.put(victim.key, object);

      // Existence alone sees nothing wrong.
      const shallow = await checkRepository({ repository, workers, recordDamage: false });
      expect(shallow.clean).toBe(true);
      expect(shallow.chunksRead).toBe(0);

      const deep = await checkRepository({ repository, workers, readData: 'all' });
      expect(deep.chunksRead).toBe(deep.chunksChecked);
      expect(deep.corruptCount).toBe(1);
      expect(deep.corruptChunks[0]).toMatchObject({
        chunkId: victim.hex,
        objectKey: victim.key,
        problem: 'corrupt',
      });
      expect(deep.corruptChunks[0]!.message).toContain('integrity check failed');
      expect(byBackupId(deep.corruptChunks[0]!.backups)).toEqual(byBackupId([b1, b2]));
      expect(byBackupId(deep.damageRecordsWritten.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
      expect((await repository.readDamageRecord(b2))!.chunks.get(victim.id)?.problem).toBe('corrupt');

      const b3 = await backup(repository, path);
      expect(b3.chunksNew).toBe(1);
      expect(b3.chunksRepaired).toBe(1);
      for (const b of [b1, b2, b3]) {
        expect(
          (await verifyBackup({ repository, workers, backup: b, recordDamage: false })).problems,
        ).toEqual([]);
      }
      // A check that reads no data still reads the recorded chunk, finds it whole and clears the records.
      const healed = await checkRepository({ repository, workers });
      expect(healed.clean).toBe(true);
      expect(healed.chunksRead).toBe(1);
      expect(byBackupId(healed.damageRecordsCleared.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
    });
  });
}

describeHealing('memory', async () => new MemoryObjectStore());
describeHealing('filesystem', async (name) => new FsObjectStore({ root: join(dir, 'fs', name) }));

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
  describeHealing('s3rver', async (name) => {
    const store = openS3(server, 'stowage', name);
    stores.push(store);
    return store;
  });
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
      ceph = await startCeph({ buckets: ['stowage-damage'] });
    }, 120_000);
    afterAll(async () => {
      for (const store of stores) store.destroy();
      await ceph?.stop();
    });
    describeHealing('Ceph RGW', async (name) => {
      const store = openS3(ceph, 'stowage-damage', name);
      stores.push(store);
      return store;
    });
  },
);

/** `store` whose HEADs of chunk objects are counted. */
function countingHeads(store: ObjectStore): { store: ObjectStore; heads: () => number } {
  let heads = 0;
  return {
    heads: () => heads,
    store: {
      location: store.location,
      head: (k) => {
        if (k.startsWith('chunks/')) heads++;
        return store.head(k);
      },
      list: (p) => store.list(p),
      get: (k, r) => store.get(k, r),
      put: (k, b, o) => store.put(k, b, o),
      delete: (k) => store.delete(k),
      deleteMany: (k) => store.deleteMany(k),
    },
  };
}

describe('verify records what it finds', () => {
  it('lists a missing chunk, keeps reporting it as before, and clears the record once the chunk is back whole', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path);
    const victim = await firstChunk(repository, b1);
    const original = await repository.store.get(victim.key);
    await repository.store.delete(victim.key);

    const report = await verifyBackup({
      repository,
      workers,
      backup: b1,
      now: () => new Date('2026-12-01T08:00:00Z'),
    });
    expect(report.problems).toEqual([{ objectKey: victim.key, message: `chunk ${victim.key} is missing` }]);
    expect(report.missingChunks).toEqual([victim.key]);
    expect(report.corruptChunks).toEqual([]);
    expect(report.damageRecord).toMatchObject({ action: 'written', chunksListed: 1, added: 1, cleared: 0 });
    const record = await repository.readDamageRecord(b1);
    expect([...record!.chunks]).toEqual([
      { id: victim.id, problem: 'missing', foundAt: new Date('2026-12-01T08:00:00Z') },
    ]);

    // The same finding again changes nothing (the found-at time stays the first one).
    const again = await verifyBackup({ repository, workers, backup: b1 });
    expect(again.damageRecord).toMatchObject({ action: 'unchanged', chunksListed: 1 });
    expect((await repository.readDamageRecord(b1))!.chunks.foundAtAt(0)).toEqual(
      new Date('2026-12-01T08:00:00Z'),
    );

    // Back, but not whole: an existence problem is not cleared by existence; it becomes `corrupt`.
    const broken = Uint8Array.from(original);
    broken[40]! ^= 0x80;
    await repository.store.put(victim.key, broken);
    const corrupt = await verifyBackup({ repository, workers, backup: b1, samplePercent: 1 });
    expect(corrupt.corruptChunks).toEqual([victim.key]);
    expect(corrupt.damageRecord).toMatchObject({ action: 'written', chunksListed: 1, added: 1 });
    expect((await repository.readDamageRecord(b1))!.chunks.get(victim.id)?.problem).toBe('corrupt');

    // Whole again: a sampled verify still reads the recorded chunk, and clears it.
    await repository.store.put(victim.key, original);
    const healed = await verifyBackup({
      repository,
      workers,
      backup: b1,
      samplePercent: 1,
      randomInt: () => 0,
    });
    expect(healed.problems).toEqual([]);
    const sampled = Math.ceil(healed.chunksTotal / 100);
    // The sample, plus the recorded chunk when the sample did not draw it.
    expect([sampled, sampled + 1]).toContain(healed.chunksChecked);
    expect(healed.damageRecord).toMatchObject({ action: 'deleted', chunksListed: 0, cleared: 1 });
    expect(await repository.readDamageRecord(b1)).toBeUndefined();
  });

  it('a sampled verify reads the chunks its record lists, and drops entries for chunks the backup does not name', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path);
    const entries = await repository.loadManifestEntries(b1);
    // A record listing a chunk this backup does not name (dropped: it means nothing) and one it names that
    // is whole (read, because it is recorded, and cleared).
    const stranger = new Uint8Array(32).fill(0xee);
    const named = entries.idAt(0).slice();
    await repository.writeDamageRecord(
      b1,
      DamagedChunks.from([
        { id: stranger, problem: 'missing', foundAt: new Date('2026-12-01T00:00:00Z') },
        { id: named, problem: 'missing', foundAt: new Date('2026-12-01T00:00:00Z') },
      ]),
    );
    const report = await verifyBackup({
      repository,
      workers,
      backup: b1,
      samplePercent: 1,
      randomInt: () => 0,
    });
    expect(report.damageRecord).toMatchObject({ action: 'deleted', cleared: 2 });
  });

  it('still reports what it found when the record cannot be written (read-only credentials)', async () => {
    const memory = new MemoryObjectStore();
    const repository = await newRepository(memory);
    const b1 = await backup(repository, await image());
    const victim = await firstChunk(repository, b1);
    await memory.delete(victim.key);
    const readOnly = await Repository.openWithKey(
      {
        location: memory.location,
        head: (k) => memory.head(k),
        list: (p) => memory.list(p),
        get: (k, r) => memory.get(k, r),
        put: async (k) => {
          throw new ObjectStoreError('auth', `put ${k}: access denied`, { op: 'put', key: k });
        },
        delete: (k) => memory.delete(k),
        deleteMany: (k) => memory.deleteMany(k),
      },
      repository.targetKey,
    );
    const report = await verifyBackup({ repository: readOnly, workers, backup: b1 });
    expect(report.problems).toEqual([{ objectKey: victim.key, message: `chunk ${victim.key} is missing` }]);
    expect(report.damageRecord).toBeUndefined();
    expect(report.damageRecordError).toContain(`could not update damage/${b1.volumeId}/${b1.backupId}`);
    expect(report.damageRecordError).toContain('access denied');
  });

  it('with recordDamage false leaves the repository untouched', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path);
    const victim = await firstChunk(repository, b1);
    await repository.store.delete(victim.key);
    const report = await verifyBackup({ repository, workers, backup: b1, recordDamage: false });
    expect(report.missingChunks).toEqual([victim.key]);
    expect(report.damageRecord).toBeUndefined();
    expect(await repository.readDamageRecord(b1)).toBeUndefined();
  });
});

describe('backups and damage records', () => {
  it('a damaged latest backup is not trusted: every chunk is HEADed, and a chunk recorded missing is uploaded', async () => {
    const memory = new MemoryObjectStore();
    const counted = countingHeads(memory);
    const repository = await newRepository(counted.store);
    const path = await image();
    const b1 = await backup(repository, path);
    const trusting = counted.heads();
    const b2 = await backup(repository, path);
    expect(b2.trustedManifest).toBe(b1.manifestKey);
    expect(counted.heads() - trusting).toBe(0);

    const victim = await firstChunk(repository, b2);
    await memory.delete(victim.key);
    await verifyBackup({ repository, workers, backup: b2 });
    const before = counted.heads();
    const b3 = await backup(repository, path);
    expect(b3.trustedManifest).toBeUndefined();
    // Every distinct chunk and every manifest segment checked.
    expect(counted.heads() - before).toBe(
      distinctCount(await repository.loadManifestEntries(b3)) + b3.manifestSegments,
    );
    expect(b3.chunksRepaired).toBe(1);
    // b1 was never checked, so it is not marked: but its chunk is known missing, and b3 did not name it
    // without uploading it first.
    expect(await memory.head(victim.key)).toBeDefined();
  });

  it('a chunk recorded missing is HEADed even when the latest manifest is clean', async () => {
    const memory = new MemoryObjectStore();
    const repository = await newRepository(memory);
    const path = await image();
    const b1 = await backup(repository, path);
    const b2 = await backup(repository, path);
    const victim = await firstChunk(repository, b1);
    await memory.delete(victim.key);
    // Only b1 is marked (as a verify of b1 alone would leave it); b2, the latest, is clean and trusted, but
    // not for the recorded chunk.
    await verifyBackup({ repository, workers, backup: b1 });
    expect((await repository.listDamage()).isMarked(b2.manifestKey)).toBe(false);
    const b3 = await backup(repository, path);
    expect(b3.trustedManifest).toBe(b2.manifestKey);
    expect(b3.chunksRepaired).toBe(1);
    expect(await memory.head(victim.key)).toBeDefined();
  });

  it('an unreadable damage record makes the backup trust no manifest', async () => {
    const memory = new MemoryObjectStore();
    const repository = await newRepository(memory);
    const path = await image();
    const b1 = await backup(repository, path);
    await memory.put(repository.damageRecordKey(b1), new Uint8Array(100).fill(1));
    const damage = await repository.listDamage();
    expect(damage.complete).toBe(false);
    expect(damage.unreadable.map((u) => u.ref.backupId)).toEqual([b1.backupId]);
    const b2 = await backup(repository, path);
    expect(b2.trustedManifest).toBeUndefined();
  });

  it('the damage index merges records (corrupt wins) and, past its bound, drops missing ids first', async () => {
    const repository = await newRepository();
    const refs = [1, 2, 3].map((n) => ({
      volumeId: '11111111-2222-4333-8444-555555555555',
      backupId: `00000000-0000-4000-8000-00000000000${n}`,
      manifestKey: `manifests/11111111-2222-4333-8444-555555555555/00000000-0000-4000-8000-00000000000${n}`,
    }));
    const at = new Date('2026-12-01T00:00:00Z');
    const id = (n: number) => new Uint8Array(32).fill(n);
    await repository.writeDamageRecord(
      refs[0]!,
      DamagedChunks.from([
        { id: id(1), problem: 'missing', foundAt: at },
        { id: id(2), problem: 'missing', foundAt: at },
      ]),
    );
    await repository.writeDamageRecord(
      refs[1]!,
      DamagedChunks.from([
        { id: id(2), problem: 'corrupt', foundAt: at },
        { id: id(3), problem: 'missing', foundAt: at },
      ]),
    );
    await repository.writeDamageRecord(
      refs[2]!,
      DamagedChunks.from([{ id: id(4), problem: 'corrupt', foundAt: at }]),
    );
    const damage = await repository.listDamage();
    expect(damage.complete).toBe(true);
    expect(damage.records.map((r) => r.chunks)).toEqual([2, 2, 1]);
    expect([1, 2, 3, 4, 5].map((n) => damage.problemOf(id(n)))).toEqual([
      'missing',
      'corrupt',
      'missing',
      'corrupt',
      undefined,
    ]);
    expect(refs.map((r) => damage.isMarked(r.manifestKey))).toEqual([true, true, true]);

    const bounded = await RepositoryDamage.load(repository, { maxChunks: 2 });
    expect(bounded.complete).toBe(false);
    expect(bounded.missingOmitted).toBe(true);
    expect(bounded.corruptOmitted).toBe(false);
    expect([...bounded.chunks()].map((c) => [c.id[0], c.problem])).toEqual([
      [2, 'corrupt'],
      [4, 'corrupt'],
    ]);
  });
});

function distinctCount(entries: ManifestEntries): number {
  return new Set(entries.chunkIdsHex()).size;
}

describe('checkRepository', () => {
  it('checks in several passes when the index outgrows its memory, finding the same', async () => {
    const repository = await newRepository();
    const a = await image(2 << 20);
    const b = await image(2 << 20);
    const ba = await backup(repository, a, 'a');
    const bb = await backup(repository, b, 'b');
    for (const ref of [ba, bb]) await repository.store.delete((await firstChunk(repository, ref)).key);
    const whole = await checkRepository({ repository, workers, recordDamage: false });
    expect(whole.passes).toBe(1);
    // Room for about 12 chunk ids a pass.
    const sliced = await checkRepository({
      repository,
      workers,
      recordDamage: false,
      indexMemoryBytes: 72 * 12,
    });
    expect(sliced.passes).toBeGreaterThan(3);
    expect(sliced.chunksChecked).toBe(whole.chunksChecked);
    expect(sliced.chunksChecked).toBe(ba.chunks + bb.chunks);
    expect(sliced.missingChunks.map((c) => c.chunkId)).toEqual(whole.missingChunks.map((c) => c.chunkId));
    expect(sliced.missingCount).toBe(2);
    expect(sliced.missingChunks.map((c) => byBackupId(c.backups))).toEqual(
      whole.missingChunks.map((c) => byBackupId(c.backups)),
    );
  });

  it('reads a random subset of the chunks, chosen by the injected random source', async () => {
    const repository = await newRepository();
    const b1 = await backup(repository, await image());
    const picks = async (seed: number) => {
      const read: string[] = [];
      const spying: Repository = await Repository.openWithKey(
        {
          ...repository.store,
          location: repository.store.location,
          head: (k) => repository.store.head(k),
          list: (p) => repository.store.list(p),
          put: (k, body, o) => repository.store.put(k, body, o),
          delete: (k) => repository.store.delete(k),
          deleteMany: (k) => repository.store.deleteMany(k),
          get: (k, r) => {
            if (k.startsWith('chunks/')) read.push(k);
            return repository.store.get(k, r);
          },
        },
        repository.targetKey,
      );
      const report = await checkRepository({
        repository: spying,
        workers,
        readData: { subsetPercent: 10 },
        random: createSeededRandom(seed),
      });
      expect(report.chunksRead).toBe(Math.ceil(b1.chunks / 10));
      // The manifest's segment (read to list its chunks, under chunks/ too), then the subset.
      expect(report.segmentsRead).toBe(1);
      expect(new Set(read).size).toBe(report.chunksRead + report.segmentsRead);
      return read.sort();
    };
    expect(await picks(1)).toEqual(await picks(1));
    expect(await picks(1)).not.toEqual(await picks(2));
    await expect(
      checkRepository({ repository, workers, readData: { subsetPercent: 0 } }),
    ).rejects.toMatchObject({ code: 'invalid-argument' });
  });

  it('reports a manifest that does not decode and goes on with the others', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path, 'one');
    const b2 = await backup(repository, await image(), 'two');
    const bytes = Uint8Array.from(await repository.store.get(b1.manifestKey));
    bytes[bytes.length >> 1]! ^= 0x80;
    await repository.store.put(b1.manifestKey, bytes);
    const report = await checkRepository({ repository, workers });
    expect(report.clean).toBe(false);
    expect(report.manifestsChecked).toBe(1);
    expect(report.damagedManifests.map((d) => d.ref.backupId)).toEqual([b1.backupId]);
    expect(report.damagedManifests[0]!.message).toContain(b1.manifestKey);
    expect(report.chunksChecked).toBe(b2.chunks);
  });

  it('removes the records of backups that no longer exist', async () => {
    const repository = await newRepository();
    const gone = {
      volumeId: '11111111-2222-4333-8444-555555555555',
      backupId: '99999999-0000-4000-8000-000000000000',
      manifestKey: 'manifests/11111111-2222-4333-8444-555555555555/99999999-0000-4000-8000-000000000000',
    };
    await repository.writeDamageRecord(
      gone,
      DamagedChunks.from([{ id: new Uint8Array(32).fill(1), problem: 'missing', foundAt: new Date() }]),
    );
    await backup(repository, await image(1 << 20));
    const report = await checkRepository({ repository, workers });
    expect(report.damageRecordsCleared.map((u) => [u.ref.backupId, u.action, u.cleared])).toEqual([
      [gone.backupId, 'deleted', 1],
    ]);
    expect(await repository.readDamageRecord(gone)).toBeUndefined();
  });

  it('reports a damage record that does not decode, and replaces it only after reading every chunk', async () => {
    const repository = await newRepository();
    const b1 = await backup(repository, await image());
    const victim = await firstChunk(repository, b1);
    await repository.store.put(repository.damageRecordKey(b1), new Uint8Array(64).fill(7));
    const shallow = await checkRepository({ repository, workers });
    expect(shallow.clean).toBe(false);
    expect(shallow.damageRecordsUnreadable.map((u) => u.ref.backupId)).toEqual([b1.backupId]);
    expect(shallow.damageRecordsWritten).toEqual([]);
    expect(shallow.damageRecordsCleared).toEqual([]);
    expect(await repository.store.head(repository.damageRecordKey(b1))).toBeDefined();

    // Having read every chunk, the check knows what the record should say: here, one missing chunk.
    await repository.store.delete(victim.key);
    const deep = await checkRepository({ repository, workers, readData: 'all' });
    expect(deep.damageRecordsWritten).toMatchObject([
      { ref: { backupId: b1.backupId }, action: 'written', chunksListed: 1, replacedUnreadable: true },
    ]);
    expect([...(await repository.readDamageRecord(b1))!.chunks].map((d) => d.problem)).toEqual(['missing']);
  });

  it('reports progress of each step, and a cancel rejects with aborted', async () => {
    const repository = await newRepository();
    const path = join(dir, 'progress.img');
    await writeTestVolume(path, 4 << 20, 'progress');
    await backup(repository, path);
    const seen: CheckProgress[] = [];
    await checkRepository({ repository, workers, readData: 'all', onProgress: (p) => seen.push(p) });
    expect(new Set(seen.map((p) => p.step))).toEqual(new Set(['manifests', 'chunks', 'data']));
    expect(seen.every((p) => p.phase === 'check' && p.pass === 1)).toBe(true);
    const lastData = seen.filter((p) => p.step === 'data').at(-1)!;
    expect(lastData.bytesDone).toBe(lastData.bytesTotal);
    expect(lastData.unit).toBe('bytes');

    const controller = new AbortController();
    const cancelled = await checkRepository({
      repository,
      workers,
      readData: 'all',
      concurrency: 2,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.step === 'data') controller.abort();
      },
    }).catch((e) => e);
    expect(cancelled).toMatchObject({ code: 'aborted' });
  });
});
