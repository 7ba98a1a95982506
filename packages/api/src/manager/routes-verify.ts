import { defineRoutes } from './route.js';

/** Verify jobs: `POST /v1/backups/{id}/verify`, the per-target verify schedule (issue 10, point 5). */
export const verifyRoutes = defineRoutes({});
