import { ApiError, type gcRoutes } from '@stowage/api';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** Garbage collection of a target and the commit fence (routes-gc.ts in @stowage/api). */
export function gcHandlers(_deps: HandlerDeps): HandlersOf<typeof gcRoutes> {
  const notYet = async (): Promise<never> => {
    throw new ApiError('unavailable', 'garbage collection is being built');
  };
  return { startGc: notYet, listGcRuns: notYet, getGcRun: notYet, commitJob: notYet };
}
