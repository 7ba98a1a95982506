// Manifests of many segments through the engine (docs/format.md §6): backups store segments as they fill,
// restore, verify and check stream them; a segment swapped, reordered, truncated or missing is found and
// named with its manifest; a root is bound to its volume; volume names are one volume whatever their Unicode
// spelling. Small segments (4 entries) so a few MiB make many of them.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chunkObjectKey,
  describeLocation,
  IntegrityError,
  type Manifest,
  manifestSegmentCount,
  packObjectKey,
} from '@stowage/format';
import { MemoryObjectStore, type ObjectStore, ObjectStoreError } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume } from './backup.js';
import { checkRepository } from './check.js';
import { INDEX_BYTES_PER_CHUNK } from './chunk-ids.js';
import { type BackupRef, Repository } from './repository.js';
import { restoreBackup } from './restore.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { seededBytes, sha256File, writeImage, writeTestVolume } from './testing/volumes.js';
import { verifyBackup } from './verify.js';
import { openVolumeSource } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

const N = 4;
let dir: string;
let workers: ChunkWorkers;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-segments-'));
  workers = new ChunkWorkers(undefined, { threads: 2 });
});
afterAll(async () => {
  await workers?.close();
  await rm(dir, { recursive: true, force: true });
});

/** `store` whose GETs are logged (keys, in order; a ranged GET as `<key>@<offset>+<length>`). */
function logging(store: ObjectStore, gets: string[]): ObjectStore {
  return {
    location: store.location,
    head: (k) => store.head(k),
    list: (p) => store.list(p),
    get: (k, r) => {
      gets.push(r === undefined ? k : `${k}@${r.offset}+${r.length}`);
      return store.get(k, r);
    },
    put: (k, b, o) => store.put(k, b, o),
    delete: (k) => store.delete(k),
    deleteMany: (k) => store.deleteMany(k),
  };
}

async function newRepository(store: ObjectStore = new MemoryObjectStore()): Promise<Repository> {
  const repository = await Repository.init(store, {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  await workers.useKey(repository.targetKey);
  return repository;
}

let images = 0;
async function image(seed = `image-${++images}`, size = 6 << 20): Promise<string> {
  const path = join(dir, `${seed}.img`);
  await writeTestVolume(path, size, seed);
  return path;
}

async function backup(repository: Repository, path: string, volumeName = 'stream', packTarget?: number) {
  const source = await openVolumeSource(path);
  try {
    return await backupVolume({
      repository,
      workers,
      source,
      volumeName,
      manifestSegmentEntries: N,
      ...(packTarget === undefined ? {} : { packTarget }),
    });
  } finally {
    await source.close();
  }
}

function segmentKeys(manifest: Manifest): string[] {
  const keys: string[] = [];
  for (let at = 0; at < manifest.segments.length; at += 32) {
    keys.push(chunkObjectKey(manifest.segments.subarray(at, at + 32)));
  }
  return keys;
}

async function restoreTo(repository: Repository, ref: BackupRef, name: string) {
  const out = join(dir, `${name}-${Math.random().toString(36).slice(2)}.out`);
  const summary = await restoreBackup({ repository, workers, backup: ref, targetPath: out });
  return { out, summary };
}

describe('manifests of many segments', () => {
  it('a backup stores its segments as they fill; a streaming restore is byte-exact; unchanged, nothing is new', async () => {
    const gets: string[] = [];
    const memory = new MemoryObjectStore();
    const repository = await newRepository(logging(memory, gets));
    const path = await image('many');
    const b1 = await backup(repository, path);
    const root = await repository.loadManifest(b1);
    expect(root.segmentEntries).toBe(N);
    expect(manifestSegmentCount(root)).toBe(Math.ceil(root.entryCount / N));
    expect(b1.manifestSegments).toBe(manifestSegmentCount(root));
    expect(b1.manifestSegments).toBeGreaterThan(5);
    expect(b1.manifestSegmentsNew).toBe(b1.manifestSegments);
    expect(root.chunkCount).toBe(b1.chunks);
    expect(root.holeBytes).toBe(b1.holeBytes);

    gets.length = 0;
    const { out, summary } = await restoreTo(repository, b1, 'many');
    expect(await sha256File(out)).toBe(await sha256File(path));
    const st = await stat(out);
    expect(st.blocks * 512).toBeLessThan(st.size); // holes stayed holes
    expect(summary.chunks).toBe(b1.chunks);
    // Root once, then every segment once, in order (the chunks they name interleaved).
    const segments = segmentKeys(root);
    expect(gets.filter((k) => k.startsWith('manifests/'))).toEqual([b1.manifestKey]);
    expect(gets.filter((k) => segments.includes(k))).toEqual(segments);

    const b2 = await backup(repository, path);
    expect(b2.chunksNew).toBe(0);
    expect(b2.manifestSegmentsNew).toBe(0);
    const root2 = await repository.loadManifest(b2);
    expect(Buffer.from(root2.segments).equals(Buffer.from(root.segments))).toBe(true);
    const listing = await repository.listBackups();
    expect(listing.backups.map((b) => b.chunks)).toEqual([b1.chunks, b1.chunks]);
    const entries = await repository.loadManifestEntries(b2);
    expect(entries.count).toBe(root.entryCount);
    expect(entries.totalLength).toBe(root.volumeSize);
  });

  it('a root copied under another volume fails to authenticate, naming the object', async () => {
    const repository = await newRepository();
    const b1 = await backup(repository, await image());
    const otherVolume = repository.volumeIdFor('another volume');
    const moved = `manifests/${otherVolume}/${b1.backupId}`;
    await repository.store.put(moved, await repository.store.get(b1.manifestKey));
    const ref = { volumeId: otherVolume, backupId: b1.backupId, manifestKey: moved };
    const error = await repository.loadManifest(ref).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toContain(moved);
    const listing = await repository.listBackups();
    expect(listing.backups.map((b) => b.manifestKey)).toEqual([b1.manifestKey]);
    expect(listing.damaged.map((d) => d.ref.manifestKey)).toEqual([moved]);
    const report = await checkRepository({ repository, workers, recordDamage: false });
    expect(report.damagedManifests.map((d) => d.ref.manifestKey)).toEqual([moved]);
    expect(report.damagedManifests[0]!.message).toContain(moved);
  });

  it('two spellings of a volume name are one volume, recorded in NFC', async () => {
    const repository = await newRepository();
    const composed = 'caf\u00e9 data';
    const decomposed = 'cafe\u0301 data';
    expect(repository.volumeIdFor(decomposed)).toBe(repository.volumeIdFor(composed));
    expect(repository.volumeIdFor('cafe data')).not.toBe(repository.volumeIdFor(composed));
    const path = await image();
    const b1 = await backup(repository, path, decomposed);
    const b2 = await backup(repository, path, composed);
    expect(b1.volumeId).toBe(b2.volumeId);
    expect(b1.volumeName).toBe(composed);
    expect((await repository.loadManifest(b1)).volumeName).toBe(composed);
    // The second backup of the volume trusted the first: it is the same volume's latest manifest.
    expect(b2.trustedManifest).toBe(b1.manifestKey);
    const listing = await repository.listBackups();
    expect(new Set(listing.backups.map((b) => b.volumeName))).toEqual(new Set([composed]));
  });

  it('a segment swapped in from another backup, reordered, truncated or missing fails the restore, naming it and the manifest', async () => {
    const repository = await newRepository();
    const store = repository.store;
    const a = await backup(repository, await image('swap-a'), 'a');
    const b = await backup(repository, await image('swap-b'), 'b');
    const keysA = segmentKeys(await repository.loadManifest(a));
    const keysB = segmentKeys(await repository.loadManifest(b));
    expect(keysA.length).toBeGreaterThan(4);
    const original = new Map<string, Uint8Array>();
    for (const k of keysA) original.set(k, await store.get(k));
    const put = async (k: string, bytes: Uint8Array) => store.put(k, bytes);
    const fails = async (kind: unknown, segmentKey: string, index: number) => {
      const error = await restoreTo(repository, a, 'bad').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(kind);
      expect((error as Error).message).toContain(segmentKey);
      expect((error as Error).message).toContain(`segment ${index} of ${a.manifestKey}`);
      for (const [k, v] of original) await put(k, v);
    };

    await put(keysA[1]!, await store.get(keysB[1]!)); // swapped in from another backup
    await fails(IntegrityError, keysA[1]!, 1);

    await put(keysA[1]!, original.get(keysA[2]!)!); // reordered: 1 and 2 trade places
    await put(keysA[2]!, original.get(keysA[1]!)!);
    await fails(IntegrityError, keysA[1]!, 1);

    await put(keysA[3]!, original.get(keysA[3]!)!.subarray(0, 80)); // truncated
    await fails(IntegrityError, keysA[3]!, 3);

    await store.delete(keysA[2]!); // missing
    const missing = await restoreTo(repository, a, 'bad').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ObjectStoreError);
    expect(missing).toMatchObject({ kind: 'not-found', key: keysA[2] });
    expect((missing as Error).message).toContain(`segment 2 of ${a.manifestKey} is missing`);
    for (const [k, v] of original) await put(k, v);

    // Put back whole, it restores again.
    const { out } = await restoreTo(repository, a, 'good');
    expect(await sha256File(out)).toBe(await sha256File(join(dir, 'swap-a.img')));
  });

  it('verify and check report a missing and a corrupt segment with their manifests, record them, and the next backup heals them', async () => {
    const memory = new MemoryObjectStore();
    const repository = await newRepository(memory);
    const path = await image('heal');
    const a1 = await backup(repository, path);
    const a2 = await backup(repository, path); // unchanged: shares every segment with a1
    const keys = segmentKeys(await repository.loadManifest(a1));
    const [missing, corrupt] = [keys[1]!, keys[3]!];
    await memory.delete(missing);
    const flipped = Uint8Array.from(await memory.get(corrupt));
    flipped[40]! ^= 1;
    await memory.put(corrupt, flipped);

    const v = await verifyBackup({ repository, workers, backup: a2 });
    expect(v.missingChunks).toEqual([missing]);
    expect(v.corruptChunks).toEqual([corrupt]);
    const messages = new Map(v.problems.map((p) => [p.objectKey, p.message]));
    expect(messages.get(missing)).toContain(`segment 1 of ${a2.manifestKey}`);
    expect(messages.get(corrupt)).toContain(`segment 3 of ${a2.manifestKey}`);
    expect(v.segmentsChecked).toBe(keys.length - 2);
    expect(v.chunksChecked).toBeGreaterThan(0); // the chunks the other segments name are still checked
    expect(v.chunksChecked).toBe(v.chunksTotal);
    expect(v.damageRecord).toMatchObject({ action: 'written', chunksListed: 2, added: 2 });

    const c = await checkRepository({ repository, workers });
    expect(c.clean).toBe(false);
    expect(c.missingChunks.map((r) => [r.objectKey, r.backups.map((x) => x.backupId).sort()])).toEqual([
      [missing, [a1.backupId, a2.backupId].sort()],
    ]);
    expect(c.corruptChunks.map((r) => [r.objectKey, r.backups.length])).toEqual([[corrupt, 2]]);
    expect(c.damagedManifests).toEqual([]);
    const recorded = (await repository.listDamage()).records.map((r) => r.ref.backupId).sort();
    expect(recorded).toEqual([a1.backupId, a2.backupId].sort());

    // The next backup trusts neither manifest: it finds the missing segment absent and stores the corrupt one
    // again (the same id is the same records).
    const a3 = await backup(repository, path);
    expect(a3.trustedManifest).toBeUndefined();
    expect(a3.chunksNew).toBe(0);
    expect(a3.manifestSegmentsNew).toBe(2);
    const healed = await checkRepository({ repository, workers });
    expect(healed.clean).toBe(true);
    expect(healed.damageRecordsCleared.map((u) => u.ref.backupId).sort()).toEqual(
      [a1.backupId, a2.backupId].sort(),
    );
    const { out } = await restoreTo(repository, a1, 'healed');
    expect(await sha256File(out)).toBe(await sha256File(path));
  });

  it('verify in several passes over the pack-id space reads each distinct chunk once and finds the same', async () => {
    const gets: string[] = [];
    const memory = new MemoryObjectStore();
    const repository = await newRepository(logging(memory, gets));
    const path = join(dir, 'passes.img');
    // Repeated content: chunks named more than once, across segments. Packs of 128 KiB (about two chunks), so
    // that a pass of four chunks takes a slice of a few packs.
    const block = seededBytes('passes', 1 << 20);
    await writeImage(path, 4 << 20, [
      { offset: 0, data: block },
      { offset: 2 << 20, data: block },
    ]);
    const b = await backup(repository, path, 'stream', 128 << 10);
    expect(b.packs).toBeGreaterThan(4);
    const entries = [...(await repository.loadManifestEntries(b))];
    const victim = entries.find((e) => e.kind === 'chunk')!;
    if (victim.kind !== 'chunk') throw new Error('no chunk');
    const lostPack = packObjectKey(victim.location.pack);
    await memory.delete(lostPack);
    const one = await verifyBackup({ repository, workers, backup: b, recordDamage: false });
    gets.length = 0;
    const many = await verifyBackup({
      repository,
      workers,
      backup: b,
      recordDamage: false,
      indexMemoryBytes: INDEX_BYTES_PER_CHUNK * 4,
    });
    expect(one.passes).toBe(1);
    expect(many.passes).toBeGreaterThan(2);
    const strip = (r: typeof one) => ({ ...r, seconds: 0, passes: 0 });
    expect(strip(many)).toEqual(strip(one));
    expect(one.missingChunks.length).toBeGreaterThan(0);
    expect(one.chunksFromCopies).toBe(0); // the lost pack's chunks have no other copy

    // Ranged GETs of packs: together they cover every distinct chunk object once (the lost pack's too: asked
    // for, not found), none twice, adjacent chunks of a pack in one GET.
    const distinct = new Map<string, { pack: string; offset: number; end: number }>();
    for (const e of entries) {
      if (e.kind !== 'chunk') continue;
      const l = e.location;
      distinct.set(describeLocation(l), {
        pack: packObjectKey(l.pack),
        offset: l.offset,
        end: l.offset + l.length,
      });
    }
    const ranges = gets
      .filter((k) => k.startsWith('packs/'))
      .map((k) => {
        const m = /^(packs\/[0-9a-f]{2}\/[0-9a-f]{64})@(\d+)\+(\d+)$/.exec(k)!;
        return { pack: m[1]!, offset: Number(m[2]), end: Number(m[2]) + Number(m[3]) };
      });
    const covered = new Map<string, number>();
    for (const r of ranges) {
      for (const [where, c] of distinct) {
        if (c.pack === r.pack && c.offset >= r.offset && c.end <= r.end)
          covered.set(where, (covered.get(where) ?? 0) + 1);
      }
    }
    expect([...covered.values()].every((n) => n === 1)).toBe(true);
    expect(covered.size).toBe(distinct.size);
    expect(distinct.size).toBe(one.chunksTotal);
    expect(ranges.length).toBeLessThan(distinct.size);
    expect(ranges.some((r) => r.pack === lostPack)).toBe(true);
    // One pass over the index objects for the damaged chunks' copies, however many passes over the packs.
    expect(gets.filter((k) => k.startsWith('index/')).length).toBe(b.indexObjects);
    // Each pass reads every segment of the root, a repeated one (the same records, so the same id: the
    // repeated block can make one) as often as the root names it.
    const root = await repository.loadManifest(b);
    const segments = new Set(segmentKeys(root));
    expect(gets.filter((k) => segments.has(k)).length).toBe(many.passes * segmentKeys(root).length);
  });
});
