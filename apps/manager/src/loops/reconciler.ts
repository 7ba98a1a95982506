import { ApiError, type Job, type JobEvent } from '@stowage/api';
import { TERMINAL_STATES } from '../db/jobs.js';
import { getLease, releaseLease } from '../db/leases.js';
import type { JobRow } from '../db/schema.js';
import { getTarget } from '../db/targets.js';
import type { ManagerContext } from '../services/context.js';
import { applyJobEvent, STALE_JOB_REASON } from '../services/job-events.js';
import { openTargetRepository } from '../targets/targets.js';

/**
 * The stale-job reconciler. An agent sends a job's progress at least every few seconds while it runs and
 * retries its final event until the manager takes it, so a job silent for `thresholdMs` has lost its agent
 * (dead host, lost network, a wiped state dir). For each such job, in order:
 * 1. the agent is asked about the job: if it answers, its answer is applied as an event (a running job is
 *    simply alive; a finished one is recorded) and nothing else happens;
 * 2. otherwise a backup whose manifest is in the bucket is recorded completed (from the manifest's totals:
 *    the agent committed it and died before reporting);
 * 3. otherwise the job fails, with an explanation, and so does its backup or its restore's new volume.
 * The decision of which jobs are stale is a pure function; the shell below owns the I/O.
 */

export const DEFAULT_STALE_JOB_MS = 10 * 60_000;

export function staleJobs(now: Date, jobs: readonly JobRow[], thresholdMs: number): JobRow[] {
  return jobs.filter((job) => {
    if (TERMINAL_STATES.includes(job.state)) return false;
    const heard = job.last_event_at ?? job.created_at;
    return now.getTime() - heard.getTime() > thresholdMs;
  });
}

export interface ReconcileReport {
  readonly checked: number;
  readonly alive: number;
  readonly completed: number;
  readonly failed: number;
}

export async function reconcileOnce(
  ctx: ManagerContext,
  thresholdMs = DEFAULT_STALE_JOB_MS,
): Promise<ReconcileReport> {
  const now = ctx.now();
  const candidates = await ctx.db
    .selectFrom('job')
    .selectAll()
    .where('state', 'in', ['queued', 'running'])
    .where((eb) =>
      eb(eb.fn.coalesce('last_event_at', 'created_at'), '<', new Date(now.getTime() - thresholdMs)),
    )
    .limit(500)
    .execute();
  const report = { checked: 0, alive: 0, completed: 0, failed: 0 };
  for (const job of staleJobs(now, candidates, thresholdMs)) {
    report.checked++;
    const outcome = await reconcileJob(ctx, job).catch((error: unknown) => {
      ctx.logger.error('reconciling a job failed', { job_id: job.id, error });
      return undefined;
    });
    if (outcome !== undefined) report[outcome]++;
  }
  return report;
}

async function reconcileJob(ctx: ManagerContext, job: JobRow): Promise<'alive' | 'completed' | 'failed'> {
  const log = { job_id: job.id, host_id: job.host_id, volume_id: job.volume_id, backup_id: job.backup_id };
  if (job.kind === 'backup') {
    const lease = await getLease(ctx.db, job.id);
    // Queued without a lease: waiting for its target's sweep to end, on the manager, not on an agent.
    if (lease === undefined && job.state === 'queued') return 'alive';
    // Let commit: its root may still land until the hold ends, so no verdict before then.
    if (lease?.commit_hold_until && lease.commit_hold_until > ctx.now()) return 'alive';
  }
  const host =
    job.host_id === null
      ? undefined
      : await ctx.db.selectFrom('host').selectAll().where('id', '=', job.host_id).executeTakeFirst();
  let agentJob: Job | undefined;
  let why = 'the job has no host';
  if (host !== undefined) {
    try {
      agentJob = await ctx.agentFor(host).getJob(job.id);
    } catch (error) {
      why =
        error instanceof ApiError && error.code === 'not_found'
          ? `the agent at ${host.url} no longer knows the job`
          : error instanceof Error
            ? error.message
            : String(error);
    }
  }
  if (agentJob !== undefined) {
    await applyJobEvent(ctx, syntheticEvent(job, agentJob, ctx.now()), {
      hostId: job.host_id!,
      contact: 'answered',
    });
    ctx.logger.info('stale job: its agent answered', { ...log, state: agentJob.state });
    if (!TERMINAL_STATES.includes(agentJob.state)) {
      // Alive but quiet (its events are not getting through): heard from now, so not retried every minute.
      await ctx.db.updateTable('job').set({ last_event_at: ctx.now() }).where('id', '=', job.id).execute();
      return 'alive';
    }
    return agentJob.state === 'succeeded' ? 'completed' : 'failed';
  }
  if (job.kind === 'backup' && job.backup_id !== null && (await recordCommittedBackup(ctx, job))) {
    ctx.logger.warn('stale job: its manifest is committed, recorded completed', log);
    return 'completed';
  }
  const silentFor = Math.round(
    (ctx.now().getTime() - (job.last_event_at ?? job.created_at).getTime()) / 60_000,
  );
  const error = {
    code: 'unavailable' as const,
    message: `no word from the agent for ${silentFor} min and ${why}: marked failed by the reconciler`,
    details: { reason: STALE_JOB_REASON },
  };
  await applyJobEvent(ctx, syntheticEvent(job, { state: 'failed', error }, ctx.now()), {
    hostId: job.host_id ?? '',
    contact: 'none',
  }).catch(async () => {
    // No host to attribute it to: end it directly.
    await ctx.db
      .updateTable('job')
      .set({ state: 'failed', error: JSON.stringify(error), finished_at: ctx.now() })
      .where('id', '=', job.id)
      .execute();
    await releaseLease(ctx.db, job.id, ctx.now(), false);
  });
  ctx.logger.warn('stale job failed', { ...log, reason: why });
  return 'failed';
}

/** Looks for the backup's manifest in its target; when it is there, the backup is recorded completed. */
async function recordCommittedBackup(ctx: ManagerContext, job: JobRow): Promise<boolean> {
  const backup = await ctx.db
    .selectFrom('backup')
    .selectAll()
    .where('id', '=', job.backup_id!)
    .executeTakeFirst();
  if (backup?.state !== 'running') return false;
  const target = await getTarget(ctx.db, backup.backup_target_id);
  if (!target) return false;
  const { repository, close } = await openTargetRepository(ctx, target);
  try {
    if ((await repository.store.head(backup.manifest_key)) === undefined) return false;
    const manifest = await repository.loadManifest({
      volumeId: backup.volume_id,
      backupId: backup.id,
      manifestKey: backup.manifest_key,
    });
    await ctx.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('backup')
        .set({
          state: 'completed',
          finished_at: manifest.createdAt,
          size: manifest.volumeSize,
          chunks: manifest.chunkCount,
          error: null,
        })
        .where('id', '=', backup.id)
        .where('state', '=', 'running')
        .execute();
      await trx
        .updateTable('job')
        .set({ state: 'succeeded', finished_at: ctx.now(), error: null })
        .where('id', '=', job.id)
        .where('state', 'in', ['queued', 'running'])
        .execute();
      await releaseLease(trx, job.id, ctx.now(), true);
    });
    ctx.jobChanged(job.id);
    return true;
  } finally {
    close();
  }
}

/** The agent's view (or the reconciler's verdict) as an event one past the last applied, so the usual
 * order-safe path applies it. */
function syntheticEvent(job: JobRow, reported: Partial<Job> & Pick<Job, 'state'>, now: Date): JobEvent {
  const at = now.toISOString();
  const terminal = TERMINAL_STATES.includes(reported.state);
  return {
    event_id: `${job.id}:${job.last_event_seq + 1}`,
    agent_id: 'reconciler',
    seq: job.last_event_seq + 1,
    type: terminal ? 'finished' : 'progress',
    at,
    job: {
      id: job.id,
      kind: job.kind,
      created_at: job.created_at.toISOString(),
      started_at: job.started_at?.toISOString() ?? null,
      finished_at: terminal ? at : null,
      progress: job.progress as Job['progress'],
      error: null,
      result: null,
      destination: null,
      ...reported,
    },
  };
}
