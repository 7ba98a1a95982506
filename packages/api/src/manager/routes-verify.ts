import { IdParams } from './primitives.js';
import { defineRoutes } from './route.js';
import { VerifyBackupQuery, VerifyStarted } from './verify.js';

/** Verify jobs: `POST /v1/backups/{id}/verify`, the per-target verify schedule (issue 10, point 5). */
export const verifyRoutes = defineRoutes({
  verifyBackup: {
    method: 'post',
    path: '/v1/backups/{id}/verify',
    summary:
      'Verify a backup on an agent (`?sample=P`: P % of its chunks); 409 with the running verify’s id while one runs',
    tag: 'backups',
    auth: 'admin',
    params: IdParams,
    query: VerifyBackupQuery,
    status: 202,
    response: VerifyStarted,
    errors: ['not_found', 'conflict', 'unavailable'],
  },
});
