import { randomUUID } from 'node:crypto';
import { ApiError } from '@stowage/api';
import { getBackup } from '../db/backups.js';
import { uniqueViolation } from '../db/conn.js';
import { finishJob, getJob, insertJob } from '../db/jobs.js';
import type { BackupRow, JobRow } from '../db/schema.js';
import { getTarget } from '../db/targets.js';
import { recordVerifyFailed, runningVerifyOf } from '../db/verify.js';
import { targetSettings } from '../targets/targets.js';
import { requireBackup, startFailure } from './backups.js';
import type { ManagerContext } from './context.js';
import { callAgent, requireHost } from './hosts.js';

/**
 * Verify a backup now, on an agent: a `verify` job row is written (one per backup at a time — the partial
 * unique index makes a second request, from any replica or the schedule, a 409 naming the running job), then
 * the agent is sent the backup's manifest key, the share of chunks to read and the target's settings. The
 * data never passes the manager: the agent reads the bucket and reports what it found, which the job's final
 * event records (`applyJobEvent`). An agent that refuses or cannot be reached fails the job at once, the cause
 * kept on the backup's verification, and the request answers it.
 *
 * It runs on the host given, else on the host of the backup's volume (whose agent wrote it, so it reaches
 * the target).
 */
export async function verifyNow(
  ctx: ManagerContext,
  backupId: string,
  options: { samplePercent?: number | undefined; hostId?: string | undefined },
): Promise<{ job: JobRow; backup: BackupRow }> {
  const samplePercent = options.samplePercent ?? 100;
  if (!(samplePercent > 0 && samplePercent <= 100)) {
    throw new ApiError('invalid_request', `sample must be a percentage in (0, 100], got ${samplePercent}`, {
      field: 'sample',
    });
  }
  const backup = await requireBackup(ctx, backupId);
  if (backup.state !== 'completed') {
    throw new ApiError(
      'conflict',
      `backup ${backupId} is ${backup.state}: only a completed backup is verified`,
    );
  }
  const volume = await ctx.db
    .selectFrom('volume')
    .select(['id', 'host_id'])
    .where('id', '=', backup.volume_id)
    .executeTakeFirst();
  const hostId = options.hostId ?? volume?.host_id ?? null;
  if (hostId === null) {
    throw new ApiError('invalid_request', `the backup's volume has no host: give host_id`, {
      field: 'host_id',
    });
  }
  const host = await requireHost(ctx, hostId);
  const target = await getTarget(ctx.db, backup.backup_target_id);
  if (!target) throw new ApiError('not_found', `no backup target ${backup.backup_target_id}`);
  const jobId = randomUUID();
  const now = ctx.now();
  try {
    await ctx.db.transaction().execute(async (trx) => {
      await insertJob(trx, {
        id: jobId,
        kind: 'verify',
        state: 'queued',
        host_id: host.id,
        volume_id: backup.volume_id,
        backup_id: backup.id,
        created_at: now,
        request: JSON.stringify({ sample_percent: samplePercent }),
      });
      await trx.updateTable('backup').set({ verify_started_at: now }).where('id', '=', backup.id).execute();
    });
  } catch (error) {
    if (uniqueViolation(error) === 'job_one_verify') {
      const running = await runningVerifyOf(ctx.db, backup.id);
      throw new ApiError('conflict', `a verify of backup ${backup.id} is already running`, {
        job_id: running?.id ?? null,
      });
    }
    throw error;
  }
  const log = {
    job_id: jobId,
    backup_id: backup.id,
    volume_id: backup.volume_id,
    host_id: host.id,
    target_id: target.id,
    sample_percent: samplePercent,
  };
  try {
    await callAgent(ctx, host, (agent) =>
      agent.startVerify({
        job_id: jobId,
        backup: { volume_id: backup.volume_id, backup_id: backup.id, manifest_key: backup.manifest_key },
        sample_percent: samplePercent,
        target: targetSettings(ctx, target),
      }),
    );
  } catch (error) {
    const cause = startFailure(error);
    await ctx.db.transaction().execute(async (trx) => {
      await finishJob(trx, jobId, { state: 'failed', error: cause, now: ctx.now() });
      await recordVerifyFailed(trx, { id: jobId, backup_id: backup.id }, JSON.stringify(cause));
    });
    ctx.jobChanged(jobId);
    ctx.logger.warn('verify could not start', { ...log, error });
    throw error;
  }
  ctx.logger.info('verify started', log);
  const job = await getJob(ctx.db, jobId);
  const current = await getBackup(ctx.db, backup.id);
  if (!job || !current) throw new ApiError('internal', `verify job ${jobId} vanished as it started`);
  return { job, backup: current };
}
