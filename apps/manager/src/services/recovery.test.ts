import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Repository } from '@stowage/engine';
import { DEFAULT_SEGMENT_ENTRIES, FORMAT_VERSION } from '@stowage/format';
import { type ObjectStore, openObjectStore } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config.js';
import type { BackupTargetRow } from '../db/schema.js';
import { silentLogger } from '../log.js';
import { type RunningManager, startManager } from '../server.js';
import { createTarget, targetKey } from '../targets/targets.js';
import { TEST_KDF } from '../testing/embedded.js';
import { rebuildFromRepository } from './recovery.js';

/**
 * The rebuild's answers to what a serving manager does around it, made to happen at the worst moment: a
 * store that deletes a manifest right after the rebuild read it (a delete or prune between the read and the
 * insert), and rows the database holds under a manifest's ids. On a real manager's PGlite database and a
 * real filesystem repository.
 */

/** The store, except that each listed key in `deleteAfterRead` is deleted as soon as a get has read it. */
function deletingAfterRead(store: ObjectStore, deleteAfterRead: Set<string>): ObjectStore {
  return {
    location: store.location,
    head: (key, options) => store.head(key, options),
    get: async (key, range, options) => {
      const bytes = await store.get(key, range, options);
      if (deleteAfterRead.delete(key)) await store.delete(key);
      return bytes;
    },
    put: (key, body, options) => store.put(key, body, options),
    delete: (key, options) => store.delete(key, options),
    deleteMany: (keys, options) => store.deleteMany(keys, options),
    list: (prefix, options) => store.list(prefix, options),
  };
}

describe('rebuildFromRepository', () => {
  let home: string;
  let manager: RunningManager;
  let target: BackupTargetRow;
  let store: ObjectStore;
  let repository: Repository;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'stowage-rebuild-'));
    manager = await startManager(parseConfig({ STOWAGE_HOME: home, PORT: '0' }), {
      logger: silentLogger,
      kdf: TEST_KDF,
    });
    const created = await createTarget(manager.ctx, {
      name: 'races',
      location: { kind: 'filesystem', path: join(home, 'repo') },
      credentials: undefined,
      passphrase: 'races passphrase',
      avgChunkSize: undefined,
      settings: {},
    });
    target = created.row;
    store = openObjectStore(`file://${join(home, 'repo')}`);
    repository = await Repository.openWithKey(store, targetKey(manager.ctx, target));
  }, 60_000);
  afterAll(async () => {
    await manager?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  async function writeRoots(count: number): Promise<{ volumeId: string; backupId: string; key: string }[]> {
    const volumeId = randomUUID();
    const roots = [];
    for (let i = 0; i < count; i++) {
      const backupId = randomUUID();
      const root = repository.encodeManifest({
        version: FORMAT_VERSION,
        backupId,
        volumeId,
        volumeName: 'races',
        volumeSize: 4096,
        createdAt: new Date(),
        chunker: repository.config.chunker,
        entryCount: 1,
        chunkCount: 0,
        chunkBytes: 0,
        holeBytes: 4096,
        segmentEntries: DEFAULT_SEGMENT_ENTRIES,
        segments: randomBytes(32),
      });
      const key = `manifests/${volumeId}/${backupId}`;
      await store.put(key, root);
      roots.push({ volumeId, backupId, key });
    }
    return roots;
  }

  const backupRow = (id: string) =>
    manager.ctx.db.selectFrom('backup').selectAll().where('id', '=', id).executeTakeFirst();

  it('takes back the row of a manifest deleted between its read and its insert', async () => {
    const roots = await writeRoots(3);
    const doomed = roots[1]!;
    const racing = await Repository.openWithKey(
      deletingAfterRead(store, new Set([doomed.key])),
      targetKey(manager.ctx, target),
    );
    const result = await rebuildFromRepository(manager.ctx, target, racing, {
      limit: 100,
      volumeBackend: 'local-file',
    });
    expect(await store.head(doomed.key)).toBeUndefined();
    expect(result).toMatchObject({ manifests: 3, inserted: 2, vanished: 1, damaged: 0, problems: [] });
    expect(await backupRow(doomed.backupId)).toBeUndefined();
    expect(await backupRow(roots[0]!.backupId)).toMatchObject({ state: 'completed', job_id: null });
    expect(await backupRow(roots[2]!.backupId)).toMatchObject({ state: 'completed', job_id: null });
  });

  it('leaves a running backup’s row as it is, and reports a row of another volume under a manifest’s id', async () => {
    const [running, foreign] = await writeRoots(2);
    const { db } = manager.ctx;
    // A backup the manager is running: its row exists (running, its job's), its manifest has just committed.
    const volume = randomUUID();
    await db
      .insertInto('volume')
      .values({ id: running!.volumeId, name: 'live', backend: 'local-file', size: 4096, state: 'available' })
      .execute();
    await db
      .insertInto('volume')
      .values({ id: volume, name: 'other', backend: 'local-file', size: 1, state: 'available' })
      .execute();
    await db
      .insertInto('backup')
      .values([
        {
          id: running!.backupId,
          volume_id: running!.volumeId,
          backup_target_id: target.id,
          state: 'running',
          manifest_key: running!.key,
        },
        {
          id: foreign!.backupId,
          volume_id: volume,
          backup_target_id: target.id,
          state: 'completed',
          manifest_key: `manifests/${volume}/${foreign!.backupId}`,
          size: 1,
        },
      ])
      .execute();
    const result = await rebuildFromRepository(manager.ctx, target, repository, {
      limit: 100,
      volumeBackend: 'local-file',
    });
    expect(result).toMatchObject({ inserted: 0, conflicts: 1 });
    expect(result.problems).toEqual([
      {
        manifest_key: foreign!.key,
        kind: 'conflict',
        message: expect.stringMatching(`is already recorded for volume ${volume}`),
      },
    ]);
    expect(await backupRow(running!.backupId)).toMatchObject({ state: 'running', size: null });
    expect(await backupRow(foreign!.backupId)).toMatchObject({ volume_id: volume, size: 1 });
    const live = await db
      .selectFrom('volume')
      .selectAll()
      .where('id', '=', running!.volumeId)
      .executeTakeFirst();
    expect(live).toMatchObject({ state: 'available', name: 'live' });
  });
});
