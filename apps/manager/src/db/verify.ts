import type { DamagedBackup } from '@stowage/api';
import { sql } from 'kysely';
import type { Db } from './conn.js';
import type { JobRow } from './schema.js';

/** The running (or queued) verify of a backup, if any: there is at most one (job_one_verify). */
export async function runningVerifyOf(db: Db, backupId: string): Promise<JobRow | undefined> {
  return db
    .selectFrom('job')
    .selectAll()
    .where('kind', '=', 'verify')
    .where('backup_id', '=', backupId)
    .where('state', 'in', ['queued', 'running'])
    .executeTakeFirst();
}

/** What the verify schedule knows of one completed backup of a target with a verify schedule. */
export interface VerifyCandidateRow {
  backup_id: string;
  backup_target_id: string;
  host_id: string | null;
  finished_at: Date | null;
  started_at: Date;
  verified_at: Date | null;
  verify_started_at: Date | null;
  verify_every_days: number;
  verify_sample_percent: number;
}

/**
 * Completed backups of targets with a verify schedule whose last verify (or, never verified, whose end) is
 * older than the target's period as of `now`, oldest first, at most `limit` per target: the pure plan decides
 * among them. One query per scheduled target, each an ordered scan of `backup_verify_due` (a completed
 * backup always has `finished_at`), so the cost follows what is due, not how many backups there are.
 */
export async function verifyCandidates(db: Db, now: Date, limit: number): Promise<VerifyCandidateRow[]> {
  const targets = await db
    .selectFrom('backup_target')
    .select(['id', 'verify_every_days', 'verify_sample_percent'])
    .where('verify_every_days', 'is not', null)
    .orderBy('id')
    .execute();
  const since = sql<Date>`coalesce(b.verified_at, b.finished_at)`;
  const out: VerifyCandidateRow[] = [];
  for (const target of targets) {
    const days = target.verify_every_days!;
    const rows = await db
      .selectFrom('backup as b')
      .innerJoin('volume as v', 'v.id', 'b.volume_id')
      .select([
        'b.id as backup_id',
        'b.backup_target_id',
        'v.host_id',
        'b.finished_at',
        'b.started_at',
        'b.verified_at',
        'b.verify_started_at',
      ])
      .where('b.backup_target_id', '=', target.id)
      .where('b.state', '=', 'completed')
      .where(since, '<=', new Date(now.getTime() - days * 86_400_000))
      .orderBy(since)
      .limit(limit)
      .execute();
    for (const row of rows) {
      out.push({
        ...row,
        verify_every_days: days,
        verify_sample_percent: target.verify_sample_percent,
      });
    }
  }
  return out;
}

/** Verify jobs queued or running, per host. */
export async function runningVerifiesByHost(db: Db): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('job')
    .select(['host_id', (eb) => eb.fn.countAll<number>().as('n')])
    .where('kind', '=', 'verify')
    .where('state', 'in', ['queued', 'running'])
    .groupBy('host_id')
    .execute();
  return new Map(rows.filter((r) => r.host_id !== null).map((r) => [r.host_id!, Number(r.n)]));
}

/** Hosts whose agent was last found unreachable, with when (the row's last change then). */
export async function downHosts(db: Db): Promise<Map<string, Date>> {
  const rows = await db
    .selectFrom('host')
    .select(['id', 'updated_at'])
    .where('status', '=', 'down')
    .execute();
  return new Map(rows.map((r) => [r.id, r.updated_at]));
}

/** Backups whose verify is queued or running (the plan never starts a second one). */
export async function backupsBeingVerified(db: Db): Promise<Set<string>> {
  const rows = await db
    .selectFrom('job')
    .select('backup_id')
    .where('kind', '=', 'verify')
    .where('state', 'in', ['queued', 'running'])
    .execute();
  return new Set(rows.flatMap((r) => (r.backup_id === null ? [] : [r.backup_id])));
}

/**
 * A finished verify that checked its backup: the backup's own outcome (`ok` or `damaged`, when, how much was
 * read), then `damaged` on every other backup of the same target the agent named (their damage first found
 * now unless known before). Run in the job event's transaction.
 */
export async function recordVerifyChecked(
  db: Db,
  job: { id: string; backup_id: string },
  outcome: {
    at: Date;
    samplePercent: number;
    damagedChunks: number | null;
    others: readonly DamagedBackup[];
  },
): Promise<void> {
  const damaged = outcome.damagedChunks !== null;
  const verified = await db
    .updateTable('backup')
    .set((eb) => ({
      verified_at: outcome.at,
      verify_sample_percent: outcome.samplePercent,
      verify_state: damaged ? 'damaged' : 'ok',
      damaged_chunks: outcome.damagedChunks,
      damage_found_at: damaged ? eb.fn.coalesce('damage_found_at', eb.val(outcome.at)) : null,
      verify_job_id: job.id,
      verify_error: null,
    }))
    .where('id', '=', job.backup_id)
    .returning(['backup_target_id'])
    .executeTakeFirst();
  // The verified backup was deleted meanwhile: its target is unknown, and names from its bucket are not
  // matched against another target's rows.
  if (verified === undefined || outcome.others.length === 0) return;
  const values = sql.join(
    outcome.others.map((b) => sql`(${b.backup_id}::uuid, ${b.volume_id}::uuid, ${b.damaged_chunks}::bigint)`),
  );
  await sql`
    UPDATE backup AS b SET
      verify_state = 'damaged',
      damaged_chunks = v.n,
      damage_found_at = coalesce(b.damage_found_at, ${outcome.at}::timestamptz),
      verify_job_id = ${job.id}::uuid
    FROM (VALUES ${values}) AS v (id, volume_id, n)
    WHERE b.id = v.id AND b.volume_id = v.volume_id AND b.backup_target_id = ${verified.backup_target_id}
  `.execute(db);
}

/** A verify that did not check its backup (failed, cancelled): its cause is kept; what was known stays. */
export async function recordVerifyFailed(
  db: Db,
  job: { id: string; backup_id: string },
  error: string,
): Promise<void> {
  await db
    .updateTable('backup')
    .set({ verify_error: error, verify_job_id: job.id })
    .where('id', '=', job.backup_id)
    .execute();
}
