import { sql } from 'kysely';
import type { Db } from './conn.js';
import type { BackupLeaseRow } from './schema-gc.js';

// A backup's lease on its target (migration 0002, docs/operations.md#gc): what keeps a sweep from deleting
// what a running backup may still name.

/** How long an agent may take to write a root once let (CommitGrant.valid_for_ms). */
export const COMMIT_VALID_MS = 60_000;
/**
 * Past the validity, how long a root whose write the agent aborted may still land (the S3 server finishing
 * a request whose body it already had). The lease holds the sweep off until then.
 */
export const COMMIT_MARGIN_MS = 120_000;

/**
 * Takes a lease for a backup job, unless the target is being swept: then answers false and the job waits
 * queued. The target's row is read FOR SHARE, so a sweep that marks it (an UPDATE) waits for this
 * transaction, and sees this lease, or this transaction sees the sweep's mark.
 */
export async function acquireLease(
  trx: Db,
  lease: { jobId: string; targetId: string; now: Date },
): Promise<boolean> {
  const target = await trx
    .selectFrom('backup_target')
    .select('gc_sweeping_run')
    .where('id', '=', lease.targetId)
    .forShare()
    .executeTakeFirst();
  if (!target || target.gc_sweeping_run !== null) return false;
  await trx
    .insertInto('backup_lease')
    .values({ job_id: lease.jobId, backup_target_id: lease.targetId, acquired_at: lease.now })
    .onConflict((oc) => oc.column('job_id').doNothing())
    .execute();
  return true;
}

/**
 * Lets a job commit: only while its lease holds (not released: the job has not ended, and the reconciler has
 * not given up on it). Each grant pushes the hold further; undefined when there is no lease to grant on.
 */
export async function grantCommit(db: Db, jobId: string, now: Date): Promise<BackupLeaseRow | undefined> {
  const holdUntil = new Date(now.getTime() + COMMIT_VALID_MS + COMMIT_MARGIN_MS);
  return db
    .updateTable('backup_lease')
    .set({ commit_granted_at: now, commit_hold_until: holdUntil })
    .where('job_id', '=', jobId)
    .where('released_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Ends a job's lease. A job that succeeded wrote its root, so nothing of it can land later: its hold ends too.
 * Any other end keeps a granted commit's hold, since an aborted write may still land until then.
 */
export async function releaseLease(db: Db, jobId: string, now: Date, succeeded: boolean): Promise<void> {
  await db
    .updateTable('backup_lease')
    .set(
      succeeded
        ? { released_at: now, commit_hold_until: sql<Date>`least(commit_hold_until, ${now})` }
        : { released_at: now },
    )
    .where('job_id', '=', jobId)
    .where('released_at', 'is', null)
    .execute();
}

/** Leases that hold a target now: unreleased, or released with a commit whose write may still land. */
export async function holdingLeases(db: Db, targetId: string, now: Date): Promise<BackupLeaseRow[]> {
  return db
    .selectFrom('backup_lease')
    .selectAll()
    .where('backup_target_id', '=', targetId)
    .where((eb) => eb.or([eb('released_at', 'is', null), eb('commit_hold_until', '>', now)]))
    .orderBy('acquired_at')
    .execute();
}

export async function getLease(db: Db, jobId: string): Promise<BackupLeaseRow | undefined> {
  return db.selectFrom('backup_lease').selectAll().where('job_id', '=', jobId).executeTakeFirst();
}
