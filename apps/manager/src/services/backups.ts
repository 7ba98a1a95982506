import { randomUUID } from 'node:crypto';
import { ApiError, BackendKind, manifestKeyOf } from '@stowage/api';
import { deleteBackupRow, getBackup, insertBackup, runningBackupOf } from '../db/backups.js';
import { uniqueViolation } from '../db/conn.js';
import { finishJob, getJob, insertJob } from '../db/jobs.js';
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
 * second of two concurrent requests a 409 naming the running job, whichever replica took it), then the
 * agent is asked to run it. An agent that refuses or cannot be reached fails the job and the backup at
 * once, with its cause, and the request answers that error: nothing is left running.
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
  let job: JobRow;
  let backup: BackupRow;
  try {
    ({ job, backup } = await ctx.db.transaction().execute(async (trx) => ({
      job: await insertJob(trx, {
        id: jobId,
        kind: 'backup',
        state: 'queued',
        host_id: host.id,
        volume_id: volume.id,
        backup_id: backupId,
        created_at: now,
      }),
      backup: await insertBackup(trx, {
        id: backupId,
        volume_id: volume.id,
        backup_target_id: target.id,
        job_id: jobId,
        state: 'running',
        manifest_key: manifestKeyOf(volume.id, backupId),
        started_at: now,
      }),
    })));
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
  try {
    const { backend, locator } = volume;
    await callAgent(ctx, host, (agent) =>
      agent.startBackup({
        job_id: jobId,
        volume: { backend: BackendKind.parse(backend), locator },
        volume_name: volume.name,
        volume_id: volume.id,
        backup_id: backupId,
        snapshot: options.snapshot ?? snapshotMode(volume.snapshot),
        target: targetSettings(ctx, target),
      }),
    );
  } catch (error) {
    const cause = startFailure(error);
    await ctx.db.transaction().execute(async (trx) => {
      await finishJob(trx, jobId, { state: 'failed', error: cause, now: ctx.now() });
      await trx
        .updateTable('backup')
        .set({ state: 'failed', error: JSON.stringify(cause), finished_at: ctx.now() })
        .where('id', '=', backupId)
        .where('state', '=', 'running')
        .execute();
    });
    ctx.jobChanged(jobId);
    ctx.logger.warn('backup could not start', { ...log, error });
    throw error;
  }
  ctx.logger.info('backup started', log);
  return { job: (await getJob(ctx.db, jobId)) ?? job, backup: (await getBackup(ctx.db, backupId)) ?? backup };
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
  const target = await requireTarget(ctx, backup.backup_target_id);
  const { repository, close } = await openTargetRepository(ctx, target);
  try {
    await repository.store.delete(backup.manifest_key);
    await repository.deleteDamageRecord({ volumeId: backup.volume_id, backupId: backup.id });
  } finally {
    close();
  }
  await deleteBackupRow(ctx.db, id);
  ctx.logger.info('backup deleted', { backup_id: id, volume_id: backup.volume_id, target_id: target.id });
}
