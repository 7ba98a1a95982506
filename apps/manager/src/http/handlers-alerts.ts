import { ApiError, type alertRoutes } from '@stowage/api';
import { listAlertsPage } from '../db/alerts.js';
import { decodeCursor, toPage } from '../db/pagination.js';
import { deleteWebhookRow, listWebhooksPage } from '../db/webhooks.js';
import { acknowledgeAlert, alertJson, requireAlert } from '../services/alerts.js';
import { createWebhook, testWebhook, webhookJson } from '../services/webhooks.js';
import type { Caller, HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

/** Who acknowledged: a signed-in user's name, or `token <name>`. Read structurally so that it holds for a
 * caller that is a token or a user. */
function callerName(caller: Caller | undefined): string {
  const who = caller as { user?: { name: string }; token?: { name: string } } | undefined;
  if (who?.user !== undefined) return who.user.name;
  if (who?.token !== undefined) return `token ${who.token.name}`;
  return 'unknown';
}

/** Alerts and webhooks (routes-alerts.ts in @stowage/api). */
export function alertHandlers(deps: HandlerDeps): HandlersOf<typeof alertRoutes> {
  const { ctx } = deps;
  return {
    listAlerts: async ({ query }) => {
      const rows = await listAlertsPage(
        ctx.db,
        { state: query.state, ...(query.kind === undefined ? {} : { kind: query.kind }) },
        { limit: query.limit, cursor: decodeCursor(query.cursor) },
      );
      return toPage(rows, query.limit, (row) => ({ at: row.opened_at, id: row.id }), alertJson);
    },
    getAlert: async ({ params }) => alertJson(await requireAlert(ctx, params.id)),
    acknowledgeAlert: async ({ params }, caller) =>
      alertJson(await acknowledgeAlert(ctx, params.id, callerName(caller))),
    createWebhook: async ({ body }) => {
      const { row, secret } = await createWebhook(ctx, body);
      return { webhook: webhookJson(row), secret };
    },
    listWebhooks: async ({ query }) => {
      const rows = await listWebhooksPage(ctx.db, { limit: query.limit, cursor: decodeCursor(query.cursor) });
      return toPage(rows, query.limit, (row) => ({ at: row.created_at, id: row.id }), webhookJson);
    },
    deleteWebhook: async ({ params }) => {
      if (!(await deleteWebhookRow(ctx.db, params.id))) {
        throw new ApiError('not_found', `no webhook ${params.id}`);
      }
      ctx.logger.info('webhook deleted', { webhook_id: params.id });
      return undefined;
    },
    testWebhook: async ({ params }) => testWebhook(ctx, params.id),
  };
}
