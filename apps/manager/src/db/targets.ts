import type { Insertable, Updateable } from 'kysely';
import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { BackupTargetRow, BackupTargetTable } from './schema.js';

export interface TargetUsage {
  readonly backups: number;
  readonly logical_bytes: number;
  readonly stored_bytes: number;
}

export async function insertTarget(db: Db, target: Insertable<BackupTargetTable>): Promise<BackupTargetRow> {
  return db.insertInto('backup_target').values(target).returningAll().executeTakeFirstOrThrow();
}

export async function getTarget(db: Db, id: string): Promise<BackupTargetRow | undefined> {
  return db.selectFrom('backup_target').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listTargets(
  db: Db,
  page: { limit: number; cursor?: PageCursor },
): Promise<BackupTargetRow[]> {
  const query = db.selectFrom('backup_target').selectAll();
  return newestFirstPage(query, 'created_at', 'id', page).execute();
}

export async function updateTarget(
  db: Db,
  id: string,
  changes: Updateable<BackupTargetTable>,
): Promise<BackupTargetRow | undefined> {
  return db.updateTable('backup_target').set(changes).where('id', '=', id).returningAll().executeTakeFirst();
}

/** What a target's completed backups hold (logical: the volumes' sizes) and uploaded (stored: so dedup is the
 * gap), from the totals a trigger keeps on the row. */
export function targetUsage(row: BackupTargetRow): TargetUsage {
  return {
    backups: row.usage_backups,
    logical_bytes: row.usage_logical_bytes,
    stored_bytes: row.usage_stored_bytes,
  };
}

/** What still uses a target: volumes pointed at it and backups stored in it. */
export async function targetUsers(db: Db, id: string): Promise<{ volumes: number; backups: number }> {
  const volumes = await db
    .selectFrom('volume')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('backup_target_id', '=', id)
    .executeTakeFirstOrThrow();
  const backups = await db
    .selectFrom('backup')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('backup_target_id', '=', id)
    .executeTakeFirstOrThrow();
  return { volumes: Number(volumes.n), backups: Number(backups.n) };
}

export async function deleteTarget(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('backup_target').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}
