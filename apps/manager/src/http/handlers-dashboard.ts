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
import { overdueCheck } from '../loops/alert-rules.js';
import { parseSchedule, type Schedule, ScheduleError } from '../loops/schedule.js';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Each live volume in exactly one class, the first that fits: failing (its newest backup failed, or the
 * volume failed), unprotected (no completed backup, or no schedule switched on), overdue (an available
 * volume with no success by its schedule's slot plus the margin, the `volume_overdue` alert's rule),
 * protected. Volumes sharing a cron expression and zone share one parse.
 */
export function classifyVolumes(now: Date, rows: readonly LiveVolumeRow[]): Dashboard['volumes'] {
  const parsed = new Map<string, Schedule | undefined>();
  const counts = { total: rows.length, protected: 0, unprotected: 0, overdue: 0, failing: 0 };
  for (const row of rows) {
    if (row.state === 'failed' || row.last_attempt_state === 'failed') counts.failing++;
    else if (row.last_success_started_at === null || row.backup_cron === null || !row.schedule_enabled)
      counts.unprotected++;
    else if (row.state === 'available' && isOverdue(now, row, parsed)) counts.overdue++;
    else counts.protected++;
  }
  return counts;
}

/** The alerts loop's own rule (alert-rules.ts), so a volume counted overdue here has its alert open there. */
function isOverdue(now: Date, row: LiveVolumeRow, parsed: Map<string, Schedule | undefined>): boolean {
  const key = `${row.timezone}\n${row.backup_cron}`;
  if (!parsed.has(key)) parsed.set(key, parseOrUndefined(row.backup_cron!, row.timezone));
  const schedule = parsed.get(key);
  if (schedule === undefined) return false;
  const check = overdueCheck(schedule, row.last_success_started_at, row.schedule_since);
  return check !== null && now.getTime() > check.overdueAt.getTime();
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
