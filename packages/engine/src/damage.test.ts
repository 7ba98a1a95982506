// Dedup heals instead of spreading damage (issue 7), with chunks stored in packs: checkRepository and
// verifyBackup record what they find in damage records (by chunk id: a chunk is missing when its pack is,
// corrupt when its range does not open or lies past the end of its pack), and the next backup stores recorded
// chunks again, into a new pack, instead of naming them on the word of a manifest. The older backups still name
// the damaged copies, but restore from the new ones: verify and check find those copies through the index
// objects, call such backups whole and clear their records, so later backups stop storing the chunks again.
// The acceptance body runs on memory, filesystem, s3rver and Ceph RGW (when radosgw is installed; required in
// CI); the finer cases on memory.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chunkObjectKey,
  DamagedChunks,
  describeLocation,
  encodePackIndex,
  type ManifestEntries,
  PackIndexEntries,
  type PackLocation,
  packIndexObjectKey,
  packObjectKey,
} from '@stowage/format';
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

/** Packs of 512 KiB: a 3 MiB image is several packs of about 8 chunks, so one pack is a part of a backup. */
const PACK_TARGET = 512 << 10;

async function backup(repository: Repository, path: string, volumeName = 'heal', packTarget = PACK_TARGET) {
  const source = await openVolumeSource(path);
  try {
    return await backupVolume({ repository, workers, source, volumeName, packTarget });
  } finally {
    await source.close();
  }
}

interface StoredChunk {
  id: Uint8Array;
  hex: string;
  location: PackLocation;
  /** `packs/<hh>/<pack-id>` */
  packKey: string;
  /** `packs/<hh>/<pack-id>@<offset>+<length>` */
  where: string;
}

function stored(entries: ManifestEntries, at: number): StoredChunk {
  const id = entries.idAt(at).slice();
  const l = entries.locationAt(at);
  const location = { pack: l.pack.slice(), offset: l.offset, length: l.length };
  return {
    id,
    hex: Buffer.from(id).toString('hex'),
    location,
    packKey: packObjectKey(location.pack),
    where: describeLocation(location),
  };
}

/** The first chunk of the backup's manifest, with where it is stored. */
async function firstChunk(repository: Repository, ref: BackupRef): Promise<StoredChunk> {
  const entries: ManifestEntries = await repository.loadManifestEntries(ref);
  let at = 0;
  while (!entries.isChunkAt(at)) at++;
  return stored(entries, at);
}

/** The distinct chunks the backup names in pack `packKey`, ascending by id. */
async function chunksIn(repository: Repository, ref: BackupRef, packKey: string): Promise<StoredChunk[]> {
  const entries = await repository.loadManifestEntries(ref);
  const out = new Map<string, StoredChunk>();
  for (let at = 0; at < entries.count; at++) {
    if (!entries.isChunkAt(at)) continue;
    const chunk = stored(entries, at);
    if (chunk.packKey === packKey) out.set(chunk.hex, chunk);
  }
  return [...out.values()].sort((a, b) => a.hex.localeCompare(b.hex));
}

/** Where the backup names each of its chunks (the first location, by id hex). */
async function storedIn(repository: Repository, ref: BackupRef): Promise<Map<string, StoredChunk>> {
  const entries = await repository.loadManifestEntries(ref);
  const out = new Map<string, StoredChunk>();
  for (let at = 0; at < entries.count; at++) {
    if (!entries.isChunkAt(at)) continue;
    const chunk = stored(entries, at);
    if (!out.has(chunk.hex)) out.set(chunk.hex, chunk);
  }
  return out;
}

/** Distinct packs the backup names. */
async function packsOf(repository: Repository, ref: BackupRef): Promise<Set<string>> {
  const entries = await repository.loadManifestEntries(ref);
  const packs = new Set<string>();
  for (let at = 0; at < entries.count; at++) {
    if (entries.isChunkAt(at)) packs.add(packObjectKey(entries.locationAt(at).pack));
  }
  return packs;
}

/** Flips a bit of the chunk's range in its pack, `back` bytes before the range's end. */
async function flipInRange(store: ObjectStore, chunk: StoredChunk, back = 20): Promise<void> {
  const pack = Uint8Array.from(await store.get(chunk.packKey));
  pack[chunk.location.offset + chunk.location.length - back]! ^= 0x01;
  await store.put(chunk.packKey, pack);
}

/**
 * Returns once a manifest written now is last modified after `key`'s: S3 servers (s3rver) keep whole seconds,
 * and which manifest is its volume's latest goes by that time (`PreviousManifest`, `latestOfVolumes`).
 */
async function after(store: ObjectStore, key: string): Promise<void> {
  const at = (await store.head(key))!.lastModified.getTime();
  if (at % 1000 !== 0) return; // a millisecond clock
  const wait = at + 1000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait + 5));
}

const byBackupId = (refs: readonly { backupId: string }[]) => refs.map((r) => r.backupId).sort();
const hexes = (records: DamagedChunks | undefined) =>
  records === undefined ? [] : [...records].map((d) => [Buffer.from(d.id).toString('hex'), d.problem]);

async function restoresAs(repository: Repository, ref: BackupRef, path: string) {
  const out = join(dir, `${ref.backupId}-${Math.random()}.out`);
  await restoreBackup({ repository, workers, backup: ref, targetPath: out });
  expect(await sha256File(out)).toBe(await sha256File(path));
  await rm(out, { force: true });
}

/** The acceptance test of issue 7, on one backend. */
function describeHealing(name: string, bare: (name: string) => Promise<ObjectStore>): void {
  describe(`dedup heals instead of spreading damage: ${name}`, () => {
    it('a pack deleted from the bucket: check records every chunk in it missing in every backup naming it, the next backup stores them again and restores byte-exact', async () => {
      const repository = await newRepository(await bare('missing'));
      const store = repository.store;
      const path = await image();
      const b1 = await backup(repository, path);
      const b2 = await backup(repository, path);
      expect(b2.chunksNew).toBe(0);
      expect(b1.packs).toBeGreaterThan(2);
      const packs = await packsOf(repository, b1);
      const victim = await firstChunk(repository, b2);
      const lost = await chunksIn(repository, b2, victim.packKey);
      expect(lost.length).toBeGreaterThan(1);
      await store.delete(victim.packKey);

      const found = await checkRepository({ repository, workers });
      expect(found.clean).toBe(false);
      expect(found.manifestsChecked).toBe(2);
      expect(found.chunksChecked).toBe(b1.chunks);
      expect(found.packsReferenced).toBe(packs.size);
      expect(found.packsListed).toBe(packs.size - 1);
      expect(found.packsMissing).toBe(1);
      expect(found.packsUnreferenced).toBe(0);
      expect(found.missingPacks).toHaveLength(1);
      expect(found.missingPacks[0]).toMatchObject({ objectKey: victim.packKey, chunks: lost.length });
      expect(byBackupId(found.missingPacks[0]!.backups)).toEqual(byBackupId([b1, b2]));
      expect(found.missingCount).toBe(lost.length);
      expect(found.missingChunks.map((c) => c.chunkId)).toEqual(lost.map((c) => c.hex));
      const reported = found.missingChunks.find((c) => c.chunkId === victim.hex);
      expect(reported).toMatchObject({
        objectKey: victim.packKey,
        location: victim.where,
        problem: 'missing',
        message: `chunk ${victim.hex} at ${victim.where} is missing: its pack does not exist`,
      });
      expect(byBackupId(reported!.backups)).toEqual(byBackupId([b1, b2]));
      expect(found.corruptChunks).toEqual([]);
      expect(byBackupId(found.damageRecordsWritten.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
      for (const b of [b1, b2]) {
        const record = await repository.readDamageRecord(b);
        expect(hexes(record?.chunks)).toEqual(lost.map((c) => [c.hex, 'missing']));
      }

      // Both backups that name the pack are marked: the next backup trusts neither and stores every lost
      // chunk again, in a new pack; its manifest names the new copies, and it restores byte-exact.
      await after(store, b2.manifestKey);
      const b3 = await backup(repository, path);
      expect(b3.trustedManifest).toBeUndefined();
      expect(b3.chunksRepaired).toBe(lost.length);
      expect(b3.chunksNew).toBe(lost.length);
      const healedCopy = await chunksIn(repository, b3, victim.packKey);
      expect(healedCopy).toEqual([]);
      expect((await verifyBackup({ repository, workers, backup: b3, recordDamage: false })).problems).toEqual(
        [],
      );
      await restoresAs(repository, b3, path);
      const inB3 = await storedIn(repository, b3);
      const copies = new Map(lost.map((c) => [c.hex, inB3.get(c.hex)!.where]));

      // The older backups still name the lost pack, but restore from b3's copies: a verify of b1 finds them
      // through the index objects, reads them, calls b1 whole and clears its record.
      const old = await verifyBackup({ repository, workers, backup: b1 });
      expect(old.problems).toEqual([]);
      expect(old.missingChunks).toEqual([]);
      expect(old.chunksChecked).toBe(old.chunksTotal - lost.length);
      expect(old.chunksFromCopies).toBe(lost.length);
      expect(old.chunksNotSought).toBe(0);
      expect(old.chunksFromCopiesRecorded).toBe(0);
      expect(old.fromCopies).toEqual(
        [...lost]
          .sort((a, b) => a.where.localeCompare(b.where))
          .map((c) => ({
            chunkId: c.hex,
            objectKey: victim.packKey,
            location: c.where,
            problem: 'missing',
            message: `chunk ${c.hex} at ${c.where} is missing: its pack does not exist`,
            copy: copies.get(c.hex),
          })),
      );
      expect(old.damageRecord).toMatchObject({ action: 'deleted', chunksListed: 0, cleared: lost.length });
      expect(await repository.readDamageRecord(b1)).toBeUndefined();

      // A check finds the same for b2 (and b1): the repository is clean, the pack still missing, its chunks
      // restorable from copies; b2's record is cleared.
      const again = await checkRepository({ repository, workers });
      expect(again.clean).toBe(true);
      expect(again.missingCount).toBe(0);
      expect(again.missingChunks).toEqual([]);
      expect(again.packsMissing).toBe(1);
      expect(again.missingPacks).toMatchObject([
        { objectKey: victim.packKey, chunks: lost.length, chunksFromCopies: lost.length },
      ]);
      expect(again.chunksFromCopies).toBe(lost.length);
      expect(again.fromCopies.map((c) => [c.chunkId, c.location, c.problem, c.copy])).toEqual(
        lost.map((c) => [c.hex, c.where, 'missing', copies.get(c.hex)]),
      );
      expect(again.fromCopies.map((c) => byBackupId(c.backups))).toEqual(
        lost.map(() => byBackupId([b1, b2])),
      );
      // b2's recorded chunks, read where b3 names them; those copies need no second read.
      expect(again.chunksRead).toBe(lost.length);
      expect(again.copiesRead).toBe(0);
      expect(again.damageRecordsWritten).toEqual([]);
      expect(byBackupId(again.damageRecordsCleared.map((u) => u.ref))).toEqual(byBackupId([b2]));
      expect((await repository.listDamage()).empty).toBe(true);

      // No record lists them any more: the next backup trusts b3 and stores nothing, and b1 restores
      // byte-exact from the copies.
      const b4 = await backup(repository, path);
      expect(b4.trustedManifest).toBe(b3.manifestKey);
      expect(b4.chunksNew).toBe(0);
      expect(b4.chunksRepaired).toBe(0);
      const out = join(dir, `${b1.backupId}.out`);
      const restored = await restoreBackup({ repository, workers, backup: b1, targetPath: out });
      expect(restored.chunksFromCopies).toBe(lost.length);
      expect(await sha256File(out)).toBe(await sha256File(path));
      await rm(out, { force: true });
      const still = await checkRepository({ repository, workers });
      expect(still.clean).toBe(true);
      expect(still.chunksRead).toBe(0);
      expect(still.copiesRead).toBe(lost.length); // no record lists them: the copies are read once more
      expect(still.damageRecordsWritten).toEqual([]);

      // Once b1 and b2 are deleted, no manifest names the lost pack.
      await store.delete(b1.manifestKey);
      await store.delete(b2.manifestKey);
      const healed = await checkRepository({ repository, workers });
      expect(healed.clean).toBe(true);
      expect(healed.packsMissing).toBe(0);
      expect(healed.chunksFromCopies).toBe(0);
    });

    it('a damaged copy with no other copy stays damaged; a backup after that stores it once more, and then it clears', async () => {
      const repository = await newRepository(await bare('copy-damaged'));
      const store = repository.store;
      const path = await image();
      const b1 = await backup(repository, path);
      const victim = await firstChunk(repository, b1);
      const lost = await chunksIn(repository, b1, victim.packKey);
      await store.delete(victim.packKey);
      await verifyBackup({ repository, workers, backup: b1 });
      await after(store, b1.manifestKey);
      const b2 = await backup(repository, path);
      expect(b2.chunksRepaired).toBe(lost.length);
      // b2's copy of the victim bit-flipped: b1's chunk has no copy that opens, the others do.
      const b2Copy = (await storedIn(repository, b2)).get(victim.hex)!;
      expect(b2Copy.packKey).not.toBe(victim.packKey);
      await flipInRange(store, b2Copy);

      const v = await verifyBackup({ repository, workers, backup: b1 });
      expect(v.problems.map((p) => [p.chunkId, p.location])).toEqual([[victim.hex, victim.where]]);
      expect(v.missingChunks).toEqual([victim.where]);
      expect(v.chunksFromCopies).toBe(lost.length - 1);
      expect(v.fromCopies.map((c) => c.chunkId).sort()).toEqual(
        lost.filter((c) => c.hex !== victim.hex).map((c) => c.hex),
      );
      expect(v.damageRecord).toMatchObject({ action: 'written', chunksListed: 1, cleared: lost.length - 1 });
      expect(hexes((await repository.readDamageRecord(b1))?.chunks)).toEqual([[victim.hex, 'missing']]);

      // The check: b1's copy is missing and b2's corrupt, each with no other copy that opens.
      const c = await checkRepository({ repository, workers, readData: 'all' });
      expect(c.clean).toBe(false);
      expect(c.missingChunks.map((r) => [r.chunkId, r.location, byBackupId(r.backups)])).toEqual([
        [victim.hex, victim.where, [b1.backupId]],
      ]);
      expect(c.corruptChunks.map((r) => [r.chunkId, r.location, byBackupId(r.backups)])).toEqual([
        [victim.hex, b2Copy.where, [b2.backupId]],
      ]);
      expect(c.chunksFromCopies).toBe(lost.length - 1);
      expect(c.missingPacks).toMatchObject([{ chunks: lost.length, chunksFromCopies: lost.length - 1 }]);
      expect(hexes((await repository.readDamageRecord(b1))?.chunks)).toEqual([[victim.hex, 'missing']]);
      expect(hexes((await repository.readDamageRecord(b2))?.chunks)).toEqual([[victim.hex, 'corrupt']]);

      // The next backup stores it a third time; then both older backups restore from that copy, and their
      // records are cleared. (b3 takes the other chunks through the index objects, where b1's still name the
      // lost pack: it may name that pack too, and is then recorded as its volume's latest, below.)
      await after(store, b2.manifestKey);
      const b3 = await backup(repository, path);
      expect(b3.chunksRepaired).toBe(1);
      const healed = await checkRepository({ repository, workers });
      expect(healed.clean).toBe(true);
      expect(healed.missingCount + healed.corruptCount).toBe(0);
      // b1's lost chunks and b2's corrupt one, restorable from copies.
      expect(healed.chunksFromCopies).toBeGreaterThanOrEqual(lost.length + 1);
      expect(byBackupId(healed.damageRecordsCleared.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
      expect(await repository.readDamageRecord(b1)).toBeUndefined();
      expect(await repository.readDamageRecord(b2)).toBeUndefined();
      const left = (await repository.listDamage()).records;
      expect(left.every((r) => r.ref.backupId === b3.backupId)).toBe(true);
      await restoresAs(repository, b1, path);
      await restoresAs(repository, b2, path);
      await restoresAs(repository, b3, path);
    });

    it('a bit-flipped chunk in a pack: check with readData all records it corrupt, the next backup stores it again though the pack exists', async () => {
      const repository = await newRepository(await bare('corrupt'));
      const store = repository.store;
      const path = await image();
      const b1 = await backup(repository, path);
      const b2 = await backup(repository, path);
      const victim = await firstChunk(repository, b1);
      await flipInRange(store, victim);

      // Existence alone sees nothing wrong.
      const shallow = await checkRepository({ repository, workers, recordDamage: false });
      expect(shallow.clean).toBe(true);
      expect(shallow.chunksRead).toBe(0);

      const deep = await checkRepository({ repository, workers, readData: 'all' });
      expect(deep.chunksRead).toBe(deep.chunksChecked);
      expect(deep.corruptCount).toBe(1);
      expect(deep.missingCount).toBe(0);
      expect(deep.corruptChunks[0]).toMatchObject({
        chunkId: victim.hex,
        objectKey: victim.packKey,
        location: victim.where,
        problem: 'corrupt',
      });
      expect(deep.corruptChunks[0]!.message).toContain('integrity check failed');
      expect(deep.corruptChunks[0]!.message).toContain(victim.hex);
      expect(deep.corruptChunks[0]!.message).toContain(victim.where);
      expect(byBackupId(deep.corruptChunks[0]!.backups)).toEqual(byBackupId([b1, b2]));
      expect(byBackupId(deep.damageRecordsWritten.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
      expect((await repository.readDamageRecord(b2))!.chunks.get(victim.id)?.problem).toBe('corrupt');

      await after(store, b2.manifestKey);
      const b3 = await backup(repository, path);
      expect(b3.chunksNew).toBe(1);
      expect(b3.chunksRepaired).toBe(1);
      expect((await verifyBackup({ repository, workers, backup: b3, recordDamage: false })).problems).toEqual(
        [],
      );
      await restoresAs(repository, b3, path);
      const copy = (await storedIn(repository, b3)).get(victim.hex)!;
      expect(copy.packKey).not.toBe(victim.packKey);
      // b1 names the corrupt copy, but restores from b3's: no damage (with recordDamage false, reported only).
      const old = await verifyBackup({ repository, workers, backup: b1, recordDamage: false });
      expect(old.corruptChunks).toEqual([]);
      expect(old.problems).toEqual([]);
      expect(old.fromCopies.map((c) => [c.objectKey, c.location, c.chunkId, c.problem, c.copy])).toEqual([
        [victim.packKey, victim.where, victim.hex, 'corrupt', copy.where],
      ]);
      expect(old.fromCopies[0]!.message).toContain('integrity check failed');
      expect(old.damageRecord).toBeUndefined();
      // A check that reads no data still reads the recorded chunk, both copies: the new one whole, the old
      // one still corrupt but restorable from the new one, so both records are cleared.
      const after3 = await checkRepository({ repository, workers });
      expect(after3.clean).toBe(true);
      expect(after3.chunksRead).toBe(2);
      expect(after3.corruptCount).toBe(0);
      expect(after3.chunksFromCopies).toBe(1);
      expect(after3.fromCopies.map((c) => [c.location, c.copy, byBackupId(c.backups)])).toEqual([
        [victim.where, copy.where, byBackupId([b1, b2])],
      ]);
      expect(after3.damageRecordsWritten).toEqual([]);
      expect(byBackupId(after3.damageRecordsCleared.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
      const b4 = await backup(repository, path);
      expect(b4.chunksNew).toBe(0);
      expect(b4.chunksRepaired).toBe(0);
      await restoresAs(repository, b1, path);
    });

    it('a truncated pack: the chunks past its end are corrupt (found by the listing, without reading data), those before it whole', async () => {
      const repository = await newRepository(await bare('truncated'));
      const store = repository.store;
      const path = await image();
      const b1 = await backup(repository, path);
      const victim = await firstChunk(repository, b1);
      const inPack = await chunksIn(repository, b1, victim.packKey);
      const pack = await store.get(victim.packKey);
      const cut = Math.floor(pack.length / 2);
      await store.put(victim.packKey, pack.subarray(0, cut));
      const past = inPack.filter((c) => c.location.offset + c.location.length > cut);
      expect(past.length).toBeGreaterThan(0);
      expect(past.length).toBeLessThan(inPack.length);

      const found = await checkRepository({ repository, workers });
      expect(found.clean).toBe(false);
      expect(found.chunksRead).toBe(0);
      expect(found.missingCount).toBe(0);
      expect(found.corruptCount).toBe(past.length);
      expect(found.corruptChunks.map((c) => [c.chunkId, c.location])).toEqual(
        past.map((c) => [c.hex, c.where]),
      );
      expect(found.corruptChunks[0]!.message).toContain(`past the end of its pack (${cut} bytes)`);
      expect(hexes((await repository.readDamageRecord(b1))?.chunks)).toEqual(
        past.map((c) => [c.hex, 'corrupt']),
      );

      // A verify reads every range: those past the end fail, those before it are whole.
      const verified = await verifyBackup({ repository, workers, backup: b1, recordDamage: false });
      expect(verified.missingChunks).toEqual([]);
      expect(verified.corruptChunks).toEqual(past.map((c) => c.where).sort());
      expect(verified.chunksChecked).toBe(verified.chunksTotal - past.length);

      const b2 = await backup(repository, path);
      expect(b2.chunksRepaired).toBe(past.length);
      await restoresAs(repository, b2, path);
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

describe('verify records what it finds', () => {
  it('lists the chunks of a missing pack, keeps reporting them as before, and clears the record once the pack is back whole', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path);
    const victim = await firstChunk(repository, b1);
    const lost = await chunksIn(repository, b1, victim.packKey);
    const original = await repository.store.get(victim.packKey);
    await repository.store.delete(victim.packKey);

    const report = await verifyBackup({
      repository,
      workers,
      backup: b1,
      now: () => new Date('2026-12-01T08:00:00Z'),
    });
    expect(report.problems).toHaveLength(lost.length);
    expect(report.problems.find((p) => p.chunkId === victim.hex)).toEqual({
      objectKey: victim.packKey,
      location: victim.where,
      chunkId: victim.hex,
      message: `chunk ${victim.hex} at ${victim.where} is missing: its pack does not exist`,
    });
    expect(report.missingChunks).toEqual(lost.map((c) => c.where).sort());
    expect(report.corruptChunks).toEqual([]);
    expect(report.chunksChecked).toBe(report.chunksTotal - lost.length);
    expect(report.damageRecord).toMatchObject({
      action: 'written',
      chunksListed: lost.length,
      added: lost.length,
      cleared: 0,
    });
    const record = await repository.readDamageRecord(b1);
    expect([...record!.chunks]).toEqual(
      lost.map((c) => ({ id: c.id, problem: 'missing', foundAt: new Date('2026-12-01T08:00:00Z') })),
    );

    // The same finding again changes nothing (the found-at time stays the first one).
    const again = await verifyBackup({ repository, workers, backup: b1 });
    expect(again.damageRecord).toMatchObject({ action: 'unchanged', chunksListed: lost.length });
    expect((await repository.readDamageRecord(b1))!.chunks.foundAtAt(0)).toEqual(
      new Date('2026-12-01T08:00:00Z'),
    );

    // Back, but not whole: an existence problem is not cleared by existence; the damaged range becomes
    // `corrupt`, the rest of the pack (read because it is recorded, whatever the sample) is cleared.
    const broken = Uint8Array.from(original);
    broken[victim.location.offset + 40]! ^= 0x80;
    await repository.store.put(victim.packKey, broken);
    const corrupt = await verifyBackup({ repository, workers, backup: b1, samplePercent: 1 });
    expect(corrupt.corruptChunks).toEqual([victim.where]);
    expect(corrupt.missingChunks).toEqual([]);
    expect(corrupt.damageRecord).toMatchObject({
      action: 'written',
      chunksListed: 1,
      added: 1,
      cleared: lost.length - 1,
    });
    expect(hexes((await repository.readDamageRecord(b1))!.chunks)).toEqual([[victim.hex, 'corrupt']]);

    // Whole again: a sampled verify still reads the recorded chunk, and clears it.
    await repository.store.put(victim.packKey, original);
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

  it('a sampled verify reads exactly ⌈P %⌉ of the chunks, in pack order', async () => {
    const repository = await newRepository();
    const b1 = await backup(repository, await image());
    const ranges: string[] = [];
    const spying = await Repository.openWithKey(
      {
        ...repository.store,
        location: repository.store.location,
        head: (k, o) => repository.store.head(k, o),
        list: (p, o) => repository.store.list(p, o),
        put: (k, body, o) => repository.store.put(k, body, o),
        delete: (k, o) => repository.store.delete(k, o),
        deleteMany: (k, o) => repository.store.deleteMany(k, o),
        get: (k, r, o) => {
          if (k.startsWith('packs/')) ranges.push(`${k}@${r?.offset}+${r?.length}`);
          return repository.store.get(k, r, o);
        },
      },
      repository.targetKey,
    );
    const report = await verifyBackup({ repository: spying, workers, backup: b1, samplePercent: 10 });
    expect(report.chunksTotal).toBe(b1.chunks);
    expect(report.chunksChecked).toBe(Math.ceil(b1.chunks / 10));
    expect(report.problems).toEqual([]);
    expect(ranges.length).toBeGreaterThan(0);
    expect(ranges.length).toBeLessThanOrEqual(report.chunksChecked);
    expect(ranges.every((r) => r.startsWith('packs/'))).toBe(true);

    // All of it: one GET per run of adjacent chunks (at most MAX_SPAN_BYTES), not one per chunk.
    ranges.length = 0;
    const all = await verifyBackup({ repository: spying, workers, backup: b1 });
    expect(all.chunksChecked).toBe(b1.chunks);
    expect(ranges.length).toBeLessThan(b1.chunks);
    expect(ranges.length).toBeGreaterThanOrEqual(b1.packs);
  });

  it('verifies in several passes when the index outgrows its memory, finding the same', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path, 'passes', 128 << 10);
    const victim = await firstChunk(repository, b1);
    await repository.store.delete(victim.packKey);
    const whole = await verifyBackup({ repository, workers, backup: b1, recordDamage: false });
    const sliced = await verifyBackup({
      repository,
      workers,
      backup: b1,
      recordDamage: false,
      indexMemoryBytes: 152 * 12,
    });
    expect(whole.passes).toBe(1);
    // At most 12 chunks a pass (a pass takes whole slices of the pack-id space).
    expect(sliced.passes).toBeGreaterThanOrEqual(Math.ceil(whole.chunksTotal / 12));
    expect(sliced.passes).toBeGreaterThan(2);
    expect(sliced.chunksTotal).toBe(whole.chunksTotal);
    expect(sliced.chunksChecked).toBe(whole.chunksChecked);
    expect(sliced.missingChunks).toEqual(whole.missingChunks);
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
    const lost = await chunksIn(repository, b1, victim.packKey);
    await memory.delete(victim.packKey);
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
    expect(report.problems.map((p) => p.chunkId).sort()).toEqual(lost.map((c) => c.hex));
    expect(report.problems.every((p) => p.objectKey === victim.packKey)).toBe(true);
    expect(report.damageRecord).toBeUndefined();
    expect(report.damageRecordError).toContain(`could not update damage/${b1.volumeId}/${b1.backupId}`);
    expect(report.damageRecordError).toContain('access denied');
  });

  it('with recordDamage false leaves the repository untouched', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path);
    const victim = await firstChunk(repository, b1);
    await repository.store.delete(victim.packKey);
    const report = await verifyBackup({ repository, workers, backup: b1, recordDamage: false });
    expect(report.missingChunks).toContain(victim.where);
    expect(report.damageRecord).toBeUndefined();
    expect(await repository.readDamageRecord(b1)).toBeUndefined();
  });

  it('a missing or corrupt segment is reported by its chunks/ key, and the chunks it names are unknown', async () => {
    const repository = await newRepository();
    const path = await image();
    const source = await openVolumeSource(path);
    const b1 = await backupVolume({
      repository,
      workers,
      source,
      volumeName: 'segments',
      manifestSegmentEntries: 8,
    }).finally(() => source.close());
    const manifest = await repository.loadManifest(b1);
    const segment = Buffer.from(manifest.segments.subarray(0, 32));
    const key = chunkObjectKey(segment);
    await repository.store.delete(key);
    const report = await verifyBackup({ repository, workers, backup: b1 });
    expect(report.missingChunks).toEqual([key]);
    expect(report.problems).toEqual([
      { objectKey: key, location: undefined, chunkId: segment.toString('hex'), message: expect.any(String) },
    ]);
    expect(report.chunksTotal).toBeLessThan(b1.chunks);
    expect(report.chunksChecked).toBe(report.chunksTotal);
    expect(hexes((await repository.readDamageRecord(b1))!.chunks)).toEqual([
      [segment.toString('hex'), 'missing'],
    ]);
  });
});

describe('backups and damage records', () => {
  it('a damaged latest backup is not trusted: chunks recorded missing are stored again, the rest found through the index', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path);
    const b2 = await backup(repository, path);
    expect(b2.trustedManifest).toBe(b1.manifestKey);
    expect(b2.index).toBeUndefined();

    const victim = await firstChunk(repository, b2);
    const lost = await chunksIn(repository, b2, victim.packKey);
    await repository.store.delete(victim.packKey);
    await verifyBackup({ repository, workers, backup: b2 });
    const b3 = await backup(repository, path);
    expect(b3.trustedManifest).toBeUndefined();
    expect(b3.index).toBeDefined();
    expect(b3.chunksRepaired).toBe(lost.length);
    expect(b3.chunksNew).toBe(lost.length);
    expect((await verifyBackup({ repository, workers, backup: b3 })).problems).toEqual([]);
    await restoresAs(repository, b3, path);
  });

  it('a chunk recorded missing is stored again even when the latest manifest is clean', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path);
    const b2 = await backup(repository, path);
    const victim = await firstChunk(repository, b1);
    const lost = await chunksIn(repository, b1, victim.packKey);
    await repository.store.delete(victim.packKey);
    // Only b1 is marked (as a verify of b1 alone would leave it); b2, the latest, is clean and trusted, but
    // not for the recorded chunks.
    await verifyBackup({ repository, workers, backup: b1 });
    expect((await repository.listDamage()).isMarked(b2.manifestKey)).toBe(false);
    const b3 = await backup(repository, path);
    expect(b3.trustedManifest).toBe(b2.manifestKey);
    expect(b3.chunksRepaired).toBe(lost.length);
    expect((await verifyBackup({ repository, workers, backup: b3, recordDamage: false })).problems).toEqual(
      [],
    );
    await restoresAs(repository, b3, path);
  });

  it("a chunk read from another volume's copy stays recorded for its own volume's latest backup, whose next backup stores it instead of naming the lost pack", async () => {
    const repository = await newRepository();
    const path = await image();
    const a1 = await backup(repository, path, 'a');
    // A new volume's first backup finds every chunk through the index: it names a1's packs.
    const b1 = await backup(repository, path, 'b');
    expect(b1.chunksNew).toBe(0);
    const victim = await firstChunk(repository, b1);
    const lost = await chunksIn(repository, b1, victim.packKey);
    await repository.store.delete(victim.packKey);
    const found = await checkRepository({ repository, workers });
    expect(byBackupId(found.damageRecordsWritten.map((u) => u.ref))).toEqual(byBackupId([a1, b1]));
    const a2 = await backup(repository, path, 'a');
    expect(a2.chunksRepaired).toBe(lost.length);

    // b1 restores from a2's copies, so it is no damage; but it is b's latest backup, whose manifest b's next
    // backup would take the lost locations from: its record keeps them.
    const v = await verifyBackup({ repository, workers, backup: b1 });
    expect(v.problems).toEqual([]);
    expect(v.chunksFromCopies).toBe(lost.length);
    expect(v.chunksFromCopiesRecorded).toBe(lost.length);
    expect(v.damageRecord).toMatchObject({ action: 'unchanged', chunksListed: lost.length });
    const c = await checkRepository({ repository, workers });
    expect(c.clean).toBe(true);
    expect(c.chunksFromCopies).toBe(lost.length);
    expect(byBackupId(c.damageRecordsCleared.map((u) => u.ref))).toEqual(byBackupId([a1]));
    expect((await repository.listDamage()).records.map((r) => r.ref.backupId)).toEqual([b1.backupId]);

    // So b's next backup trusts no manifest and stores those chunks in its own pack, not naming the lost one.
    const b2 = await backup(repository, path, 'b');
    expect(b2.trustedManifest).toBeUndefined();
    expect(b2.chunksRepaired).toBe(lost.length);
    expect(await chunksIn(repository, b2, victim.packKey)).toEqual([]);
    // b1 is no longer b's latest: the check clears its record, and nothing is stored again after that.
    const healed = await checkRepository({ repository, workers });
    expect(healed.clean).toBe(true);
    expect(byBackupId(healed.damageRecordsCleared.map((u) => u.ref))).toEqual(byBackupId([b1]));
    expect((await repository.listDamage()).empty).toBe(true);
    const b3 = await backup(repository, path, 'b');
    expect(b3.trustedManifest).toBe(b2.manifestKey);
    expect(b3.chunksNew).toBe(0);
    await restoresAs(repository, b1, path);
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

describe('checkRepository', () => {
  it('checks in several passes when the index outgrows its memory, finding the same', async () => {
    const repository = await newRepository();
    const a = await image(2 << 20);
    const b = await image(2 << 20);
    const ba = await backup(repository, a, 'a', 128 << 10);
    const bb = await backup(repository, b, 'b', 128 << 10);
    let lost = 0;
    for (const ref of [ba, bb]) {
      const victim = await firstChunk(repository, ref);
      lost += (await chunksIn(repository, ref, victim.packKey)).length;
      await repository.store.delete(victim.packKey);
    }
    const whole = await checkRepository({ repository, workers, recordDamage: false });
    expect(whole.passes).toBe(1);
    // Room for about 12 chunks a pass.
    const sliced = await checkRepository({
      repository,
      workers,
      recordDamage: false,
      indexMemoryBytes: 152 * 12,
    });
    expect(sliced.passes).toBeGreaterThan(3);
    expect(sliced.chunksChecked).toBe(whole.chunksChecked);
    expect(sliced.chunksChecked).toBe(ba.chunks + bb.chunks);
    expect(sliced.packsReferenced).toBe(whole.packsReferenced);
    expect(sliced.packsReferenced).toBe(ba.packs + bb.packs);
    expect(sliced.packsListed).toBe(whole.packsListed);
    expect(sliced.packsMissing).toBe(2);
    expect(sliced.missingPacks).toEqual(whole.missingPacks);
    expect(sliced.missingChunks.map((c) => c.chunkId)).toEqual(whole.missingChunks.map((c) => c.chunkId));
    expect(sliced.missingCount).toBe(lost);
    expect(sliced.missingChunks.map((c) => byBackupId(c.backups))).toEqual(
      whole.missingChunks.map((c) => byBackupId(c.backups)),
    );
  });

  it('reads a random subset of the chunks, chosen by the injected random source', async () => {
    const repository = await newRepository();
    const b1 = await backup(repository, await image());
    const picks = async (seed: number) => {
      const read: string[] = [];
      let bytes = 0;
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
            if (k.startsWith('packs/')) {
              read.push(`${k}@${r?.offset}+${r?.length}`);
              bytes += r?.length ?? 0;
            }
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
      expect(report.segmentsRead).toBe(1);
      // Ranges of packs, never a whole pack: adjacent chunks share a GET, so at most one per chunk.
      expect(read.length).toBeGreaterThan(0);
      expect(read.length).toBeLessThanOrEqual(report.chunksRead);
      expect(read.every((r) => !r.endsWith('@undefined+undefined'))).toBe(true);
      expect(report.bytesRead).toBe(bytes);
      return read.sort();
    };
    expect(await picks(1)).toEqual(await picks(1));
    expect(await picks(1)).not.toEqual(await picks(2));
    await expect(
      checkRepository({ repository, workers, readData: { subsetPercent: 0 } }),
    ).rejects.toMatchObject({ code: 'invalid-argument' });
  });

  it('counts packs and chunk objects no manifest names, and warns of an index object that does not decode', async () => {
    const repository = await newRepository();
    const b1 = await backup(repository, await image(1 << 20));
    const clean = await checkRepository({ repository, workers });
    expect(clean.clean).toBe(true);
    expect(clean.packsUnreferenced).toBe(0);
    expect(clean.chunkObjectsUnreferenced).toBe(0);
    expect(clean.chunkObjectsListed).toBe(b1.manifestSegments);
    expect(clean.indexObjectsChecked).toBe(b1.indexObjects);
    expect(clean.indexObjectsUnreadable).toEqual([]);

    // A crashed backup's pack and segment, and garbage that is not a pack at all.
    const orphan = packObjectKey(new Uint8Array(32).fill(0xab));
    await repository.store.put(orphan, seededBytes('orphan', 5000));
    const orphanSegment = chunkObjectKey(new Uint8Array(32).fill(0xcd));
    await repository.store.put(orphanSegment, seededBytes('orphan segment', 300));
    await repository.store.put('packs/zz/not-a-pack', new Uint8Array(10));
    // An index object that does not decode, and one that names a pack nobody has.
    const badIndex = packIndexObjectKey(b1.volumeId, b1.backupId, '0123456789abcdef');
    await repository.store.put(badIndex, new Uint8Array(64).fill(3));
    const hintKey = packIndexObjectKey(b1.volumeId, b1.backupId, 'fedcba9876543210');
    await repository.store.put(
      hintKey,
      encodePackIndex(
        repository.keys,
        hintKey,
        PackIndexEntries.from([
          {
            id: new Uint8Array(32).fill(1),
            location: { pack: new Uint8Array(32).fill(2), offset: 0, length: 100 },
          },
        ]),
      ),
    );

    const report = await checkRepository({ repository, workers });
    expect(report.clean).toBe(true); // garbage and hints are no damage
    expect(report.packsListed).toBe(b1.packs + 1);
    expect(report.packsReferenced).toBe(b1.packs);
    expect(report.packsUnreferenced).toBe(1);
    expect(report.bytesUnreferenced).toBe(5000);
    expect(report.unreferencedPacks).toEqual([orphan]);
    expect(report.chunkObjectsListed).toBe(b1.manifestSegments + 1);
    expect(report.chunkObjectsUnreferenced).toBe(1);
    expect(report.indexObjectsChecked).toBe(b1.indexObjects + 1);
    expect(report.indexObjectsUnreadable.map((u) => u.objectKey)).toEqual([badIndex]);
    expect(report.indexObjectsUnreadable[0]!.message).toContain(badIndex);
    // Nothing was deleted.
    expect(await repository.store.head(orphan)).toBeDefined();
    expect(await repository.store.head(orphanSegment)).toBeDefined();
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
    // b1's packs are named by no manifest the check could read.
    expect(report.packsUnreferenced).toBe(b1.packs);
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
    const lost = await chunksIn(repository, b1, victim.packKey);
    await repository.store.put(repository.damageRecordKey(b1), new Uint8Array(64).fill(7));
    const shallow = await checkRepository({ repository, workers });
    expect(shallow.clean).toBe(false);
    expect(shallow.damageRecordsUnreadable.map((u) => u.ref.backupId)).toEqual([b1.backupId]);
    expect(shallow.damageRecordsWritten).toEqual([]);
    expect(shallow.damageRecordsCleared).toEqual([]);
    expect(await repository.store.head(repository.damageRecordKey(b1))).toBeDefined();

    // Having read every chunk, the check knows what the record should say: here, the chunks of one pack.
    await repository.store.delete(victim.packKey);
    const deep = await checkRepository({ repository, workers, readData: 'all' });
    expect(deep.damageRecordsWritten).toMatchObject([
      {
        ref: { backupId: b1.backupId },
        action: 'written',
        chunksListed: lost.length,
        replacedUnreadable: true,
      },
    ]);
    expect(hexes((await repository.readDamageRecord(b1))!.chunks)).toEqual(
      lost.map((c) => [c.hex, 'missing']),
    );
  });

  it('clears a record for a chunk when every copy the backup names reads whole, or another stored copy does', async () => {
    const repository = await newRepository();
    const path = await image();
    const b1 = await backup(repository, path);
    const victim = await firstChunk(repository, b1);
    await flipInRange(repository.store, victim);
    await checkRepository({ repository, workers, readData: 'all' });
    // b2 stores the chunk again; b1 still names its corrupt copy, b2 only the new one.
    const b2 = await backup(repository, path);
    expect(b2.chunksRepaired).toBe(1);
    await repository.writeDamageRecord(
      b2,
      DamagedChunks.from([{ id: victim.id, problem: 'corrupt', foundAt: new Date('2026-12-01T00:00:00Z') }]),
    );
    const report = await checkRepository({ repository, workers });
    expect(report.clean).toBe(true);
    expect(report.chunksRead).toBe(2);
    expect(report.corruptChunks).toEqual([]);
    expect(report.fromCopies.map((c) => [c.location, byBackupId(c.backups)])).toEqual([
      [victim.where, [b1.backupId]],
    ]);
    // b2: the one copy it names read whole; b1: its copy is corrupt, b2's reads whole.
    expect(byBackupId(report.damageRecordsCleared.map((u) => u.ref))).toEqual(byBackupId([b1, b2]));
    expect((await repository.listDamage()).empty).toBe(true);
  });

  it('reports progress of each step, and a cancel rejects with aborted', async () => {
    const repository = await newRepository();
    const path = join(dir, 'progress.img');
    await writeTestVolume(path, 4 << 20, 'progress');
    await backup(repository, path);
    const seen: CheckProgress[] = [];
    await checkRepository({ repository, workers, readData: 'all', onProgress: (p) => seen.push(p) });
    expect(new Set(seen.map((p) => p.step))).toEqual(new Set(['manifests', 'packs', 'data', 'index']));
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
