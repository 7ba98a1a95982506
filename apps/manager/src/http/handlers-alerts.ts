import type { alertRoutes } from '@stowage/api';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** Alerts and webhooks (routes-alerts.ts in @stowage/api). */
export function alertHandlers(_deps: HandlerDeps): HandlersOf<typeof alertRoutes> {
  return {};
}
