import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { NewVolume, VolumeRow, VolumeState, VolumeUpdate } from './schema.js';

/** A volume row with its newest completed backup, as lists and gets show it. */
export interface VolumeWithLastBackup extends VolumeRow {
  last_backup_id: string | null;
  /** When the newest completed backup finished, and when it started (what the scheduler counts from). */
  last_backup_at: Date | null;
  last_success_started_at: Date | null;
  /** The newest backup of any state: its start and state (a running backup is always the newest). */
  last_attempt_at: Date | null;
  last_attempt_state: 'running' | 'completed' | 'failed' | null;
}

export interface VolumeFilter {
  hostId?: string;
  targetId?: string;
  state?: VolumeState;
  /** A substring of the name, matched without regard to case. */
  nameContains?: string;
}

export async function insertVolume(db: Db, volume: NewVolume): Promise<VolumeRow> {
  return db.insertInto('volume').values(volume).returningAll().executeTakeFirstOrThrow();
}

function selectVolumes(db: Db) {
  // The newest completed backup per volume: one index probe (backup_by_volume) per listed row.
  return db
    .selectFrom('volume')
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom('backup')
          .select([
            'backup.id as last_backup_id',
            'backup.finished_at as last_backup_at',
            'backup.started_at as last_success_started_at',
          ])
          .whereRef('backup.volume_id', '=', 'volume.id')
          .where('backup.state', '=', 'completed')
          .orderBy('backup.started_at', 'desc')
          .limit(1)
          .as('last'),
      (join) => join.onTrue(),
    )
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom('backup')
          .select(['backup.started_at as last_attempt_at', 'backup.state as last_attempt_state'])
          .whereRef('backup.volume_id', '=', 'volume.id')
          .orderBy('backup.started_at', 'desc')
          .limit(1)
          .as('attempt'),
      (join) => join.onTrue(),
    )
    .selectAll('volume')
    .select([
      'last.last_backup_id',
      'last.last_backup_at',
      'last.last_success_started_at',
      'attempt.last_attempt_at',
      'attempt.last_attempt_state',
    ]);
}

export async function getVolume(db: Db, id: string): Promise<VolumeWithLastBackup | undefined> {
  return selectVolumes(db).where('volume.id', '=', id).executeTakeFirst();
}

export async function listVolumes(
  db: Db,
  filter: VolumeFilter,
  page: { limit: number; cursor?: PageCursor },
): Promise<VolumeWithLastBackup[]> {
  let query = selectVolumes(db);
  if (filter.hostId !== undefined) query = query.where('volume.host_id', '=', filter.hostId);
  if (filter.targetId !== undefined) query = query.where('volume.backup_target_id', '=', filter.targetId);
  if (filter.state !== undefined) query = query.where('volume.state', '=', filter.state);
  if (filter.nameContains !== undefined) {
    // LIKE's own wildcards in the search are literal characters, not patterns.
    const literal = filter.nameContains.replace(/[\\%_]/g, (c) => `\\${c}`);
    query = query.where('volume.name', 'ilike', `%${literal}%`);
  }
  return newestFirstPage(query, 'volume.created_at', 'volume.id', page).execute();
}

export async function updateVolume(
  db: Db,
  id: string,
  changes: VolumeUpdate,
): Promise<VolumeRow | undefined> {
  return db.updateTable('volume').set(changes).where('id', '=', id).returningAll().executeTakeFirst();
}

export async function deleteVolumeRow(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('volume').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function countBackupsOfVolume(db: Db, id: string): Promise<number> {
  const row = await db
    .selectFrom('backup')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('volume_id', '=', id)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Volumes with a schedule switched on, as the scheduler reads them each minute. */
export async function scheduledVolumes(db: Db): Promise<VolumeWithLastBackup[]> {
  return selectVolumes(db)
    .where('volume.backup_cron', 'is not', null)
    .where('volume.schedule_enabled', '=', true)
    .where('volume.state', '=', 'available')
    .execute();
}
