import { Dashboard } from './dashboard.js';
import { defineRoutes } from './route.js';

/** What the console's dashboard shows at a glance, computed by the manager in one call. */
export const dashboardRoutes = defineRoutes({
  getDashboard: {
    method: 'get',
    path: '/v1/dashboard',
    summary:
      'Hosts up and down, volumes by protection, the last 24 h of backups, usage per target, open alerts',
    tag: 'dashboard',
    auth: 'admin',
    status: 200,
    response: Dashboard,
    errors: [],
  },
});
