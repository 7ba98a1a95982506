import { ApiError } from '@stowage/api';
import { sql } from 'kysely';
import { dispatchQueuedBackups } from '../services/backups.js';
import type { ManagerContext } from '../services/context.js';
import { failStaleRuns, startGc } from '../services/gc.js';
import { gcDue } from './gc-schedule.js';

export interface GcLoopReport {
  readonly targets: number;
  readonly started: number;
  readonly staleFailed: number;
  readonly dispatched: number;
}

/**
 * One GC loop tick (every minute): fails runs whose manager went silent, starts each target's daily run when
 * `gcDue` says so (replicas race on the one-running-run index; the loser's 409 is skipped), and sends backups
 * left queued by a sweep whose end was not seen (its manager died).
 */
export async function gcOnce(ctx: ManagerContext): Promise<GcLoopReport> {
  const staleFailed = await failStaleRuns(ctx);
  const targets = await ctx.db
    .selectFrom('backup_target as t')
    .select([
      't.id',
      't.gc_enabled',
      't.gc_hour',
      't.timezone',
      't.created_at',
      (eb) =>
        eb
          .selectFrom('backup_gc_run as r')
          .select(sql<Date | null>`max(r.started_at)`.as('last'))
          .whereRef('r.backup_target_id', '=', 't.id')
          .where('r.trigger', '=', 'schedule')
          .as('last_scheduled_run'),
    ])
    .execute();
  let started = 0;
  const now = ctx.now();
  for (const t of targets) {
    const last = t.last_scheduled_run === null ? null : new Date(t.last_scheduled_run);
    const due = gcDue(now, {
      id: t.id,
      enabled: t.gc_enabled,
      gcHour: t.gc_hour,
      timeZone: t.timezone,
      since: t.created_at,
      lastScheduledRun: last,
    });
    if (!due) continue;
    try {
      const run = await startGc(ctx, t.id, { dryRun: false, trigger: 'schedule', lastScheduledRun: last });
      if (run !== undefined) started++;
    } catch (error) {
      if (error instanceof ApiError && error.code === 'conflict') continue;
      ctx.logger.warn('scheduled GC could not start', { target_id: t.id, error });
    }
  }
  const dispatched = await dispatchQueuedBackups(ctx);
  return { targets: targets.length, started, staleFailed, dispatched };
}
