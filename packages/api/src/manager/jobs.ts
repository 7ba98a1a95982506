import { z } from 'zod';
import { JOB_KINDS, JobProgress, JobState } from '../agent.js';
import { ApiErrorBody } from '../errors.js';
import { ListQuery, Page, Timestamp, Uuid } from './primitives.js';

/**
 * A job as the manager records it: the agent's job (agent.ts `Job`) seen from the inventory, with the
 * volume, backup and host it concerns. `progress` and `last_event_at` come from the agent's job events; a
 * job whose `last_event_at` is too old is what the reconciler looks for.
 *
 * Live stream: `GET /v1/jobs/{id}/events` answers `text/event-stream` and sends, at once and then on every
 * change, one event `event: job` whose `data:` is one ManagedJob as JSON on one line; the server closes the
 * stream after it sent a terminal state (`succeeded`, `failed`, `cancelled`), at once if the job already had
 * one. Comment lines (`: keep-alive`) may come between events. See sse.ts.
 */
export const JobKind = z.enum(JOB_KINDS);
export type JobKind = z.infer<typeof JobKind>;

export const ManagedJob = z.strictObject({
  id: Uuid,
  kind: JobKind,
  state: JobState,
  host_id: Uuid.nullable(),
  volume_id: Uuid.nullable(),
  backup_id: Uuid.nullable(),
  created_at: Timestamp,
  started_at: Timestamp.nullable(),
  finished_at: Timestamp.nullable(),
  last_event_at: Timestamp.nullable(),
  progress: JobProgress,
  /** Why it failed or was cancelled (the agent's cause, or the manager's when the agent was unreachable). */
  error: ApiErrorBody.nullable(),
});
export type ManagedJob = z.infer<typeof ManagedJob>;
export const ManagedJobPage = Page(ManagedJob);

export const JobListQuery = ListQuery.extend({
  state: JobState.optional(),
  kind: JobKind.optional(),
  volume_id: Uuid.optional(),
  host_id: Uuid.optional(),
});
export type JobListQuery = z.infer<typeof JobListQuery>;

/** The SSE event name of `GET /v1/jobs/{id}/events`. */
export const JOB_SSE_EVENT = 'job';
