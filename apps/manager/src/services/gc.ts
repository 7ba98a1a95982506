import { randomUUID } from 'node:crypto';
import { ApiError, type GcRun } from '@stowage/api';
import { sql } from 'kysely';
import { uniqueViolation } from '../db/conn.js';
import { newestFirstPage, type PageCursor } from '../db/pagination.js';
import type { GcRunRow } from '../db/schema-gc.js';
import { getTarget } from '../db/targets.js';
import { executeGcRun, GC_STALE_MS, type GcRunOptions, releaseTarget } from '../gc/run.js';
import type { ManagerContext } from './context.js';

interface InFlight {
  readonly done: Promise<void>;
  readonly abort: AbortController;
}
interface Registry {
  readonly runs: Map<string, InFlight>;
  /** Set once the manager stops: no run may start after `stopGcRuns` looked, or it would outlive the database. */
  closed: boolean;
}
/** Runs started by each manager of this process, so that a stopping manager can end them (and tests wait). */
const registries = new WeakMap<ManagerContext, Registry>();
function registryOf(ctx: ManagerContext): Registry {
  const registry = registries.get(ctx) ?? { runs: new Map<string, InFlight>(), closed: false };
  registries.set(ctx, registry);
  return registry;
}

/**
 * Starts a GC run of a target: its `running` row first — the partial unique index makes a second start, on
 * any replica, a 409 naming the running one — then the run itself in the background.
 */
export async function startGc(
  ctx: ManagerContext,
  targetId: string,
  how: {
    dryRun: boolean;
    trigger: 'schedule' | 'api';
    options?: GcRunOptions;
    /**
     * For the daily run: the start of the newest scheduled run the caller saw (null: none). The run is
     * started only if that is still the newest, checked under a per-target lock, so two replicas that both
     * found the target due start one run per window even if the first ended before the second looked.
     */
    lastScheduledRun?: Date | null;
  },
): Promise<GcRunRow | undefined> {
  const registry = registryOf(ctx);
  if (registry.closed) throw new ApiError('unavailable', 'the manager is stopping; start the GC run again');
  // Registered before its row exists: a manager stopping meanwhile waits for it (a row left `running` by a
  // run whose database closed under it would refuse every GC of the target until it went stale).
  const id = randomUUID();
  const abort = new AbortController();
  let settle!: () => void;
  registry.runs.set(id, { done: new Promise<void>((resolve) => (settle = resolve)), abort });
  const forget = () => {
    registry.runs.delete(id);
    settle();
  };
  let row: GcRunRow | undefined;
  try {
    row = await insertRun(ctx, targetId, id, how);
  } catch (error) {
    forget();
    throw error;
  }
  if (row === undefined) {
    forget(); // another replica started this window's run
    return undefined;
  }
  ctx.logger.info('GC run started', { gc_run_id: id, target_id: targetId, dry_run: how.dryRun });
  void executeGcRun(ctx, id, { ...how.options, signal: abort.signal })
    .catch((error: unknown) => ctx.logger.error('GC run crashed', { gc_run_id: id, error }))
    .finally(forget);
  return row;
}

/** The run's `running` row, or undefined when the daily window's run was started by another replica. */
async function insertRun(
  ctx: ManagerContext,
  targetId: string,
  id: string,
  how: { dryRun: boolean; trigger: 'schedule' | 'api'; lastScheduledRun?: Date | null },
): Promise<GcRunRow | undefined> {
  const target = await getTarget(ctx.db, targetId);
  if (!target) throw new ApiError('not_found', `no backup target ${targetId}`);
  await failStaleRuns(ctx, targetId);
  const now = ctx.now();
  try {
    return await ctx.db.transaction().execute(async (trx) => {
      if (how.lastScheduledRun !== undefined) {
        await sql`SELECT pg_advisory_xact_lock(hashtext(${`stowage gc ${target.id}`}))`.execute(trx);
        const newest = await trx
          .selectFrom('backup_gc_run')
          .select('started_at')
          .where('backup_target_id', '=', target.id)
          .where('trigger', '=', 'schedule')
          .orderBy('started_at', 'desc')
          .limit(1)
          .executeTakeFirst();
        if ((newest?.started_at.getTime() ?? null) !== (how.lastScheduledRun?.getTime() ?? null))
          return undefined;
      }
      return trx
        .insertInto('backup_gc_run')
        .values({
          id,
          backup_target_id: target.id,
          state: 'running',
          phase: 'mark',
          trigger: how.trigger,
          dry_run: how.dryRun,
          grace_seconds: target.gc_grace_seconds,
          cutoff: new Date(now.getTime() - target.gc_grace_seconds * 1000),
          started_at: now,
          heartbeat_at: now,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
  } catch (error) {
    if (uniqueViolation(error) === 'backup_gc_one_running') {
      const running = await ctx.db
        .selectFrom('backup_gc_run')
        .select('id')
        .where('backup_target_id', '=', target.id)
        .where('state', '=', 'running')
        .executeTakeFirst();
      throw new ApiError('conflict', `a GC of target ${target.id} is already running`, {
        gc_run_id: running?.id ?? null,
      });
    }
    throw error;
  }
}

/** Waits for this manager's runs (all, or one). */
export async function gcRunsSettled(ctx: ManagerContext, runId?: string): Promise<void> {
  const { runs } = registryOf(ctx);
  if (runId !== undefined) await runs.get(runId)?.done;
  else await Promise.all([...runs.values()].map((r) => r.done));
}

/** Ends this manager's runs (it is stopping): each fails, lets its target go and deletes nothing more. */
export async function stopGcRuns(ctx: ManagerContext): Promise<void> {
  const registry = registryOf(ctx);
  registry.closed = true;
  const runs = [...registry.runs.values()];
  for (const run of runs) run.abort.abort(new Error('the manager is stopping'));
  await Promise.all(runs.map((r) => r.done));
}

/**
 * Fails the runs whose replica went silent (a crash, a lost database connection) and lets their targets go,
 * so one dead manager cannot hold a target's backups queued. Safe against a run that is alive after all: it
 * checks its row before every delete (`executeGcRun`'s fence) and stops once it is no longer running.
 */
export async function failStaleRuns(ctx: ManagerContext, targetId?: string): Promise<number> {
  const staleBefore = new Date(ctx.now().getTime() - GC_STALE_MS);
  let query = ctx.db
    .updateTable('backup_gc_run')
    .set({
      state: 'failed',
      phase: 'done',
      finished_at: ctx.now(),
      error: JSON.stringify({
        code: 'unavailable',
        message: `the manager running it went silent for over ${GC_STALE_MS / 60_000} min; nothing more is deleted`,
      }),
    })
    .where('state', '=', 'running')
    .where('heartbeat_at', '<', staleBefore);
  if (targetId !== undefined) query = query.where('backup_target_id', '=', targetId);
  const failed = await query.returning(['id', 'backup_target_id']).execute();
  for (const run of failed) {
    await releaseTarget(ctx, run.backup_target_id, run.id);
    ctx.logger.warn('stale GC run failed', { gc_run_id: run.id, target_id: run.backup_target_id });
  }
  return failed.length;
}

export async function listGcRuns(
  ctx: ManagerContext,
  targetId: string,
  page: { limit: number; cursor?: PageCursor | undefined },
): Promise<GcRunRow[]> {
  const query = ctx.db.selectFrom('backup_gc_run').selectAll().where('backup_target_id', '=', targetId);
  return newestFirstPage(query, 'started_at', 'id', page).execute();
}

export async function getGcRun(ctx: ManagerContext, targetId: string, runId: string): Promise<GcRunRow> {
  const row = await ctx.db
    .selectFrom('backup_gc_run')
    .selectAll()
    .where('id', '=', runId)
    .where('backup_target_id', '=', targetId)
    .executeTakeFirst();
  if (!row) throw new ApiError('not_found', `no GC run ${runId} of target ${targetId}`);
  return row;
}

export function gcRunJson(row: GcRunRow): GcRun {
  return {
    id: row.id,
    backup_target_id: row.backup_target_id,
    state: row.state,
    phase: row.phase,
    trigger: row.trigger,
    dry_run: row.dry_run,
    grace_seconds: row.grace_seconds,
    cutoff: row.cutoff.toISOString(),
    started_at: row.started_at.toISOString(),
    finished_at: row.finished_at?.toISOString() ?? null,
    duration_seconds:
      row.finished_at === null ? null : (row.finished_at.getTime() - row.started_at.getTime()) / 1000,
    manifests: row.manifests,
    packs_listed: row.packs_listed,
    packs_live: row.packs_live,
    packs_deleted: row.packs_deleted,
    segments_listed: row.segments_listed,
    segments_live: row.segments_live,
    segments_deleted: row.segments_deleted,
    index_objects_listed: row.index_objects_listed,
    index_objects_deleted: row.index_objects_deleted,
    bytes_listed: row.bytes_listed,
    bytes_freed: row.bytes_freed,
    error: row.error as GcRun['error'],
  };
}
