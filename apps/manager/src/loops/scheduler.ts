import { ApiError } from '@stowage/api';
import { scheduledVolumes } from '../db/volumes.js';
import { backupNow } from '../services/backups.js';
import type { ManagerContext } from '../services/context.js';
import { scheduledVolume } from '../services/schedules.js';
import { planSchedule } from './schedule.js';

export interface SchedulerReport {
  readonly scheduled: number;
  readonly started: number;
  readonly failed: number;
}

/**
 * One scheduler tick (every minute): the pure plan (`planSchedule`) over every volume with a schedule on,
 * then a backup started for each one due. Replicas may tick together: the one-running-backup index makes the
 * second start a 409, which is skipped here. A start that fails (agent down) is recorded as a failed backup
 * by `backupNow`; the plan then waits for the next slot rather than retrying every minute.
 */
export async function scheduleOnce(ctx: ManagerContext): Promise<SchedulerReport> {
  const volumes = await scheduledVolumes(ctx.db);
  const { due } = planSchedule(ctx.now(), volumes.map(scheduledVolume));
  let started = 0;
  let failed = 0;
  for (const id of due) {
    try {
      const { job } = await backupNow(ctx, id, {});
      started++;
      ctx.logger.info('scheduled backup started', { volume_id: id, job_id: job.id });
    } catch (error) {
      if (error instanceof ApiError && error.code === 'conflict') continue;
      failed++;
      ctx.logger.warn('scheduled backup could not start', { volume_id: id, error });
    }
  }
  return { scheduled: volumes.length, started, failed };
}
