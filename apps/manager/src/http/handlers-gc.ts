import { ApiError, type gcRoutes } from '@stowage/api';
import { COMMIT_VALID_MS, grantCommit } from '../db/leases.js';
import { decodeCursor, toPage } from '../db/pagination.js';
import { getTarget } from '../db/targets.js';
import { gcRunJson, getGcRun, listGcRuns, startGc } from '../services/gc.js';
import { requireJob } from '../services/jobs.js';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** Garbage collection of a target and the commit fence (routes-gc.ts in @stowage/api). */
export function gcHandlers(deps: HandlerDeps): HandlersOf<typeof gcRoutes> {
  const { ctx } = deps;
  return {
    startGc: async ({ params, query }) => {
      const run = await startGc(ctx, params.id, { dryRun: query.dry_run, trigger: 'api' });
      if (!run) throw new ApiError('internal', 'the GC run was not started'); // only scheduled starts skip
      return gcRunJson(run);
    },
    listGcRuns: async ({ params, query }) => {
      if (!(await getTarget(ctx.db, params.id)))
        throw new ApiError('not_found', `no backup target ${params.id}`);
      const rows = await listGcRuns(ctx, params.id, {
        limit: query.limit,
        cursor: decodeCursor(query.cursor),
      });
      return toPage(rows, query.limit, (row) => ({ at: row.started_at, id: row.id }), gcRunJson);
    },
    getGcRun: async ({ params }) => gcRunJson(await getGcRun(ctx, params.id, params.run_id)),
    commitJob: async ({ params }, caller) => {
      const job = await requireJob(ctx, params.id);
      const hostId = caller?.kind === 'token' ? caller.token.host_id : null;
      if (hostId !== null && job.host_id !== hostId) {
        throw new ApiError('forbidden', `job ${job.id} does not belong to this agent's host`);
      }
      const lease = await grantCommit(ctx.db, job.id, ctx.now());
      if (!lease) {
        ctx.logger.warn('commit refused: the lease has ended', { job_id: job.id, state: job.state });
        throw new ApiError(
          'conflict',
          `job ${job.id} may not commit: its lease has ended (the job is ${job.state}); the backup is not committed`,
        );
      }
      ctx.logger.info('commit granted', { job_id: job.id, target_id: lease.backup_target_id });
      return { job_id: job.id, valid_for_ms: COMMIT_VALID_MS };
    },
  };
}
