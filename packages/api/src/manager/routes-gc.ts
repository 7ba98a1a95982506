import { CommitGrant, MANAGER_JOB_COMMIT_PATH } from '../agent.js';
import { GcRun, GcRunListQuery, GcRunPage, GcRunParams, StartGcQuery } from './gc.js';
import { IdParams } from './primitives.js';
import { defineRoutes } from './route.js';

/** Garbage collection of a target, and the fence a backup passes to commit (docs/operations.md#gc). */
export const gcRoutes = defineRoutes({
  startGc: {
    method: 'post',
    path: '/v1/backup_targets/{id}/gc',
    summary:
      'Collect garbage now (202 with the run; `?dry_run=true` plans only); one run per target at a time',
    tag: 'targets',
    auth: 'admin',
    params: IdParams,
    query: StartGcQuery,
    status: 202,
    response: GcRun,
    errors: ['not_found', 'conflict'],
  },
  listGcRuns: {
    method: 'get',
    path: '/v1/backup_targets/{id}/gc_runs',
    summary: "A target's GC runs, newest first",
    tag: 'targets',
    auth: 'admin',
    params: IdParams,
    query: GcRunListQuery,
    status: 200,
    response: GcRunPage,
    errors: ['not_found'],
  },
  getGcRun: {
    method: 'get',
    path: '/v1/backup_targets/{id}/gc_runs/{run_id}',
    summary: 'One GC run',
    tag: 'targets',
    auth: 'admin',
    params: GcRunParams,
    status: 200,
    response: GcRun,
    errors: ['not_found'],
  },
  commitJob: {
    method: 'post',
    path: MANAGER_JOB_COMMIT_PATH,
    summary: "An agent asks leave to write a fenced backup's manifest root (409: its lease has ended)",
    tag: 'agent',
    auth: 'agent',
    params: IdParams,
    status: 200,
    response: CommitGrant,
    errors: ['not_found', 'conflict'],
  },
});
