import type { Dashboard, DashboardTarget, dashboardRoutes } from '@stowage/api';
import {
  backupsSince,
  hostCounts,
  openAlertCount,
  type TargetUsageRow,
  targetUsageRows,
  unfinishedJobCounts,
  volumeClassCounts,
} from '../db/dashboard.js';
import { scheduledVolumes } from '../db/volumes.js';
import { decideSchedule, parseSchedule, type Schedule, ScheduleError } from '../loops/schedule.js';
import { scheduledVolume } from '../services/schedules.js';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** A slot the scheduler left unfired this long is overdue (it fires due volumes within a tick, ≤ 1 min). */
export const OVERDUE_MARGIN_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** The dashboard's summary (routes-dashboard.ts in @stowage/api). */
export function dashboardHandlers(deps: HandlerDeps): HandlersOf<typeof dashboardRoutes> {
  const { ctx } = deps;
  return {
    getDashboard: async (): Promise<Dashboard> => {
      const now = ctx.now();
      const [hosts, classes, scheduled, backups, jobs, targets, alerts] = await Promise.all([
        hostCounts(ctx.db),
        volumeClassCounts(ctx.db),
        scheduledVolumes(ctx.db),
        backupsSince(ctx.db, new Date(now.getTime() - DAY_MS)),
        unfinishedJobCounts(ctx.db),
        targetUsageRows(ctx.db),
        openAlertCount(ctx.db),
      ]);
      // Overdue only among volumes not already failing or unprotected (each volume is in one class).
      // Volumes sharing a cron expression and zone share one parse, as in the scheduler's planSchedule.
      const parsed = new Map<string, Schedule | undefined>();
      let overdue = 0;
      for (const row of scheduled) {
        if (row.last_attempt_state === 'failed' || row.last_success_started_at === null) continue;
        const key = `${row.timezone}\n${row.backup_cron}`;
        if (!parsed.has(key)) parsed.set(key, parseOrUndefined(row.backup_cron!, row.timezone));
        const schedule = parsed.get(key);
        if (schedule === undefined) continue;
        const decision = decideSchedule(now, scheduledVolume(row), schedule);
        const late = decision.status === 'due' && decision.nextFireAt !== null;
        if (late && now.getTime() - decision.nextFireAt!.getTime() > OVERDUE_MARGIN_MS) overdue++;
      }
      return {
        generated_at: now.toISOString(),
        hosts,
        volumes: {
          total: classes.total,
          failing: classes.failing,
          unprotected: classes.unprotected,
          overdue,
          protected: Math.max(0, classes.total - classes.failing - classes.unprotected - overdue),
        },
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
