import { ApiError, type gcRoutes } from '@stowage/api';
import { COMMIT_VALID_MS, grantCommit } from '../db/leases.js';
import { requireJob } from '../services/jobs.js';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** Garbage collection of a target and the commit fence (routes-gc.ts in @stowage/api). */
export function gcHandlers(deps: HandlerDeps): HandlersOf<typeof gcRoutes> {
  const { ctx } = deps;
  const notYet = async (): Promise<never> => {
    throw new ApiError('unavailable', 'garbage collection is being built');
  };
  return {
    startGc: notYet,
    listGcRuns: notYet,
    getGcRun: notYet,
    commitJob: async ({ params }, caller) => {
      const job = await requireJob(ctx, params.id);
      const hostId = caller?.token.host_id ?? null;
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
