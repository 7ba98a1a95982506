import { randomUUID } from 'node:crypto';
import { ApiError, BackendKind, VolumeName } from '@stowage/api';
import { finishJob, getJob, insertJob } from '../db/jobs.js';
import type { JobRow } from '../db/schema.js';
import { getTarget } from '../db/targets.js';
import { insertVolume, updateVolume, type VolumeWithLastBackup } from '../db/volumes.js';
import { targetSettings } from '../targets/targets.js';
import { requireBackup, startFailure } from './backups.js';
import type { ManagerContext } from './context.js';
import { callAgent, requireHost } from './hosts.js';
import { requireVolume } from './volumes.js';

/** `<volume>-restore-20261202-071500`: a default name that sorts by time and says where it came from. */
export function defaultRestoreName(source: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const base = source.slice(0, 200 - '-restore-'.length - stamp.length);
  return `${base}-restore-${stamp}`;
}

/**
 * Restore to a new volume: the volume row (`restoring`, no locator yet) and the job are written first, so
 * the answer carries the new volume's real id; the agent provisions the volume (named `name`, the backup's
 * size) and restores into it. When the job ends the volume becomes `available` with its locator, or `failed`
 * with the job's error (the agent removes a half-restored volume it provisioned).
 */
export async function restoreBackup(
  ctx: ManagerContext,
  backupId: string,
  options: { hostId?: string | undefined; name?: string | undefined; backend?: BackendKind | undefined },
): Promise<{ job: JobRow; volume: VolumeWithLastBackup }> {
  const backup = await requireBackup(ctx, backupId);
  if (backup.state !== 'completed') {
    throw new ApiError(
      'conflict',
      `backup ${backupId} is ${backup.state}: only a completed backup is restored`,
    );
  }
  const source = await requireVolume(ctx, backup.volume_id);
  const hostId = options.hostId ?? source.host_id;
  if (hostId === null) {
    throw new ApiError('invalid_request', `the backup's volume has no host: give host_id`, {
      field: 'host_id',
    });
  }
  const host = await requireHost(ctx, hostId);
  const target = await getTarget(ctx.db, backup.backup_target_id);
  if (!target) throw new ApiError('not_found', `no backup target ${backup.backup_target_id}`);
  const backend = options.backend ?? BackendKind.parse(source.backend);
  const name = VolumeName.parse(options.name ?? defaultRestoreName(source.name, ctx.now()));
  const jobId = randomUUID();
  const volumeId = randomUUID();
  const now = ctx.now();
  await ctx.db.transaction().execute(async (trx) => {
    await insertVolume(trx, {
      id: volumeId,
      name,
      host_id: host.id,
      backend,
      locator: null,
      size: backup.size ?? 0,
      state: 'restoring',
      backup_target_id: source.backup_target_id,
      provisioned: true,
      created_at: now,
      updated_at: now,
    });
    await insertJob(trx, {
      id: jobId,
      kind: 'restore',
      state: 'queued',
      host_id: host.id,
      volume_id: volumeId,
      backup_id: backup.id,
      created_at: now,
    });
  });
  const log = {
    job_id: jobId,
    backup_id: backup.id,
    volume_id: volumeId,
    host_id: host.id,
    target_id: target.id,
  };
  try {
    await callAgent(ctx, host, (agent) =>
      agent.startRestore({
        job_id: jobId,
        backup: { volume_id: backup.volume_id, backup_id: backup.id, manifest_key: backup.manifest_key },
        destination: { backend, name },
        target: targetSettings(ctx, target),
      }),
    );
  } catch (error) {
    const cause = startFailure(error);
    await finishJob(ctx.db, jobId, { state: 'failed', error: cause, now: ctx.now() });
    await updateVolume(ctx.db, volumeId, {
      state: 'failed',
      error: JSON.stringify(cause),
      updated_at: ctx.now(),
    });
    ctx.jobChanged(jobId);
    ctx.logger.warn('restore could not start', { ...log, error });
    throw error;
  }
  ctx.logger.info('restore started', log);
  const job = await getJob(ctx.db, jobId);
  return { job: job!, volume: await requireVolume(ctx, volumeId) };
}
