import { z } from 'zod';
import { Timestamp, TimeZone, Uuid } from './primitives.js';

/**
 * A volume's backup schedule and retention policy (issue: loops). The cron expression has five fields
 * (minute hour day-of-month month day-of-week) and runs on the wall clock of `timezone`; the manager checks
 * it with cron-parser and answers 400 with the parser's reason. Retention has restic's `forget` semantics
 * (docs/operations.md): each rule keeps backups independently of the others.
 */

/** A count of a retention rule: how many of the newest backups (or buckets) it keeps; 0 turns it off. */
const KeepCount = z.number().int().min(0).max(1_000_000);

export const RetentionPolicy = z.strictObject({
  keep_last: KeepCount.optional(),
  keep_hourly: KeepCount.optional(),
  keep_daily: KeepCount.optional(),
  keep_weekly: KeepCount.optional(),
  keep_monthly: KeepCount.optional(),
  keep_yearly: KeepCount.optional(),
  /** restic's duration syntax (`1y2m3d4h`, units y, m, d, h), measured back from the newest backup. */
  keep_within: z
    .string()
    .regex(/^(\d+[ymdh])+$/, 'must be a duration such as 30d, 1y6m or 2d12h (units y, m, d, h)')
    .optional(),
});
export type RetentionPolicy = z.infer<typeof RetentionPolicy>;

export const SCHEDULE_STATUSES = [
  'due',
  'waiting',
  'running',
  'disabled',
  'unscheduled',
  'invalid',
  'exhausted',
] as const;

/** What a volume shows of its schedule. */
export const BackupSchedule = z.strictObject({
  cron: z.string().nullable(),
  timezone: z.string(),
  enabled: z.boolean(),
  retention: RetentionPolicy.nullable(),
  /** The slot the scheduler will fire next (in the past while it is due); null when nothing will fire. */
  next_fire_at: Timestamp.nullable(),
  status: z.enum(SCHEDULE_STATUSES),
});
export type BackupSchedule = z.infer<typeof BackupSchedule>;

/** `PATCH /v1/volumes/{id}/backup_schedule`: a partial update; `null` clears cron or retention. */
export const UpdateBackupScheduleRequest = z
  .strictObject({
    cron: z.string().min(1).max(200).nullable().optional(),
    timezone: TimeZone.optional(),
    retention: RetentionPolicy.nullable().optional(),
    backup_target_id: Uuid.optional(),
    enabled: z.boolean().optional(),
  })
  .refine((body) => Object.keys(body).length > 0, 'give at least one field to change')
  .meta({ override: { minProperties: 1 } });
export type UpdateBackupScheduleRequest = z.infer<typeof UpdateBackupScheduleRequest>;

/** `GET …/backup_schedule/preview`: the next fire times of the saved schedule, or of the one given (the
 * console previews an expression before it is saved). */
export const SchedulePreviewQuery = z.strictObject({
  count: z.coerce.number().int().min(1).max(100).default(5),
  cron: z.string().min(1).max(200).optional(),
  timezone: TimeZone.optional(),
});
export type SchedulePreviewQuery = z.infer<typeof SchedulePreviewQuery>;

export const SchedulePreview = z.strictObject({
  cron: z.string(),
  timezone: z.string(),
  fire_times: z.array(Timestamp),
});
export type SchedulePreview = z.infer<typeof SchedulePreview>;

/** `POST /v1/volumes/{id}/prune?dry_run=true`: what retention keeps (with restic's reasons) and removes. */
export const PruneQuery = z.strictObject({
  dry_run: z
    .enum(['true', 'false'])
    .default('false')
    .transform((value) => value === 'true'),
});
export type PruneQuery = z.infer<typeof PruneQuery>;

/** The policy to plan with instead of the saved one (a preview; only with `dry_run=true`). */
export const PruneRequest = z.strictObject({ retention: RetentionPolicy.optional() });
export type PruneRequest = z.infer<typeof PruneRequest>;

export const PruneResult = z.strictObject({
  dry_run: z.boolean(),
  retention: RetentionPolicy,
  keep: z.array(z.strictObject({ backup_id: Uuid, started_at: Timestamp, reasons: z.array(z.string()) })),
  remove: z.array(z.strictObject({ backup_id: Uuid, started_at: Timestamp })),
  /** Running and failed backups: never counted, never pruned. */
  ignored: z.array(z.strictObject({ backup_id: Uuid, state: z.enum(['running', 'failed']) })),
  /** Backups deleted by this call (0 for a dry run). */
  deleted: z.number().int().min(0),
});
export type PruneResult = z.infer<typeof PruneResult>;
