import { defineRoutes } from './route.js';

/** What the console's dashboard shows at a glance, computed by the manager in one call. */
export const dashboardRoutes = defineRoutes({});
