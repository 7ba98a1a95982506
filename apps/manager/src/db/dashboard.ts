import { sql } from 'kysely';
import type { Db } from './conn.js';

type TargetKind = 's3' | 'filesystem';

/**
 * The dashboard's aggregates. Each is one query whose cost follows the number of volumes or targets, never
 * the number of backups: per live volume two probes of backup_by_volume / backup_last_completed, the last 24 h
 * through backup_list (started_at), usage from backup_target's counters (kept by a trigger), and the chunk
 * counts behind the dedup estimate from a target's newest DEDUP_SAMPLE completed backups (backup_by_target).
 */

export async function hostCounts(db: Db): Promise<Record<'up' | 'down' | 'unknown', number>> {
  const rows = await db
    .selectFrom('host')
    .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
    .groupBy('status')
    .execute();
  const counts = { up: 0, down: 0, unknown: 0 };
  for (const row of rows) counts[row.status] = Number(row.n);
  return counts;
}

/** A live volume (not archived or being deleted) with what its class is decided from. */
export interface LiveVolumeRow {
  id: string;
  state: string;
  backup_cron: string | null;
  timezone: string;
  schedule_enabled: boolean;
  schedule_since: Date;
  /** Start of its newest completed backup, and its newest backup of any state. */
  last_success_started_at: Date | null;
  last_attempt_at: Date | null;
  last_attempt_state: 'running' | 'completed' | 'failed' | null;
}

/** Every live volume in one query: two index probes each (backup_last_completed, backup_by_volume). */
export async function liveVolumes(db: Db): Promise<LiveVolumeRow[]> {
  const result = await sql<LiveVolumeRow>`
    SELECT v.id, v.state, v.backup_cron, v.timezone, v.schedule_enabled, v.schedule_since,
      (SELECT b.started_at FROM backup b WHERE b.volume_id = v.id AND b.state = 'completed'
        ORDER BY b.started_at DESC LIMIT 1) AS last_success_started_at,
      a.started_at AS last_attempt_at, a.state AS last_attempt_state
    FROM volume v
    LEFT JOIN LATERAL (
      SELECT b.started_at, b.state FROM backup b WHERE b.volume_id = v.id ORDER BY b.started_at DESC LIMIT 1
    ) a ON true
    WHERE v.state NOT IN ('archived', 'deleting')`.execute(db);
  return result.rows.map((row) => ({
    ...row,
    schedule_since: new Date(row.schedule_since),
    last_success_started_at:
      row.last_success_started_at === null ? null : new Date(row.last_success_started_at),
    last_attempt_at: row.last_attempt_at === null ? null : new Date(row.last_attempt_at),
  }));
}

export interface RecentBackups {
  completed: number;
  failed: number;
  running: number;
  logical_bytes: number;
  uploaded_bytes: number;
}

export async function backupsSince(db: Db, since: Date): Promise<RecentBackups> {
  const row = await db
    .selectFrom('backup')
    .where('started_at', '>=', since)
    .select([
      sql<string>`count(*) FILTER (WHERE state = 'completed')`.as('completed'),
      sql<string>`count(*) FILTER (WHERE state = 'failed')`.as('failed'),
      sql<string>`count(*) FILTER (WHERE state = 'running')`.as('running'),
      sql<string>`coalesce(sum(size) FILTER (WHERE state = 'completed'), 0)`.as('logical_bytes'),
      sql<string>`coalesce(sum(bytes_uploaded) FILTER (WHERE state = 'completed'), 0)`.as('uploaded_bytes'),
    ])
    .executeTakeFirstOrThrow();
  return {
    completed: Number(row.completed),
    failed: Number(row.failed),
    running: Number(row.running),
    logical_bytes: Number(row.logical_bytes),
    uploaded_bytes: Number(row.uploaded_bytes),
  };
}

export async function unfinishedJobCounts(db: Db): Promise<{ queued: number; running: number }> {
  // job_unfinished is a partial index on exactly these states.
  const rows = await db
    .selectFrom('job')
    .where('state', 'in', ['queued', 'running'])
    .select(['state', (eb) => eb.fn.countAll<string>().as('n')])
    .groupBy('state')
    .execute();
  const counts = { queued: 0, running: 0 };
  for (const row of rows) counts[row.state as 'queued' | 'running'] = Number(row.n);
  return counts;
}

export interface TargetUsageRow {
  id: string;
  name: string;
  kind: TargetKind;
  backups: number;
  logical_bytes: number;
  stored_bytes: number;
  chunks: number;
  chunks_new: number;
}

/** How many of a target's newest completed backups the dedup estimate reads: a bounded index range, so the
 * dashboard costs the same at 100,000 backups as at 1,000. */
export const DEDUP_SAMPLE = 1000;

export async function targetUsageRows(db: Db): Promise<TargetUsageRow[]> {
  const rows = await db
    .selectFrom('backup_target as t')
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom((inner) =>
            inner
              .selectFrom('backup as b')
              .whereRef('b.backup_target_id', '=', 't.id')
              .where('b.state', '=', 'completed')
              .orderBy('b.started_at', 'desc')
              .limit(DEDUP_SAMPLE)
              .select(['b.chunks', 'b.chunks_new'])
              .as('recent'),
          )
          .select([
            sql<string>`coalesce(sum(recent.chunks), 0)`.as('chunks'),
            sql<string>`coalesce(sum(recent.chunks_new), 0)`.as('chunks_new'),
          ])
          .as('c'),
      (join) => join.onTrue(),
    )
    .select([
      't.id',
      't.name',
      't.kind',
      't.usage_backups',
      't.usage_logical_bytes',
      't.usage_stored_bytes',
      'c.chunks',
      'c.chunks_new',
    ])
    .orderBy('t.name')
    .execute();
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    kind: row.kind,
    backups: Number(row.usage_backups),
    logical_bytes: Number(row.usage_logical_bytes),
    stored_bytes: Number(row.usage_stored_bytes),
    chunks: Number(row.chunks ?? 0),
    chunks_new: Number(row.chunks_new ?? 0),
  }));
}

/**
 * Open alerts: rows of the alerts loop's `alert` table (0005_add_alerts.sql) not yet resolved. The partial
 * unique index alert_one_open covers exactly those rows. alerts: if db/alerts.ts grows a count of its own,
 * call it here.
 */
export async function openAlertCount(db: Db): Promise<number> {
  const row = await db
    .selectFrom('alert')
    .where('resolved_at', 'is', null)
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
