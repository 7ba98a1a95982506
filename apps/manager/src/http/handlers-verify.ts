import type { verifyRoutes } from '@stowage/api';
import { verifyNow } from '../services/verify.js';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';
import { backupJson, jobJson } from './representations.js';

/** The routes of verify jobs (routes-verify.ts in @stowage/api). */
export function verifyHandlers(deps: HandlerDeps): HandlersOf<typeof verifyRoutes> {
  const { ctx } = deps;
  return {
    verifyBackup: async ({ params, query }) => {
      const { job, backup } = await verifyNow(ctx, params.id, {
        samplePercent: query.sample,
        hostId: query.host_id,
      });
      return { job: jobJson(job), backup: backupJson(backup) };
    },
  };
}
