import type { verifyRoutes } from '@stowage/api';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** The routes of verify jobs (routes-verify.ts in @stowage/api). */
export function verifyHandlers(_deps: HandlerDeps): HandlersOf<typeof verifyRoutes> {
  return {};
}
