import { ApiError } from '@stowage/api';
import { backupsBeingVerified, downHosts, runningVerifiesByHost, verifyCandidates } from '../db/verify.js';
import type { ManagerContext } from '../services/context.js';
import { verifyNow } from '../services/verify.js';
import { planVerifies } from './verify-schedule.js';

export interface VerifyLoopReport {
  readonly candidates: number;
  readonly started: number;
  readonly deferred: number;
  readonly failed: number;
}

/** Candidates read per tick: the most overdue first, far more than one tick starts. */
const CANDIDATES_PER_TICK = 500;

/**
 * One verify-schedule tick (every minute): the completed backups of targets with `verify_every_days` that
 * are due, planned by `planVerifies` (one verify per host at a time), each started with its target's
 * `verify_sample_percent`. Replicas may tick together: the one-verify-per-backup index makes the second start
 * a 409, skipped here. A start that fails is kept on the backup (`verify_error`) and retried hours later.
 */
export async function verifyScheduleOnce(ctx: ManagerContext): Promise<VerifyLoopReport> {
  const now = ctx.now();
  const rows = await verifyCandidates(ctx.db, now, CANDIDATES_PER_TICK);
  if (rows.length === 0) return { candidates: 0, started: 0, deferred: 0, failed: 0 };
  const verifying = await backupsBeingVerified(ctx.db);
  const plan = planVerifies(
    now,
    rows.map((row) => ({
      backupId: row.backup_id,
      hostId: row.host_id,
      everyDays: row.verify_every_days,
      samplePercent: row.verify_sample_percent,
      verifiedAt: row.verified_at,
      finishedAt: row.finished_at ?? row.started_at,
      verifyStartedAt: row.verify_started_at,
      verifying: verifying.has(row.backup_id),
    })),
    await runningVerifiesByHost(ctx.db),
    {},
    await downHosts(ctx.db),
  );
  let started = 0;
  let failed = 0;
  for (const { backupId, hostId, samplePercent } of plan.start) {
    try {
      const { job } = await verifyNow(ctx, backupId, { samplePercent, hostId });
      started++;
      ctx.logger.info('scheduled verify started', { backup_id: backupId, job_id: job.id });
    } catch (error) {
      if (error instanceof ApiError && error.code === 'conflict') continue;
      failed++;
      ctx.logger.warn('scheduled verify could not start', { backup_id: backupId, error });
    }
  }
  for (const backupId of plan.noHost) {
    ctx.logger.debug('scheduled verify due but its volume has no host', { backup_id: backupId });
  }
  return { candidates: rows.length, started, deferred: plan.deferred, failed };
}
