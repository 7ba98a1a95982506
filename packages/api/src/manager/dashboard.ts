import { z } from 'zod';
import { Timestamp, Uuid } from './primitives.js';
import { TargetKind } from './targets.js';

const Count = z.number().int().min(0);
const Ratio = z.number().min(0).nullable();

/**
 * Each live volume (not archived or being deleted) is counted in exactly one class, the first that fits:
 * `failing` (its newest backup failed, or the volume itself failed), `unprotected` (no completed
 * backup, or no schedule switched on), `overdue` (its schedule's slot passed more than an hour ago without a
 * backup starting), `protected` (the rest).
 */
export const DashboardVolumes = z.strictObject({
  total: Count,
  protected: Count,
  unprotected: Count,
  overdue: Count,
  failing: Count,
});

/**
 * A target's usage. `logical_bytes` is the size of its completed backups added up, `stored_bytes` what they
 * uploaded. `total_ratio` = logical / stored. `dedup_ratio` = chunks referenced / chunks newly stored, over
 * the target's newest 1,000 completed backups and by count (an estimate); `compression_ratio` = total /
 * dedup. Null while nothing is stored.
 */
export const DashboardTarget = z.strictObject({
  id: Uuid,
  name: z.string(),
  kind: TargetKind,
  backups: Count,
  logical_bytes: Count,
  stored_bytes: Count,
  total_ratio: Ratio,
  dedup_ratio: Ratio,
  compression_ratio: Ratio,
});
export type DashboardTarget = z.infer<typeof DashboardTarget>;

/** `GET /v1/dashboard`: the fleet at a glance, computed in one call (a few aggregate queries). */
export const Dashboard = z.strictObject({
  generated_at: Timestamp,
  hosts: z.strictObject({ up: Count, down: Count, unknown: Count }),
  volumes: DashboardVolumes,
  /** Backups started in the last 24 hours, by state, and what the completed ones read and uploaded. */
  backups_24h: z.strictObject({
    completed: Count,
    failed: Count,
    running: Count,
    logical_bytes: Count,
    uploaded_bytes: Count,
  }),
  jobs: z.strictObject({ queued: Count, running: Count }),
  targets: z.array(DashboardTarget),
  open_alerts: Count,
});
export type Dashboard = z.infer<typeof Dashboard>;
