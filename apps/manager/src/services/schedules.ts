import {
  ApiError,
  type BackupSchedule,
  type RetentionPolicy,
  type UpdateBackupScheduleRequest,
} from '@stowage/api';
import { getTarget } from '../db/targets.js';
import { updateVolume, type VolumeWithLastBackup } from '../db/volumes.js';
import { parseRetentionPolicy, RetentionPolicyError } from '../loops/retention.js';
import { decideSchedule, parseSchedule, type ScheduledVolume, ScheduleError } from '../loops/schedule.js';
import type { ManagerContext } from './context.js';
import { requireVolume } from './volumes.js';

/** A volume row as the scheduler's pure decision sees it. */
export function scheduledVolume(row: VolumeWithLastBackup): ScheduledVolume {
  return {
    id: row.id,
    cron: row.backup_cron,
    timeZone: row.timezone,
    enabled: row.schedule_enabled,
    scheduleSince: row.schedule_since,
    lastSuccessAt: row.last_success_started_at === null ? null : new Date(row.last_success_started_at),
    lastAttemptAt: row.last_attempt_at === null ? null : new Date(row.last_attempt_at),
    running: row.last_attempt_state === 'running',
  };
}

/** What a volume shows of its schedule, its next fire time decided as the scheduler would now. */
export function scheduleJson(row: VolumeWithLastBackup, now: Date): BackupSchedule {
  const decision = decideSchedule(now, scheduledVolume(row));
  return {
    cron: row.backup_cron,
    timezone: row.timezone,
    enabled: row.schedule_enabled,
    retention: (row.retention as RetentionPolicy | null) ?? null,
    next_fire_at: decision.nextFireAt?.toISOString() ?? null,
    status: decision.status,
  };
}

/** A schedule or policy error as the API's 400, with the field and cron-parser's reason. */
export function scheduleApiError(error: unknown): unknown {
  if (error instanceof ScheduleError) {
    return new ApiError('invalid_request', error.message, { field: error.field, reason: error.reason });
  }
  if (error instanceof RetentionPolicyError) {
    return new ApiError('invalid_request', `retention: ${error.message}`, { field: 'retention' });
  }
  return error;
}

/**
 * `PATCH …/backup_schedule`: a partial update of cron, zone, retention, target and enabled. The result is
 * checked whole (a zone change must suit the stored cron) before anything is written. A change of cron, zone
 * or enabled restarts the schedule from now (`schedule_since`), so turning a schedule on does not fire at
 * once for slots that passed while it was off; a first schedule starts enabled unless told otherwise.
 */
export async function updateSchedule(
  ctx: ManagerContext,
  id: string,
  body: UpdateBackupScheduleRequest,
): Promise<VolumeWithLastBackup> {
  const volume = await requireVolume(ctx, id);
  const cron = body.cron === undefined ? volume.backup_cron : body.cron;
  const timezone = body.timezone ?? volume.timezone;
  const enabled =
    body.enabled ?? (body.cron !== undefined && volume.backup_cron === null ? true : volume.schedule_enabled);
  try {
    if (cron !== null) parseSchedule(cron, timezone);
    if (body.retention !== undefined && body.retention !== null) parseRetentionPolicy(body.retention);
  } catch (error) {
    throw scheduleApiError(error);
  }
  if (enabled && cron === null) {
    throw new ApiError('invalid_request', 'enabled: a schedule without a cron expression cannot be enabled', {
      field: 'enabled',
    });
  }
  if (body.backup_target_id !== undefined && !(await getTarget(ctx.db, body.backup_target_id))) {
    throw new ApiError('not_found', `no backup target ${body.backup_target_id}`, {
      field: 'backup_target_id',
    });
  }
  const timing =
    cron !== volume.backup_cron || timezone !== volume.timezone || enabled !== volume.schedule_enabled;
  const now = ctx.now();
  await updateVolume(ctx.db, id, {
    backup_cron: cron,
    timezone,
    schedule_enabled: enabled,
    ...(body.retention === undefined
      ? {}
      : { retention: body.retention === null ? null : JSON.stringify(body.retention) }),
    ...(body.backup_target_id === undefined ? {} : { backup_target_id: body.backup_target_id }),
    ...(timing ? { schedule_since: now } : {}),
    updated_at: now,
  });
  ctx.logger.info('schedule updated', { volume_id: id, cron, timezone, enabled });
  return requireVolume(ctx, id);
}
