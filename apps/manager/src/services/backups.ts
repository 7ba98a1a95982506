import { randomUUID } from 'node:crypto';
import { ApiError, BackendKind, manifestKeyOf } from '@stowage/api';
import { deleteBackupRow, getBackup, insertBackup, runningBackupOf } from '../db/backups.js';
import { uniqueViolation } from '../db/conn.js';
import { finishJob, getJob, insertJob } from '../db/jobs.js';
import { acquireLease, releaseLease } from '../db/leases.js';
import type { BackupRow, JobRow } from '../db/schema.js';
import { getTarget } from '../db/targets.js';
import { openTargetRepository, targetSettings } from '../targets/targets.js';
import type { ManagerContext } from './context.js';
import { callAgent, requireHost } from './hosts.js';
import { requireVolume, snapshotMode } from './volumes.js';

export async function requireBackup(ctx: ManagerContext, id: string): Promise<BackupRow> {
  const backup = await getBackup(ctx.db, id);
  if (!backup) throw new ApiError('not_found', `no backup ${id}`);
  return backup;
}

async function requireTarget(ctx: ManagerContext, id: string) {
  const target = await getTarget(ctx.db, id);
  if (!target) throw new ApiError('not_found', `no backup target ${id}`, { field: 'backup_target_id' });
  return target;
}

/** The error a job and its backup keep when the agent never took the job. */
export function startFailure(error: unknown): { code: string; message: string } {
  return error instanceof ApiError
    ? { code: error.code, message: error.message }
    : { code: 'internal', message: 'the job could not be started' };
}

/**
 * Backup now: a job row and a running backup row in one transaction (the partial unique index makes the
 * second of two concurrent requests a 409 naming the running job, whichever replica took it), with a lease
 * on the target, then the agent is asked to run it. While the target is being swept the job waits queued
 * instead, and the sweep's end sends it (`dispatchQueuedBackups`). An agent that refuses or cannot be
 * reached fails the job and the backup at once, with its cause, and the request answers that error: nothing
 * is left running.
 */
export async function backupNow(
  ctx: ManagerContext,
  volumeId: string,
  options: { targetId?: string | undefined; snapshot?: boolean | 'copy' | undefined },
): Promise<{ job: JobRow; backup: BackupRow }> {
  const volume = await requireVolume(ctx, volumeId);
  if (volume.state !== 'available' || volume.host_id === null || volume.locator === null) {
    throw new ApiError(
      'conflict',
      `volume ${volumeId} is ${volume.state}: only an available volume is backed up`,
    );
  }
  const targetId = options.targetId ?? volume.backup_target_id;
  if (targetId === null) {
    throw new ApiError('invalid_request', `volume ${volumeId} has no backup target: give backup_target_id`, {
      field: 'backup_target_id',
    });
  }
  const target = await requireTarget(ctx, targetId);
  const host = await requireHost(ctx, volume.host_id);
  const jobId = randomUUID();
  const backupId = randomUUID();
  const now = ctx.now();
  let leased: boolean;
  try {
    leased = await ctx.db.transaction().execute(async (trx) => {
      await insertJob(trx, {
        id: jobId,
        kind: 'backup',
        state: 'queued',
        host_id: host.id,
        volume_id: volume.id,
        backup_id: backupId,
        created_at: now,
        request: JSON.stringify(options.snapshot === undefined ? {} : { snapshot: options.snapshot }),
      });
      await insertBackup(trx, {
        id: backupId,
        volume_id: volume.id,
        backup_target_id: target.id,
        job_id: jobId,
        state: 'running',
        manifest_key: manifestKeyOf(volume.id, backupId),
        started_at: now,
      });
      return acquireLease(trx, { jobId, targetId: target.id, now });
    });
  } catch (error) {
    if (uniqueViolation(error) === 'backup_one_running') {
      const running = await runningBackupOf(ctx.db, volume.id);
      throw new ApiError('conflict', `a backup of volume ${volume.id} is already running`, {
        job_id: running?.job_id ?? null,
        backup_id: running?.id ?? null,
      });
    }
    throw error;
  }
  const log = {
    job_id: jobId,
    backup_id: backupId,
    volume_id: volume.id,
    host_id: host.id,
    target_id: target.id,
  };
  if (leased) {
    await sendBackup(ctx, jobId, { throwOnFailure: true });
    ctx.logger.info('backup started', log);
  } else {
    ctx.logger.info('backup queued: its target is being swept', log);
  }
  const job = await getJob(ctx.db, jobId);
  const backup = await getBackup(ctx.db, backupId);
  if (!job || !backup) throw new ApiError('internal', `backup job ${jobId} vanished as it started`);
  return { job, backup };
}

/**
 * Sends a leased backup job to its agent, with the commit fence on. A refusal or an unreachable agent fails
 * the job and its backup with the cause (and, with `throwOnFailure`, answers it to the caller).
 */
async function sendBackup(
  ctx: ManagerContext,
  jobId: string,
  how: { throwOnFailure: boolean },
): Promise<void> {
  const job = await getJob(ctx.db, jobId);
  const backup = job?.backup_id ? await getBackup(ctx.db, job.backup_id) : undefined;
  if (!job || !backup || job.volume_id === null || job.host_id === null) return;
  try {
    const volume = await requireVolume(ctx, job.volume_id);
    const target = await requireTarget(ctx, backup.backup_target_id);
    const host = await requireHost(ctx, job.host_id);
    if (volume.locator === null) throw new ApiError('conflict', `volume ${volume.id} has no locator`);
    const requested = (job.request ?? {}) as { snapshot?: boolean | 'copy' };
    const { backend, locator } = volume;
    await callAgent(ctx, host, (agent) =>
      agent.startBackup({
        job_id: job.id,
        volume: { backend: BackendKind.parse(backend), locator },
        volume_name: volume.name,
        volume_id: volume.id,
        backup_id: backup.id,
        snapshot: requested.snapshot ?? snapshotMode(volume.snapshot),
        target: targetSettings(ctx, target),
        commit_fence: 'manager',
      }),
    );
  } catch (error) {
    const cause = startFailure(error);
    await ctx.db.transaction().execute(async (trx) => {
      await finishJob(trx, job.id, { state: 'failed', error: cause, now: ctx.now() });
      await releaseLease(trx, job.id, ctx.now(), false);
      await trx
        .updateTable('backup')
        .set({ state: 'failed', error: JSON.stringify(cause), finished_at: ctx.now() })
        .where('id', '=', backup.id)
        .where('state', '=', 'running')
        .execute();
    });
    ctx.jobChanged(job.id);
    ctx.logger.warn('backup could not start', { job_id: job.id, backup_id: backup.id, error });
    if (how.throwOnFailure) throw error;
  }
}

/**
 * Sends the backups of a target that waited queued for a sweep (or for a replica that stopped before sending
 * them): each is leased first, so none starts while the target is swept. Called at a sweep's end and by the
 * scheduler's tick.
 */
export async function dispatchQueuedBackups(ctx: ManagerContext, targetId?: string): Promise<number> {
  let query = ctx.db
    .selectFrom('job')
    .innerJoin('backup', 'backup.id', 'job.backup_id')
    .leftJoin('backup_lease', 'backup_lease.job_id', 'job.id')
    .select(['job.id as job_id', 'backup.backup_target_id as target_id'])
    .where('job.kind', '=', 'backup')
    .where('job.state', '=', 'queued')
    .where('backup_lease.job_id', 'is', null);
  if (targetId !== undefined) query = query.where('backup.backup_target_id', '=', targetId);
  const waiting = await query.orderBy('job.created_at').limit(100).execute();
  let sent = 0;
  for (const { job_id, target_id } of waiting) {
    const leased = await ctx.db
      .transaction()
      .execute((trx) => acquireLease(trx, { jobId: job_id, targetId: target_id, now: ctx.now() }));
    if (!leased) continue;
    // Two replicas may both lease it (the insert is idempotent); the agent takes a job id once.
    await sendBackup(ctx, job_id, { throwOnFailure: false });
    sent++;
  }
  return sent;
}

/**
 * Deletes a backup: its manifest root first (then its damage record), so that a crash in between leaves a
 * row naming a missing manifest — visible and retried by deleting again — never a manifest no row names.
 * The chunks it alone used are left to garbage collection. 409 while it runs.
 */
export async function deleteBackup(ctx: ManagerContext, id: string): Promise<void> {
  const backup = await requireBackup(ctx, id);
  if (backup.state === 'running') {
    throw new ApiError('conflict', `backup ${id} is running; cancel its job first`, {
      job_id: backup.job_id,
    });
  }
  const reader = await ctx.db
    .selectFrom('job')
    .select(['id', 'kind'])
    .where('backup_id', '=', id)
    .where('kind', '<>', 'backup')
    .where('state', 'in', ['queued', 'running'])
    .executeTakeFirst();
  if (reader) {
    // A restore or verify reads the backup's packs: once its manifest is gone a GC may delete them.
    throw new ApiError('conflict', `backup ${id} is being read by ${reader.kind} job ${reader.id}`, {
      job_id: reader.id,
    });
  }
  const target = await requireTarget(ctx, backup.backup_target_id);
  const { repository, close } = await openTargetRepository(ctx, target);
  try {
    await repository.store.delete(backup.manifest_key);
    await repository.deleteDamageRecord({ volumeId: backup.volume_id, backupId: backup.id });
  } finally {
    close();
  }
  if (!(await deleteBackupRow(ctx.db, id))) {
    // Another delete (a replica's prune, a user) took the row meanwhile: it did the deleting, not this one.
    throw new ApiError('not_found', `no backup ${id}`);
  }
  ctx.logger.info('backup deleted', { backup_id: id, volume_id: backup.volume_id, target_id: target.id });
}
