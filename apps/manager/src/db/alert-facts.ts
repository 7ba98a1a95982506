import { sql } from 'kysely';
import type { Db } from './conn.js';
import type { TargetHealthRow } from './schema-alerts.js';

// What the alerts loop reads each tick to decide which conditions hold (loops/alert-rules.ts). Each query is
// one index probe per volume, target or host, never a scan of every backup.

/** Volumes (not archived or being deleted) whose newest finished backup, cancelled ones aside, failed. */
export async function volumesWithFailedLastBackup(db: Db) {
  return db
    .selectFrom('volume')
    .innerJoinLateral(
      (eb) =>
        eb
          .selectFrom('backup')
          .select([
            'backup.id as backup_id',
            'backup.state as backup_state',
            'backup.error as backup_error',
            'backup.started_at as backup_started_at',
            'backup.job_id as job_id',
            'backup.backup_target_id as backup_target_id',
          ])
          .whereRef('backup.volume_id', '=', 'volume.id')
          .where('backup.state', '<>', 'running')
          // Cancelled by someone: neither a success nor a failure, so the backup before it decides.
          .where(sql<string>`coalesce(backup.error->>'code', '')`, '<>', 'cancelled')
          .orderBy('backup.started_at', 'desc')
          .limit(1)
          .as('last'),
      (join) => join.onTrue(),
    )
    .select([
      'volume.id as volume_id',
      'volume.name',
      'volume.host_id',
      'last.backup_id',
      'last.backup_error',
      'last.backup_started_at',
      'last.job_id',
      'last.backup_target_id',
    ])
    .where('last.backup_state', '=', 'failed')
    .where('volume.state', 'not in', ['archived', 'deleting'])
    .execute();
}

/** Targets whose newest finished GC run failed. */
export async function targetsWithFailedLastGc(db: Db) {
  return db
    .selectFrom('backup_target as t')
    .innerJoinLateral(
      (eb) =>
        eb
          .selectFrom('backup_gc_run as r')
          .select(['r.id as run_id', 'r.state', 'r.error', 'r.started_at'])
          .whereRef('r.backup_target_id', '=', 't.id')
          .where('r.state', '<>', 'running')
          .orderBy('r.started_at', 'desc')
          .limit(1)
          .as('last'),
      (join) => join.onTrue(),
    )
    .select(['t.id as target_id', 't.name', 'last.run_id', 'last.error', 'last.started_at'])
    .where('last.state', '=', 'failed')
    .execute();
}

/** Completed backups found damaged or whose last verify could not check them (at most `limit`). */
export async function backupsWithVerifyProblems(db: Db, limit: number) {
  return db
    .selectFrom('backup as b')
    .innerJoin('volume as v', 'v.id', 'b.volume_id')
    .select([
      'b.id as backup_id',
      'b.volume_id',
      'b.backup_target_id',
      'b.verify_state',
      'b.damaged_chunks',
      'b.verify_error',
      'b.verify_job_id',
      'v.name as volume_name',
      'v.host_id',
    ])
    .where('b.state', '=', 'completed')
    .where((eb) => eb.or([eb('b.verify_state', '=', 'damaged'), eb('b.verify_error', 'is not', null)]))
    .orderBy('b.started_at', 'desc')
    .limit(limit)
    .execute();
}

/** Every target with what its last probe found (no health row: never probed). */
export async function targetsWithHealth(db: Db) {
  return db
    .selectFrom('backup_target as t')
    .leftJoin('target_health as h', 'h.backup_target_id', 't.id')
    .select([
      't.id',
      't.name',
      'h.checked_at',
      'h.ok',
      'h.failures',
      'h.failing_since',
      'h.error',
      'h.claimed_at',
    ])
    .execute();
}

/**
 * Claims the probe of a target last claimed at or before `staleBefore`: true for the one replica whose
 * statement took it.
 */
export async function claimTargetProbe(db: Db, targetId: string, now: Date, staleBefore: Date) {
  const row = await db
    .insertInto('target_health')
    .values({ backup_target_id: targetId, claimed_at: now })
    .onConflict((oc) =>
      oc
        .column('backup_target_id')
        .doUpdateSet({ claimed_at: now })
        .where('target_health.claimed_at', '<=', staleBefore),
    )
    .returning('backup_target_id')
    .executeTakeFirst();
  return row !== undefined;
}

/** Records a probe's outcome: a success clears the failures, a failure counts one more. */
export async function recordTargetProbe(
  db: Db,
  targetId: string,
  outcome: { at: Date; error: string | null },
): Promise<TargetHealthRow | undefined> {
  const ok = outcome.error === null;
  return db
    .updateTable('target_health')
    .set((eb) =>
      ok
        ? { checked_at: outcome.at, ok: true, failures: 0, failing_since: null, error: null }
        : {
            checked_at: outcome.at,
            ok: false,
            failures: eb('failures', '+', 1),
            failing_since: sql<Date>`coalesce(failing_since, ${outcome.at})`,
            error: outcome.error,
          },
    )
    .where('backup_target_id', '=', targetId)
    .returningAll()
    .executeTakeFirst();
}

/** Hosts not heard from (nor tried) since `before`: the loop calls their agents to learn whether they are up. */
export async function hostsToHeartbeat(db: Db, before: Date) {
  return db
    .selectFrom('host')
    .selectAll()
    .where((eb) =>
      eb(
        sql<Date>`greatest(coalesce(${eb.ref('last_contact_at')}, ${eb.ref('created_at')}), ${eb.ref('updated_at')})`,
        '<',
        before,
      ),
    )
    .execute();
}
