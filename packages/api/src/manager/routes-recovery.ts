import { defineRoutes } from './route.js';

/** Disaster recovery: the index rebuild from a bucket and the import of a target (issue 10, point 7). */
export const recoveryRoutes = defineRoutes({});
