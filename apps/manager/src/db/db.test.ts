import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { describeOnDatabases, describeOnPostgres } from '../testing/databases.js';
import { insertBackup, listBackups, runningBackupOf } from './backups.js';
import type { Db } from './conn.js';
import { uniqueViolation } from './conn.js';
import { openDatabase } from './database.js';
import { insertHost } from './hosts.js';
import { migrate, readMigrations } from './migrate.js';
import { decodeCursor, toPage } from './pagination.js';
import { getTarget, insertTarget, targetUsage } from './targets.js';
import { findActiveToken, insertToken, revokeToken } from './tokens.js';
import { getVolume, insertVolume, listVolumes } from './volumes.js';

async function seedTarget(db: Db) {
  return insertTarget(db, {
    id: randomUUID(),
    name: `t-${randomUUID().slice(0, 8)}`,
    kind: 'filesystem',
    path: '/srv/backups',
    target_key: new Uint8Array(60),
    repository_id: randomUUID(),
    chunker: JSON.stringify({ min_size: 262144, avg_size: 1048576, max_size: 4194304 }),
  });
}

async function seedVolume(db: Db, targetId: string, createdAt = new Date()) {
  const host = await insertHost(db, {
    id: randomUUID(),
    name: `h-${randomUUID().slice(0, 8)}`,
    url: 'http://127.0.0.1:1',
    agentToken: new Uint8Array(40),
    backends: [],
    now: new Date(),
  });
  return insertVolume(db, {
    id: randomUUID(),
    name: 'vol',
    host_id: host.id,
    backend: 'local-file',
    locator: `/images/${randomUUID()}.img`,
    size: 1 << 20,
    state: 'available',
    backup_target_id: targetId,
    created_at: createdAt,
    updated_at: createdAt,
  });
}

describe('migrations', () => {
  it('are named NNNN_verb_noun.sql and numbered once each', () => {
    const migrations = readMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    expect(migrations[0]!.name).toBe('0001_create_inventory.sql');
  });
});

describeOnDatabases('repository layer', (subject) => {
  it('applies migrations once: a second run finds nothing to do', async () => {
    const report = await migrate(subject().database);
    expect(report.applied).toEqual([]);
    expect(report.alreadyApplied).toBe(readMigrations().length);
  });

  it('refuses a recorded migration whose file changed', async () => {
    const migrations = readMigrations().map((m, i) => (i === 0 ? { ...m, sha256: 'f'.repeat(64) } : m));
    await expect(migrate(subject().database, migrations)).rejects.toThrow(/changed after it was applied/);
  });

  it('returns bigint columns as numbers and bytea as bytes', async () => {
    const { db } = subject().database;
    const target = await seedTarget(db);
    const volume = await seedVolume(db, target.id);
    await insertBackup(db, {
      id: randomUUID(),
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'completed',
      manifest_key: 'manifests/a/b',
      size: 2 ** 40,
      bytes_uploaded: 12345,
    });
    const row = await getTarget(db, target.id);
    expect(targetUsage(row!)).toEqual({ backups: 1, logical_bytes: 2 ** 40, stored_bytes: 12345 });
    expect(target.target_key).toBeInstanceOf(Uint8Array);
    expect(target.chunker).toEqual({ min_size: 262144, avg_size: 1048576, max_size: 4194304 });
  });

  it('keeps each target’s usage in step with its completed backups', async () => {
    const { db } = subject().database;
    const target = await seedTarget(db);
    const volume = await seedVolume(db, target.id);
    const usage = async () => targetUsage((await getTarget(db, target.id))!);
    const id = randomUUID();
    await insertBackup(db, {
      id,
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'running',
      manifest_key: 'k',
    });
    expect(await usage()).toEqual({ backups: 0, logical_bytes: 0, stored_bytes: 0 });
    await db
      .updateTable('backup')
      .set({ state: 'completed', size: 100, bytes_uploaded: 40 })
      .where('id', '=', id)
      .execute();
    expect(await usage()).toEqual({ backups: 1, logical_bytes: 100, stored_bytes: 40 });
    await db.updateTable('backup').set({ size: 150 }).where('id', '=', id).execute();
    expect(await usage()).toEqual({ backups: 1, logical_bytes: 150, stored_bytes: 40 });
    const other = randomUUID();
    await insertBackup(db, {
      id: other,
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'completed',
      manifest_key: 'k',
      size: 10,
      bytes_uploaded: 1,
    });
    expect(await usage()).toEqual({ backups: 2, logical_bytes: 160, stored_bytes: 41 });
    await db.updateTable('backup').set({ state: 'failed' }).where('id', '=', other).execute();
    await db.deleteFrom('backup').where('id', '=', id).execute();
    expect(await usage()).toEqual({ backups: 0, logical_bytes: 0, stored_bytes: 0 });
  });

  it('allows one running backup per volume', async () => {
    const { db } = subject().database;
    const target = await seedTarget(db);
    const volume = await seedVolume(db, target.id);
    const running = {
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'running' as const,
      manifest_key: 'manifests/x/y',
    };
    await insertBackup(db, { id: randomUUID(), ...running });
    const second = insertBackup(db, { id: randomUUID(), ...running });
    const error = await second.catch((e: unknown) => e);
    expect(uniqueViolation(error)).toBe('backup_one_running');
    expect((await runningBackupOf(db, volume.id))?.state).toBe('running');
    // A finished one does not count.
    await insertBackup(db, { id: randomUUID(), ...running, state: 'failed' });
  });

  it('pages newest first with a cursor that neither repeats nor skips', async () => {
    const { db } = subject().database;
    const target = await seedTarget(db);
    const base = Date.parse('2026-01-01T00:00:00Z');
    const ids: string[] = [];
    // Two rows share each timestamp: the id breaks the tie.
    for (let i = 0; i < 7; i++)
      ids.push((await seedVolume(db, target.id, new Date(base + Math.floor(i / 2) * 1000))).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const rows = await listVolumes(db, { targetId: target.id }, { limit: 3, cursor: decodeCursor(cursor) });
      const page = toPage(
        rows,
        3,
        (r) => ({ at: r.created_at, id: r.id }),
        (r) => r.id,
      );
      seen.push(...page.items);
      if (page.next_cursor === null) break;
      cursor = page.next_cursor;
    }
    expect(seen).toHaveLength(7);
    expect(new Set(seen)).toEqual(new Set(ids));
    expect(() => decodeCursor('not-a-cursor')).toThrow(/cursor/);
  });

  it('finds volumes by a part of their name, any case, with LIKE wildcards taken literally', async () => {
    const { db } = subject().database;
    const target = await seedTarget(db);
    const named = async (name: string) => {
      const volume = await seedVolume(db, target.id);
      await db.updateTable('volume').set({ name }).where('id', '=', volume.id).execute();
    };
    for (const name of ['web-Data', 'db-data', 'web_logs', 'webxlogs', '100%-full']) await named(name);
    const names = async (text: string) =>
      (await listVolumes(db, { nameContains: text }, { limit: 10 })).map((v) => v.name).sort();
    expect(await names('DATA')).toEqual(['db-data', 'web-Data']);
    expect(await names('web_')).toEqual(['web_logs']);
    expect(await names('%')).toEqual(['100%-full']);
    expect(await names('nothing')).toEqual([]);
  });

  it('shows a volume its newest completed backup', async () => {
    const { db } = subject().database;
    const target = await seedTarget(db);
    const volume = await seedVolume(db, target.id);
    const older = new Date('2026-01-01T00:00:00Z');
    const newer = new Date('2026-01-02T00:00:00Z');
    const b1 = randomUUID();
    await insertBackup(db, {
      id: b1,
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'completed',
      manifest_key: 'k',
      started_at: newer,
      finished_at: newer,
    });
    await insertBackup(db, {
      id: randomUUID(),
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'completed',
      manifest_key: 'k',
      started_at: older,
      finished_at: older,
    });
    await insertBackup(db, {
      id: randomUUID(),
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'failed',
      manifest_key: 'k',
      started_at: new Date('2026-01-03T00:00:00Z'),
    });
    const row = await getVolume(db, volume.id);
    expect(row?.last_backup_id).toBe(b1);
    expect(row?.last_backup_at?.toISOString()).toBe(newer.toISOString());
    expect(await listBackups(db, { volumeId: volume.id, state: 'completed' }, { limit: 10 })).toHaveLength(2);
  });

  it('finds a token by its hash until it is revoked', async () => {
    const { db } = subject().database;
    const hash = new Uint8Array(32).fill(7);
    const token = await insertToken(db, { id: randomUUID(), name: 'ci', role: 'admin', hostId: null, hash });
    expect((await findActiveToken(db, hash))?.id).toBe(token.id);
    await revokeToken(db, token.id, new Date());
    expect(await findActiveToken(db, hash)).toBeUndefined();
  });
});

describeOnPostgres('concurrency', (subject) => {
  it('serialises concurrent migrations and backup starts across connections ', async () => {
    const { url } = subject();
    // A fresh database, migrated by four pools at once: each file applied once, none failing.
    const fresh = `${url!.slice(0, url!.lastIndexOf('/'))}/postgres`;
    const admin = await openDatabase({ url: fresh });
    const name = `race_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    await sql.raw(`CREATE DATABASE ${name}`).execute(admin.db);
    await admin.close();
    const raceUrl = `${url!.slice(0, url!.lastIndexOf('/'))}/${name}`;
    const pools = await Promise.all([1, 2, 3, 4].map(() => openDatabase({ url: raceUrl })));
    try {
      const reports = await Promise.all(pools.map((p) => migrate(p)));
      const applied = reports.flatMap((r) => r.applied);
      expect(applied.sort()).toEqual(readMigrations().map((m) => m.name));
      // Ten concurrent starts of a backup of one volume: exactly one wins.
      const db = pools[0]!.db;
      const target = await seedTarget(db);
      const volume = await seedVolume(db, target.id);
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          insertBackup(pools[i % 4]!.db, {
            id: randomUUID(),
            volume_id: volume.id,
            backup_target_id: target.id,
            state: 'running',
            manifest_key: 'k',
          }),
        ),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected') expect(uniqueViolation(r.reason)).toBe('backup_one_running');
    } finally {
      await Promise.all(pools.map((p) => p.close()));
    }
  });
});
