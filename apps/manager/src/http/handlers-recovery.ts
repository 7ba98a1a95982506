import type { recoveryRoutes } from '@stowage/api';
import { rebuildIndex } from '../services/recovery.js';
import { locationOfRequest } from '../targets/locations.js';
import { importTarget, scheduleSettingsOf } from '../targets/targets.js';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';
import { targetJson } from './representations.js';

/** The routes of disaster recovery (index rebuild, target import) (routes-recovery.ts in @stowage/api). */
export function recoveryHandlers(deps: HandlerDeps): HandlersOf<typeof recoveryRoutes> {
  const { ctx } = deps;
  return {
    importTarget: async ({ body }) => {
      const row = await importTarget(ctx, {
        name: body.name,
        location: locationOfRequest(body),
        credentials: body.kind === 's3' ? body.credentials : undefined,
        passphrase: body.passphrase,
        settings: scheduleSettingsOf(body),
      });
      ctx.logger.info('target imported', { target_id: row.id, repository_id: row.repository_id });
      return { target: targetJson(row) };
    },
    rebuildIndex: async ({ params, body }, _caller, c) =>
      rebuildIndex(ctx, params.id, {
        startAfter: body.start_after,
        limit: body.limit,
        volumeBackend: body.volume_backend,
        signal: c.req.raw.signal,
      }),
  };
}
