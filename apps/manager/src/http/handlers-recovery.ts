import type { recoveryRoutes } from '@stowage/api';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** The routes of disaster recovery (index rebuild, target import) (routes-recovery.ts in @stowage/api). */
export function recoveryHandlers(_deps: HandlerDeps): HandlersOf<typeof recoveryRoutes> {
  return {};
}
