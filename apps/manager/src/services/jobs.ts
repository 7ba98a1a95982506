import { ApiError } from '@stowage/api';
import { finishJob, getJob, TERMINAL_STATES } from '../db/jobs.js';
import type { JobRow } from '../db/schema.js';
import type { ManagerContext } from './context.js';
import { callAgent, requireHost } from './hosts.js';

export async function requireJob(ctx: ManagerContext, id: string): Promise<JobRow> {
  const job = await getJob(ctx.db, id);
  if (!job) throw new ApiError('not_found', `no job ${id}`);
  return job;
}

/**
 * Asks the agent to cancel a job; the outcome arrives as the agent's `finished` event (a backup that has
 * begun committing is not cancelled: it completes). A job the agent no longer knows (it restarted and
 * reported nothing) is ended here as cancelled, with its backup failed. 409 for a finished job.
 */
export async function cancelJob(ctx: ManagerContext, id: string): Promise<JobRow> {
  const job = await requireJob(ctx, id);
  if (TERMINAL_STATES.includes(job.state))
    throw new ApiError('conflict', `job ${id} is already ${job.state}`);
  if (job.host_id === null) throw new ApiError('conflict', `job ${id} has no host to cancel it on`);
  const host = await requireHost(ctx, job.host_id);
  try {
    await callAgent(ctx, host, (agent) => agent.cancelJob(id));
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 'not_found')) throw error;
    const cause = { code: 'cancelled', message: 'cancelled; the agent no longer knew the job' };
    await ctx.db.transaction().execute(async (trx) => {
      await finishJob(trx, id, { state: 'cancelled', error: cause, now: ctx.now() });
      if (job.kind === 'backup' && job.backup_id !== null) {
        await trx
          .updateTable('backup')
          .set({ state: 'failed', error: JSON.stringify(cause), finished_at: ctx.now() })
          .where('id', '=', job.backup_id)
          .where('state', '=', 'running')
          .execute();
      }
      if (job.kind === 'restore' && job.volume_id !== null) {
        await trx
          .updateTable('volume')
          .set({ state: 'failed', error: JSON.stringify(cause), updated_at: ctx.now() })
          .where('id', '=', job.volume_id)
          .where('state', '=', 'restoring')
          .execute();
      }
    });
    ctx.jobChanged(id);
  }
  ctx.logger.info('job cancel requested', { job_id: id, host_id: host.id });
  return requireJob(ctx, id);
}
