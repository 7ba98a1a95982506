import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packObjectKey } from '@stowage/format';
import { MemoryObjectStore, withMetrics } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume } from './backup.js';
import { loadRepositoryIndex } from './repository-index.js';
import { restoreBackup } from './restore.js';
import { backupImage, newTestRepository, restoreAndHash } from './testing/round-trip.js';
import { seededBytes, sha256File, writeImage, writeTestVolume } from './testing/volumes.js';
import { verifyBackup } from './verify.js';
import { openVolumeSource } from './volume-io.js';

// How a backup finds what is stored already (docs/format.md §5): the volume's previous manifest, the
// repository's index objects, its own chunks — and never a request per chunk.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-dedup-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('dedup without requests per chunk', () => {
  it("takes the chunks the volume's latest manifest names from where it says, and looks no chunk up", async () => {
    const ops: string[] = [];
    const inner = new MemoryObjectStore();
    const store = withMetrics(inner, (event) => {
      if (event.key !== undefined) ops.push(`${event.op} ${event.key.split('/')[0]}`);
    });
    const { repository, workers: w } = await newTestRepository(store);
    try {
      const image = join(dir, 'trusted.img');
      await writeTestVolume(image, 4 << 20, 'trusted');
      const run = (volumeName: string, options: { trustPreviousManifest?: boolean } = {}) => {
        ops.length = 0;
        return backupImage(repository, w, image, volumeName, options);
      };
      const count = (what: string) => ops.filter((o) => o === what).length;
      const first = await run('trusted');
      // One PUT per pack and one index object, whatever the number of chunks; the segment HEAD-then-PUT.
      expect(first.chunks).toBeGreaterThan(20);
      expect(first.packs).toBe(1);
      expect(first.indexObjects).toBe(1);
      expect(count('put packs')).toBe(1);
      expect(count('put index')).toBe(1);
      expect(count('head chunks')).toBe(1);
      expect(count('put chunks')).toBe(1);
      const second = await run('trusted');
      expect(second.chunksNew).toBe(0);
      expect(second.trustedManifest).toBe(first.manifestKey);
      expect(second.index).toBeUndefined(); // everything was in the previous manifest: no index read
      expect(second.manifestSegmentsNew).toBe(0); // the same entries and locations: the same segment
      expect(count('put packs') + count('put index') + count('head chunks') + count('put chunks')).toBe(0);
      // Not trusting the previous manifest: the whole repository index is read instead (one object: the
      // backups since stored nothing), and finds everything.
      const untrusting = await run('trusted', { trustPreviousManifest: false });
      expect(untrusting.trustedManifest).toBeUndefined();
      expect(untrusting.chunksNew).toBe(0);
      expect(untrusting.index).toMatchObject({ objects: 1, unreadable: 0, truncated: false });
      // Another volume with the same data: the repository index (one LIST, one GET per index object) finds it all.
      const clone = await run('clone');
      expect(clone.chunksNew).toBe(0);
      expect(clone.index).toMatchObject({
        objects: 1,
        chunks: first.chunksNew,
        unreadable: 0,
        truncated: false,
      });
      expect(count('get index')).toBe(1);
      expect(count('put packs')).toBe(0);
    } finally {
      await w.close();
    }
  });

  it('reads the previous manifest a window at a time: what moved further back than the window is stored again', async () => {
    const { repository, workers } = await newTestRepository();
    try {
      const size = 4 << 20;
      const data = seededBytes('window', size);
      const image = join(dir, 'window.img');
      await writeImage(image, size, [{ offset: 0, data }]);
      // The first 1 MiB moved to the end (about 16 chunks): its chunks are now 3 MiB further on.
      const moved = join(dir, 'moved.img');
      const cut = 1 << 20;
      await writeImage(moved, size, [
        { offset: 0, data: data.subarray(cut) },
        { offset: size - cut, data: data.subarray(0, cut) },
      ]);
      const backup = async (path: string, volumeName: string, previousWindowChunks?: number) => {
        const source = await openVolumeSource(path);
        try {
          return await backupVolume({
            repository,
            workers,
            source,
            volumeName,
            manifestSegmentEntries: 4,
            // Small reads and few buffers: few chunks in flight, so the window is what decides.
            readSize: 64 << 10,
            readBuffers: 3,
            ...(previousWindowChunks === undefined ? {} : { previousWindowChunks }),
          });
        } finally {
          await source.close();
        }
      };
      // Two volumes with the same history; one reads its previous manifest through a window of 8 chunks.
      const first = await backup(image, 'small-window', 8);
      expect(first.manifestSegments).toBeGreaterThan(10);
      await backup(image, 'whole');
      const again = await backup(image, 'small-window', 8);
      expect(again.chunksNew).toBe(0); // the window slides along: everything in place is found
      const narrow = await backup(moved, 'small-window', 8);
      const wide = await backup(moved, 'whole');
      // With the whole manifest held, only the chunks cut anew around the seams (the start, the joint, the
      // end) are new; with a window of 8 chunks, the moved ones were let go long before the backup reached
      // them, and are stored again. (Cut points depend on the repository's random key: bounds, not counts.)
      expect(wide.chunksNew).toBeLessThanOrEqual(8);
      expect(narrow.chunksNew).toBeGreaterThanOrEqual(wide.chunksNew + 8);
      for (const summary of [narrow, wide]) {
        const out = join(dir, `${summary.backupId}.out`);
        expect(await restoreAndHash(repository, workers, summary.backupId, out)).toBe(
          await sha256File(moved),
        );
      }
    } finally {
      await workers.close();
    }
  });

  it('a restore of a backup whose pack was lost reads the copy that a later backup stored', async () => {
    const { repository, workers, store } = await newTestRepository();
    try {
      const image = join(dir, 'lost.img');
      await writeImage(image, 3 << 20, [{ offset: 0, data: seededBytes('lost', 3 << 20) }]);
      const backup = () => backupImage(repository, workers, image, 'lost', { packTarget: 256 << 10 });
      const old = await backup();
      const ref = await repository.resolveBackup(old.backupId);
      const entries = [...(await repository.loadManifestEntries(ref))];
      const victim = entries.find((e) => e.kind === 'chunk');
      if (victim?.kind !== 'chunk') throw new Error('no data chunk');
      await store.delete(packObjectKey(victim.location.pack));
      // The restore of the old backup fails, naming the lost pack: no other copy exists yet.
      const out = join(dir, 'lost.out');
      await expect(
        restoreBackup({ repository, workers, backup: ref, targetPath: out }),
      ).rejects.toMatchObject({ kind: 'not-found', key: packObjectKey(victim.location.pack) });
      // A verify records the damage; the next backup stores those chunks again, in new packs.
      const report = await verifyBackup({ repository, workers, backup: ref });
      expect(report.missingChunks.length).toBeGreaterThan(0);
      const healing = await backup();
      expect(healing.chunksRepaired).toBe(report.missingChunks.length);
      // The old manifest still names the lost pack; the restore finds the new copies through the index.
      const restored = await restoreBackup({ repository, workers, backup: ref, targetPath: out });
      expect(restored.chunksFromCopies).toBe(report.missingChunks.length);
      expect(await sha256File(out)).toBe(await sha256File(image));
    } finally {
      await workers.close();
    }
  });

  it('a location the index names in a pack that is gone is not taken: a clone stores those chunks again', async () => {
    const { repository, workers, store } = await newTestRepository();
    try {
      const image = join(dir, 'gone.img');
      await writeImage(image, 3 << 20, [{ offset: 0, data: seededBytes('gone', 3 << 20) }]);
      const backup = (volumeName: string) =>
        backupImage(repository, workers, image, volumeName, { packTarget: 256 << 10 });
      const first = await backup('original');
      const entries = [
        ...(await repository.loadManifestEntries(await repository.resolveBackup(first.backupId))),
      ];
      const victim = entries.find((e) => e.kind === 'chunk');
      if (victim?.kind !== 'chunk') throw new Error('no data chunk');
      const lost = Buffer.from(victim.location.pack).toString('hex');
      const inLost = entries.filter(
        (e) => e.kind === 'chunk' && Buffer.from(e.location.pack).toString('hex') === lost,
      ).length;
      // Lost behind Stowage's back: no verify has run, so no damage record says so; the index still names it.
      await store.delete(packObjectKey(victim.location.pack));
      const clone = await backup('clone');
      expect(clone.index?.chunks).toBe(first.chunksNew);
      expect(clone.chunksNew).toBe(inLost);
      const out = join(dir, 'gone.out');
      expect(await restoreAndHash(repository, workers, clone.backupId, out)).toBe(await sha256File(image));
    } finally {
      await workers.close();
    }
  });

  it('reads the index newest first into a bounded map, and says when it had to leave chunks out', async () => {
    const { repository, workers } = await newTestRepository();
    try {
      const image = join(dir, 'bounded.img');
      await writeImage(image, 2 << 20, [{ offset: 0, data: seededBytes('bounded', 2 << 20) }]);
      const first = await backupImage(repository, workers, image, 'bounded-a', { packsPerIndex: 1 });
      expect(first.indexObjects).toBeGreaterThan(0);
      const whole = await loadRepositoryIndex(repository, {});
      expect(whole.load).toEqual({
        objects: first.indexObjects,
        chunks: first.chunksNew,
        unreadable: 0,
        truncated: false,
      });
      const bounded = await loadRepositoryIndex(repository, {}, {}, 5);
      expect(bounded.load.truncated).toBe(true);
      expect(bounded.load.chunks).toBe(5);
    } finally {
      await workers.close();
    }
  });
});
