import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { JobKind, JobRow, JobState, NewJob } from './schema.js';

export interface JobFilter {
  state?: JobState;
  kind?: JobKind;
  volumeId?: string;
  hostId?: string;
}

export const TERMINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export async function insertJob(db: Db, job: NewJob): Promise<JobRow> {
  return db.insertInto('job').values(job).returningAll().executeTakeFirstOrThrow();
}

export async function getJob(db: Db, id: string): Promise<JobRow | undefined> {
  return db.selectFrom('job').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The job row locked for the rest of the transaction: events of one job are applied one at a time. */
export async function lockJob(db: Db, id: string): Promise<JobRow | undefined> {
  return db.selectFrom('job').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

export async function listJobs(
  db: Db,
  filter: JobFilter,
  page: { limit: number; cursor?: PageCursor },
): Promise<JobRow[]> {
  let query = db.selectFrom('job').selectAll();
  if (filter.state !== undefined) query = query.where('state', '=', filter.state);
  if (filter.kind !== undefined) query = query.where('kind', '=', filter.kind);
  if (filter.volumeId !== undefined) query = query.where('volume_id', '=', filter.volumeId);
  if (filter.hostId !== undefined) query = query.where('host_id', '=', filter.hostId);
  return newestFirstPage(query, 'created_at', 'id', page).execute();
}

/**
 * Ends a job that is not finished yet (a failed start, a cancel the agent could not be told of). A job
 * already finished keeps its outcome: returns undefined then.
 */
export async function finishJob(
  db: Db,
  id: string,
  outcome: { state: 'failed' | 'cancelled' | 'succeeded'; error: unknown | null; now: Date },
): Promise<JobRow | undefined> {
  return db
    .updateTable('job')
    .set({
      state: outcome.state,
      error: outcome.error === null ? null : JSON.stringify(outcome.error),
      finished_at: outcome.now,
    })
    .where('id', '=', id)
    .where('state', 'not in', TERMINAL_STATES)
    .returningAll()
    .executeTakeFirst();
}
