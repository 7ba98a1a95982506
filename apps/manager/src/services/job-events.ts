import {
  ApiError,
  type BackupResult,
  type DamagedBackup,
  type JobEvent,
  type RestoreResult,
  type VerifyResult,
} from '@stowage/api';
import { recordHostContact } from '../db/hosts.js';
import { lockJob, TERMINAL_STATES } from '../db/jobs.js';
import { releaseLease } from '../db/leases.js';
import type { JobRow } from '../db/schema.js';
import { recordVerifyChecked, recordVerifyFailed } from '../db/verify.js';
import type { ManagerContext } from './context.js';
import { applyRetentionAfterBackup } from './retention.js';

/** The reason a job failed by the reconciler carries in its error's details: a true outcome arriving later
 * (the agent was only cut off) replaces that verdict. */
export const STALE_JOB_REASON = 'agent_silent';

function failedByReconciler(job: JobRow): boolean {
  const details = (job.error as { details?: { reason?: unknown } } | null)?.details;
  return job.state === 'failed' && details?.reason === STALE_JOB_REASON;
}

type Decision =
  | { apply: false; reason: 'finished' | 'stale' | 'mismatch' }
  | {
      apply: true;
      job: Record<string, unknown>;
      backup?: Record<string, unknown>;
      volume?: Record<string, unknown>;
      verify?: VerifyOutcome;
    };

/** What a finished verify job records: on its backup, and on every other backup it found damaged. */
export type VerifyOutcome =
  | {
      checked: true;
      at: Date;
      samplePercent: number;
      /** The verified backup's damaged chunk objects; null when it is healthy. */
      damagedChunks: number | null;
      /** Other backups naming a damaged chunk (the verified one left out). */
      others: DamagedBackup[];
    }
  | { checked: false; error: string };

/**
 * What one agent event does to a job (a pure function, so ordering is tested without a database):
 * - a job already finished keeps its outcome: a late progress event or a redelivered `finished` changes
 *   nothing (idempotent);
 * - an event whose `seq` is not above the last one applied is stale (the agent retries, and sends progress
 *   at most once a second, newest only): nothing changes, so nothing double-counts;
 * - otherwise the job takes the event's state and progress; a terminal state also settles the backup row
 *   (completed with the agent's figures, or failed with its cause) or the restore's new volume; a verify
 *   records what it found on the verified backup and marks every other backup it found damaged.
 */
export function decideJobEvent(job: JobRow, event: JobEvent, now: Date): Decision {
  const verdictOnly = failedByReconciler(job) && event.type === 'finished';
  if (TERMINAL_STATES.includes(job.state) && !verdictOnly) return { apply: false, reason: 'finished' };
  if (event.seq <= job.last_event_seq && !verdictOnly) return { apply: false, reason: 'stale' };
  if (event.job.kind !== job.kind) return { apply: false, reason: 'mismatch' };
  const reported = event.job;
  const terminal = TERMINAL_STATES.includes(reported.state);
  const jobUpdate: Record<string, unknown> = {
    state: reported.state,
    progress: JSON.stringify(reported.progress),
    last_event_seq: event.seq,
    last_event_at: now,
    started_at: reported.started_at === null ? job.started_at : new Date(reported.started_at),
  };
  if (!terminal) return { apply: true, job: jobUpdate };
  const finishedAt = reported.finished_at === null ? now : new Date(reported.finished_at);
  jobUpdate.finished_at = finishedAt;
  jobUpdate.error = reported.error === null ? null : JSON.stringify(reported.error);
  jobUpdate.result = reported.result === null ? null : JSON.stringify(reported.result);
  const succeeded = reported.state === 'succeeded' && reported.result !== null;
  const failure = JSON.stringify(
    reported.error ?? { code: 'internal', message: `the job ended ${reported.state}` },
  );
  if (job.kind === 'verify') {
    const result = reported.result as VerifyResult | null;
    const verify: VerifyOutcome =
      succeeded && result !== null
        ? {
            checked: true,
            at: finishedAt,
            samplePercent: result.sample_percent,
            damagedChunks: result.damaged
              ? (result.damaged_backups.find((b) => b.backup_id === job.backup_id)?.damaged_chunks ??
                result.missing_chunks + result.corrupt_chunks)
              : null,
            others: result.damaged_backups.filter((b) => b.backup_id !== job.backup_id),
          }
        : { checked: false, error: failure };
    return { apply: true, job: jobUpdate, verify };
  }
  if (job.kind === 'backup') {
    const result = reported.result as BackupResult | null;
    const backup =
      succeeded && result !== null
        ? {
            state: 'completed',
            finished_at: finishedAt,
            size: result.size,
            bytes_read: result.bytes_read,
            bytes_uploaded: result.bytes_uploaded,
            chunks: result.chunks,
            chunks_new: result.chunks_new,
            snapshot: result.snapshot,
            error: null,
          }
        : { state: 'failed', finished_at: finishedAt, error: failure };
    return { apply: true, job: jobUpdate, backup };
  }
  const result = reported.result as RestoreResult | null;
  const volume =
    succeeded && result !== null
      ? {
          state: 'available',
          locator: result.volume.locator,
          size: result.volume.size,
          error: null,
          updated_at: now,
        }
      : {
          state: 'failed',
          // A volume the agent left behind (an existing destination) keeps its locator; a removed one has none.
          locator:
            reported.destination?.state === 'failed' ? (reported.destination.volume?.locator ?? null) : null,
          error: failure,
          updated_at: now,
        };
  return { apply: true, job: jobUpdate, volume };
}

/**
 * Applies an agent's event in one transaction, the job row locked so that two deliveries of events of one
 * job (retries, two replicas) are applied one after the other. An agent may report only its own host's jobs.
 * An event of a job this manager does not know is acknowledged and dropped (logged): retrying would not help.
 */
export async function applyJobEvent(
  ctx: ManagerContext,
  event: JobEvent,
  sender: {
    hostId: string;
    /** `event` (default): the agent itself reported, so the host was heard from; `answered`: the manager
     * asked it; `none`: the reconciler's own verdict. */
    contact?: 'event' | 'answered' | 'none';
  },
): Promise<{ applied: boolean; reason?: string }> {
  const now = ctx.now();
  const outcome = await ctx.db.transaction().execute(async (trx) => {
    const job = await lockJob(trx, event.job.id);
    if (!job) return { applied: false, reason: 'unknown job' };
    if (job.host_id !== sender.hostId) {
      throw new ApiError('forbidden', `job ${job.id} does not belong to this agent's host`);
    }
    const decision = decideJobEvent(job, event, now);
    if (!decision.apply) return { applied: false, reason: decision.reason };
    // A true outcome replacing the reconciler's verdict settles rows that verdict already failed.
    const settled = failedByReconciler(job) ? (['running', 'failed'] as const) : (['running'] as const);
    await trx.updateTable('job').set(decision.job).where('id', '=', job.id).execute();
    if (job.kind === 'backup' && TERMINAL_STATES.includes(event.job.state)) {
      // The job is over: a sweep need not wait for it (beyond a granted commit's hold, see releaseLease).
      await releaseLease(trx, job.id, now, event.job.state === 'succeeded');
    }
    if (decision.backup && job.backup_id !== null) {
      await trx
        .updateTable('backup')
        .set(decision.backup)
        .where('id', '=', job.backup_id)
        .where('state', 'in', settled)
        .execute();
    }
    if (decision.verify && job.backup_id !== null) {
      const verified = { id: job.id, backup_id: job.backup_id };
      if (decision.verify.checked) await recordVerifyChecked(trx, verified, decision.verify);
      else await recordVerifyFailed(trx, verified, decision.verify.error);
    }
    if (decision.volume && job.volume_id !== null) {
      await trx
        .updateTable('volume')
        .set(decision.volume)
        .where('id', '=', job.volume_id)
        .where(
          'state',
          'in',
          settled.map((state) => (state === 'running' ? 'restoring' : state)),
        )
        .execute();
    }
    return { applied: true, job };
  });
  const contact = sender.contact ?? 'event';
  if (contact !== 'none') {
    await recordHostContact(ctx.db, sender.hostId, {
      ok: true,
      now,
      ...(contact === 'event' ? { agentId: event.agent_id } : {}),
    });
  }
  if (outcome.applied) ctx.jobChanged(event.job.id);
  const job = 'job' in outcome ? outcome.job : undefined;
  if (job?.kind === 'backup' && job.volume_id !== null && event.job.state === 'succeeded') {
    // Outside the event's transaction: pruning deletes manifests in the bucket.
    void applyRetentionAfterBackup(ctx, job.volume_id);
  }
  if (!outcome.applied)
    ctx.logger.debug('job event not applied', {
      job_id: event.job.id,
      seq: event.seq,
      reason: outcome.reason,
    });
  if (outcome.applied && TERMINAL_STATES.includes(event.job.state)) {
    ctx.logger.info('job finished', { job_id: event.job.id, state: event.job.state, host_id: sender.hostId });
    const { started_at, finished_at, created_at } = event.job;
    const seconds =
      (Date.parse(finished_at ?? now.toISOString()) - Date.parse(started_at ?? created_at)) / 1000;
    ctx.jobFinished?.(event.job.kind, event.job.state, Math.max(0, seconds));
  }
  return { applied: outcome.applied, ...(outcome.reason === undefined ? {} : { reason: outcome.reason }) };
}
