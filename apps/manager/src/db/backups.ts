import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { BackupRow, BackupState, NewBackup } from './schema.js';

export interface BackupFilter {
  volumeId?: string;
  targetId?: string;
  state?: BackupState;
  /** The verification state as the API shows it: `unverified` is a null `verify_state`. */
  verifyState?: 'unverified' | 'ok' | 'damaged' | undefined;
}

export async function insertBackup(db: Db, backup: NewBackup): Promise<BackupRow> {
  return db.insertInto('backup').values(backup).returningAll().executeTakeFirstOrThrow();
}

export async function getBackup(db: Db, id: string): Promise<BackupRow | undefined> {
  return db.selectFrom('backup').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The running backup of a volume, if any (there is at most one: backup_one_running). */
export async function runningBackupOf(db: Db, volumeId: string): Promise<BackupRow | undefined> {
  return db
    .selectFrom('backup')
    .selectAll()
    .where('volume_id', '=', volumeId)
    .where('state', '=', 'running')
    .executeTakeFirst();
}

export async function listBackups(
  db: Db,
  filter: BackupFilter,
  page: { limit: number; cursor?: PageCursor },
): Promise<BackupRow[]> {
  let query = db.selectFrom('backup').selectAll();
  if (filter.volumeId !== undefined) query = query.where('volume_id', '=', filter.volumeId);
  if (filter.targetId !== undefined) query = query.where('backup_target_id', '=', filter.targetId);
  if (filter.state !== undefined) query = query.where('state', '=', filter.state);
  if (filter.verifyState === 'unverified') query = query.where('verify_state', 'is', null);
  else if (filter.verifyState !== undefined) query = query.where('verify_state', '=', filter.verifyState);
  return newestFirstPage(query, 'started_at', 'id', page).execute();
}

export async function deleteBackupRow(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('backup').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}
