import type { dashboardRoutes } from '@stowage/api';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** The dashboard's summary (routes-dashboard.ts in @stowage/api). */
export function dashboardHandlers(_deps: HandlerDeps): HandlersOf<typeof dashboardRoutes> {
  return {};
}
