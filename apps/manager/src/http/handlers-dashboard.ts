import type { Dashboard, DashboardTarget, dashboardRoutes } from '@stowage/api';
import {
  backupsSince,
  hostCounts,
  type LiveVolumeRow,
  liveVolumes,
  openAlertCount,
  type TargetUsageRow,
  targetUsageRows,
  unfinishedJobCounts,
} from '../db/dashboard.js';
import { overdueCheck, overdueMarginMs } from '../loops/alert-rules.js';
import { nextFireTimes, parseSchedule, type Schedule, ScheduleError } from '../loops/schedule.js';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Each live volume in exactly one class, the first that fits: failing (its newest backup failed, or the
 * volume failed), unprotected (no completed backup, or no schedule switched on), overdue (an available
 * volume with no success by its schedule's slot plus the margin, the `volume_overdue` alert's rule),
 * protected. Volumes sharing a cron expression and zone share one parse and one walk of its recent slots.
 */
export function classifyVolumes(now: Date, rows: readonly LiveVolumeRow[]): Dashboard['volumes'] {
  const slots = new Map<string, RecentSlots | undefined>();
  const counts = { total: rows.length, protected: 0, unprotected: 0, overdue: 0, failing: 0 };
  for (const row of rows) {
    if (row.state === 'failed' || row.last_attempt_state === 'failed') counts.failing++;
    else if (row.last_success_started_at === null || row.backup_cron === null || !row.schedule_enabled)
      counts.unprotected++;
    else if (row.state === 'available' && isOverdue(now, row, slots)) counts.overdue++;
    else counts.protected++;
  }
  return counts;
}

/** A schedule's fire times from two days ago on: the slots most volumes' checks land in, found once. */
interface RecentSlots {
  readonly schedule: Schedule;
  readonly from: number;
  readonly times: readonly number[];
}
const RECENT_WINDOW_MS = 2 * DAY_MS;
// Two days of an hourly schedule and a little more; a busier one falls back to computing its volumes' slots.
const RECENT_SLOTS = 50;

function recentSlots(now: Date, row: LiveVolumeRow, cache: Map<string, RecentSlots | undefined>) {
  const key = `${row.timezone}\n${row.backup_cron}`;
  if (!cache.has(key)) {
    const schedule = parseOrUndefined(row.backup_cron!, row.timezone);
    const from = now.getTime() - RECENT_WINDOW_MS;
    cache.set(
      key,
      schedule && {
        schedule,
        from,
        times: nextFireTimes(schedule, new Date(from), RECENT_SLOTS).map((t) => t.getTime()),
      },
    );
  }
  return cache.get(key);
}

/**
 * The alerts loop's own rule (alert-rules.ts `overdueCheck`), so a volume counted overdue here has its alert
 * open there: no success by the first slot after the newest success (or the schedule's start) plus the margin
 * of that slot's period. The slot and the next are looked up in the schedule's recent fire times when they
 * lie there (1,000 volumes on a few schedules: a few cron walks, not two per volume), else computed.
 */
function isOverdue(now: Date, row: LiveVolumeRow, cache: Map<string, RecentSlots | undefined>): boolean {
  const recent = recentSlots(now, row, cache);
  if (recent === undefined) return false;
  const last = row.last_success_started_at;
  const since = Math.max(last?.getTime() ?? Number.NEGATIVE_INFINITY, row.schedule_since.getTime());
  if (since >= recent.from) {
    const i = firstAfter(recent.times, since);
    if (i + 1 < recent.times.length) {
      const slot = recent.times[i]!;
      return now.getTime() > slot + overdueMarginMs(recent.times[i + 1]! - slot);
    }
  }
  const check = overdueCheck(recent.schedule, last, row.schedule_since);
  return check !== null && now.getTime() > check.overdueAt.getTime();
}

/** The index of the first element greater than `value` in an ascending list (its length if none). */
function firstAfter(list: readonly number[], value: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]! > value) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** The dashboard's summary (routes-dashboard.ts in @stowage/api). */
export function dashboardHandlers(deps: HandlerDeps): HandlersOf<typeof dashboardRoutes> {
  const { ctx } = deps;
  return {
    getDashboard: async (): Promise<Dashboard> => {
      const now = ctx.now();
      // One after another: PGlite serves one session, and a pool gains little on a handful of small queries.
      const hosts = await hostCounts(ctx.db);
      const volumes = classifyVolumes(now, await liveVolumes(ctx.db));
      const backups = await backupsSince(ctx.db, new Date(now.getTime() - DAY_MS));
      const jobs = await unfinishedJobCounts(ctx.db);
      const targets = await targetUsageRows(ctx.db);
      const alerts = await openAlertCount(ctx.db);
      return {
        generated_at: now.toISOString(),
        hosts,
        volumes,
        backups_24h: backups,
        jobs,
        targets: targets.map(targetSummary),
        open_alerts: alerts,
      };
    },
  };
}

/** A schedule that no longer parses is the schedule's own problem ('invalid'), not an overdue volume. */
function parseOrUndefined(cron: string, zone: string): Schedule | undefined {
  try {
    return parseSchedule(cron, zone);
  } catch (error) {
    if (error instanceof ScheduleError) return undefined;
    throw error;
  }
}

function targetSummary(row: TargetUsageRow): DashboardTarget {
  const total = row.stored_bytes > 0 ? row.logical_bytes / row.stored_bytes : null;
  const dedup = row.chunks_new > 0 ? row.chunks / row.chunks_new : null;
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    backups: row.backups,
    logical_bytes: row.logical_bytes,
    stored_bytes: row.stored_bytes,
    total_ratio: total,
    dedup_ratio: dedup,
    compression_ratio: total !== null && dedup !== null ? total / dedup : null,
  };
}
