import { defineRoutes } from './route.js';

/** Alerts the manager raises and resolves, and the webhooks told of each change (docs/alerts.md). */
export const alertRoutes = defineRoutes({});
