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
import { decideSchedule, parseSchedule, type Schedule, ScheduleError } from '../loops/schedule.js';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** A slot the scheduler left unfired this long is overdue (it fires due volumes within a tick, ≤ 1 min). */
export const OVERDUE_MARGIN_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Each live volume in exactly one class, the first that fits: failing (its newest backup failed, or the
 * volume failed), unprotected (no completed backup, or no schedule switched on), overdue (an available
 * volume whose scheduler slot passed more than OVERDUE_MARGIN_MS ago without a backup starting, decided as
 * the scheduler decides), protected. Volumes sharing a cron expression and zone share one parse.
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

function isOverdue(now: Date, row: LiveVolumeRow, parsed: Map<string, Schedule | undefined>): boolean {
  const key = `${row.timezone}\n${row.backup_cron}`;
  if (!parsed.has(key)) parsed.set(key, parseOrUndefined(row.backup_cron!, row.timezone));
  const schedule = parsed.get(key);
  if (schedule === undefined) return false;
  const decision = decideSchedule(
    now,
    {
      id: row.id,
      cron: row.backup_cron,
      timeZone: row.timezone,
      enabled: row.schedule_enabled,
      scheduleSince: row.schedule_since,
      lastSuccessAt: row.last_success_started_at,
      lastAttemptAt: row.last_attempt_at,
      running: row.last_attempt_state === 'running',
    },
    schedule,
  );
  return (
    decision.status === 'due' &&
    decision.nextFireAt !== null &&
    now.getTime() - decision.nextFireAt.getTime() > OVERDUE_MARGIN_MS
  );
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
