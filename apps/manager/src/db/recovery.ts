import type { Db } from './conn.js';
import type { NewBackup, NewVolume } from './schema.js';

/**
 * The index rebuild's rows (services/recovery.ts). Every insert is `ON CONFLICT (id) DO NOTHING`: a row the
 * manager already has — a running backup an agent is about to complete, a volume on a host — is never
 * touched, and two rebuilds (or a rebuild and a backup) running at once cannot insert a row twice. The ids
 * come from the bucket (`manifests/<volume-id>/<backup-id>` are the rows' own ids), so the primary keys are
 * the unique index that makes it so.
 */

/** Inserts the volumes that are not there yet; answers the ids it inserted. */
export async function insertMissingVolumes(db: Db, volumes: readonly NewVolume[]): Promise<string[]> {
  if (volumes.length === 0) return [];
  const rows = await db
    .insertInto('volume')
    .values([...volumes])
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Inserts the backups that are not there yet; answers the ids it inserted. */
export async function insertMissingBackups(db: Db, backups: readonly NewBackup[]): Promise<string[]> {
  if (backups.length === 0) return [];
  const rows = await db
    .insertInto('backup')
    .values([...backups])
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Who the existing backup rows of these ids belong to, to tell "already known" from "another's id". */
export async function backupOwners(
  db: Db,
  ids: readonly string[],
): Promise<{ id: string; volume_id: string; backup_target_id: string }[]> {
  if (ids.length === 0) return [];
  return db
    .selectFrom('backup')
    .select(['id', 'volume_id', 'backup_target_id'])
    .where('id', 'in', [...ids])
    .execute();
}

/**
 * Takes back a row the rebuild inserted whose manifest is gone since (a delete that removed the manifest,
 * then its row, around the rebuild's read): only a row as the rebuild wrote it — completed, of no job.
 */
export async function deleteRebuiltBackup(db: Db, id: string, targetId: string): Promise<boolean> {
  const result = await db
    .deleteFrom('backup')
    .where('id', '=', id)
    .where('backup_target_id', '=', targetId)
    .where('state', '=', 'completed')
    .where('job_id', 'is', null)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}
