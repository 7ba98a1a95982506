import { ApiError, type PruneResult, type RetentionPolicy } from '@stowage/api';
import { planRetention } from '../loops/retention.js';
import { deleteBackup } from './backups.js';
import type { ManagerContext } from './context.js';
import { scheduleApiError } from './schedules.js';
import { requireVolume } from './volumes.js';

/**
 * Retention for one volume (`POST …/prune`, and after each successful backup): restic's `forget` plan over
 * its backups on the wall clock of the volume's zone, then — unless a dry run — the pruned backups deleted
 * one by one, manifest first, then row. Running and failed backups never count and are never pruned.
 */
export async function pruneVolume(
  ctx: ManagerContext,
  id: string,
  options: { dryRun: boolean; policy?: RetentionPolicy | undefined },
): Promise<PruneResult> {
  const volume = await requireVolume(ctx, id);
  if (options.policy !== undefined && !options.dryRun) {
    throw new ApiError(
      'invalid_request',
      'retention: a policy in the body is only for a dry run; save it with PATCH …/backup_schedule',
      {
        field: 'retention',
      },
    );
  }
  const policy = options.policy ?? (volume.retention as RetentionPolicy | null);
  if (policy === null) {
    throw new ApiError('conflict', `volume ${id} has no retention policy`, { field: 'retention' });
  }
  const backups = await ctx.db
    .selectFrom('backup')
    .select(['id', 'started_at', 'state'])
    .where('volume_id', '=', id)
    .orderBy('started_at', 'desc')
    .execute();
  const startedAt = new Map(backups.map((b) => [b.id, b.started_at]));
  let plan: ReturnType<typeof planRetention>;
  try {
    plan = planRetention(
      backups.map((b) => ({ id: b.id, time: b.started_at, state: b.state })),
      policy,
      { timeZone: volume.timezone, now: ctx.now() },
    );
  } catch (error) {
    throw scheduleApiError(error);
  }
  let deleted = 0;
  if (!options.dryRun) {
    for (const { id: backupId } of plan.remove) {
      try {
        await deleteBackup(ctx, backupId);
        deleted++;
      } catch (error) {
        // Gone already (another replica's prune, a user's delete): what was asked for holds. Being read by
        // a restore or verify (409): left for the next prune, which follows the next backup.
        if (error instanceof ApiError && error.code === 'conflict') {
          ctx.logger.info('retention left a backup being read', { volume_id: id, backup_id: backupId });
          continue;
        }
        if (!(error instanceof ApiError && error.code === 'not_found')) throw error;
      }
    }
    if (plan.remove.length > 0)
      ctx.logger.info('retention applied', { volume_id: id, pruned: deleted, kept: plan.keep.length });
  }
  const at = (backupId: string) => startedAt.get(backupId)!.toISOString();
  return {
    dry_run: options.dryRun,
    retention: policy,
    keep: plan.keep.map((k) => ({ backup_id: k.id, started_at: at(k.id), reasons: [...k.reasons] })),
    remove: plan.remove.map((r) => ({ backup_id: r.id, started_at: at(r.id) })),
    ignored: plan.ignored.map((i) => ({ backup_id: i.id, state: i.state })),
    deleted,
  };
}

/** After a successful backup: the volume's policy, if it has one, applied; a failure is logged, not thrown. */
export async function applyRetentionAfterBackup(ctx: ManagerContext, volumeId: string): Promise<void> {
  try {
    const volume = await requireVolume(ctx, volumeId);
    if (volume.retention === null) return;
    await pruneVolume(ctx, volumeId, { dryRun: false });
  } catch (error) {
    ctx.logger.error('retention after a backup failed', { volume_id: volumeId, error });
  }
}
