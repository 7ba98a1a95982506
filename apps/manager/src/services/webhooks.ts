import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import {
  ApiError,
  type CreateWebhookRequest,
  WEBHOOK_EVENT_TYPES,
  type Webhook,
  type WebhookTestResult,
} from '@stowage/api';
import { describeFetchError } from '../agents/agent-client.js';
import type { WebhookRow } from '../db/schema-alerts.js';
import {
  claimDueDeliveries,
  getWebhook,
  insertWebhook,
  recordAttempt,
  recordWebhookAttempt,
} from '../db/webhooks.js';
import { afterFailedAttempt } from '../loops/alert-rules.js';
import { secretPlace } from '../secrets/envelope.js';
import { eventBody } from './alerts.js';
import type { ManagerContext } from './context.js';

/**
 * Webhooks: signed JSON POSTs of alert changes (docs/manager.md#webhooks). The signing secret is made here,
 * returned once and kept only as an envelope under the master key; it is never logged, listed or put in a
 * delivery row.
 */

export const WEBHOOK_SECRET_PREFIX = 'whsec_';
/** A receiver has this long to answer; its answer's body is never read. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** Deliveries in flight at once per manager (the rest wait for the next tick). */
export const WEBHOOK_CONCURRENCY = 4;
/** Deliveries claimed per tick. */
const DELIVERIES_PER_TICK = 50;

function secretOf(ctx: Pick<ManagerContext, 'secrets'>, row: { id: string; secret: Uint8Array }): string {
  return ctx.secrets.openText(row.secret, secretPlace('webhook', 'secret', row.id));
}

/** `sha256=` and the hex HMAC-SHA256, under the secret (its UTF-8 bytes, prefix included), of
 * `<timestamp>.<body>`: what `x-stowage-signature` carries. */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex')}`;
}

export function webhookJson(row: WebhookRow): Webhook {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    events: row.events as Webhook['events'],
    created_at: row.created_at.toISOString(),
    last_attempt_at: row.last_attempt_at?.toISOString() ?? null,
    last_status: row.last_status,
    last_error: row.last_error,
  };
}

export async function createWebhook(
  ctx: ManagerContext,
  request: CreateWebhookRequest,
): Promise<{ row: WebhookRow; secret: string }> {
  const id = randomUUID();
  const secret = `${WEBHOOK_SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
  const row = await insertWebhook(ctx.db, {
    id,
    url: request.url,
    description: request.description ?? null,
    events: request.events ?? WEBHOOK_EVENT_TYPES,
    secret: ctx.secrets.sealText(secret, secretPlace('webhook', 'secret', id)),
    now: ctx.now(),
  });
  ctx.logger.info('webhook created', { webhook_id: id, events: row.events });
  return { row, secret };
}

export async function requireWebhook(ctx: ManagerContext, id: string): Promise<WebhookRow> {
  const row = await getWebhook(ctx.db, id);
  if (!row) throw new ApiError('not_found', `no webhook ${id}`);
  return row;
}

export interface PostOptions {
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

interface PostOutcome {
  readonly ok: boolean;
  readonly status: number | null;
  readonly error: string | null;
}

/**
 * One POST of an event. Redirects are not followed (a redirect is a failure naming where it pointed: the
 * receiver's URL is what was configured, and following would resend a signed body elsewhere); the answer's
 * body is discarded unread.
 */
async function postEvent(
  delivery: { url: string; secret: string; deliveryId: string; eventType: string; body: string; at: Date },
  options: PostOptions,
): Promise<PostOutcome> {
  const timestamp = Math.floor(delivery.at.getTime() / 1000);
  try {
    const response = await (options.fetch ?? fetch)(delivery.url, {
      method: 'POST',
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs ?? WEBHOOK_TIMEOUT_MS),
      headers: {
        'content-type': 'application/json',
        'user-agent': 'stowage-manager',
        'x-stowage-event': delivery.eventType,
        'x-stowage-delivery': delivery.deliveryId,
        'x-stowage-timestamp': String(timestamp),
        'x-stowage-signature': signWebhook(delivery.secret, timestamp, delivery.body),
      },
      body: delivery.body,
    });
    await response.body?.cancel().catch(() => {});
    if (response.status >= 200 && response.status < 300)
      return { ok: true, status: response.status, error: null };
    const location = response.headers.get('location');
    const error =
      response.status >= 300 && response.status < 400
        ? `answered ${response.status}, a redirect${location ? ` to ${location}` : ''}, which is not followed`
        : `answered ${response.status}`;
    return { ok: false, status: response.status, error };
  } catch (error) {
    return { ok: false, status: null, error: describeFetchError(error) };
  }
}

export interface DeliveryReport {
  readonly attempted: number;
  readonly delivered: number;
  readonly retrying: number;
  readonly failed: number;
}

/**
 * Sends the outbox's due deliveries, at most `WEBHOOK_CONCURRENCY` at once. Each is claimed first (so a
 * replica ticking alongside takes others), then its outcome recorded: delivered on a 2xx, otherwise retried
 * with backoff (`afterFailedAttempt`) or, a day on, recorded `failed`.
 */
export async function deliverDue(ctx: ManagerContext, options: PostOptions = {}): Promise<DeliveryReport> {
  const now = ctx.now();
  const timeoutMs = options.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  // Past every request of the batch, queued behind the concurrency limit: then another replica may try.
  const claimUntil = new Date(
    now.getTime() + Math.ceil(DELIVERIES_PER_TICK / WEBHOOK_CONCURRENCY) * timeoutMs + 60_000,
  );
  const claimed = await claimDueDeliveries(ctx.db, now, claimUntil, DELIVERIES_PER_TICK);
  const report = { attempted: 0, delivered: 0, retrying: 0, failed: 0 };
  let next = 0;
  const worker = async () => {
    while (next < claimed.length) {
      const delivery = claimed[next++]!;
      const at = ctx.now();
      let secret: string | undefined;
      try {
        secret = secretOf(ctx, { id: delivery.webhook_id, secret: delivery.secret });
      } catch {
        // Another master key, or an altered row: nothing can be signed, so nothing is sent.
      }
      const outcome =
        secret === undefined
          ? { ok: false, status: null, error: 'its signing secret does not open with this master key' }
          : await postEvent(
              {
                url: delivery.url,
                secret,
                deliveryId: delivery.id,
                eventType: delivery.event_type,
                body: delivery.body,
                at,
              },
              options,
            );
      report.attempted++;
      const after = outcome.ok
        ? { state: 'delivered' as const, nextAttemptAt: at }
        : afterFailedAttempt(at, delivery);
      await recordAttempt(
        ctx.db,
        { id: delivery.id, webhookId: delivery.webhook_id },
        { at, status: outcome.status, error: outcome.error, ...after },
      );
      const log = {
        delivery_id: delivery.id,
        webhook_id: delivery.webhook_id,
        event: delivery.event_type,
        status: outcome.status,
      };
      if (after.state === 'delivered') report.delivered++;
      else if (after.state === 'pending') {
        report.retrying++;
        ctx.logger.warn('webhook delivery failed, will retry', {
          ...log,
          error: outcome.error,
          next_attempt_at: after.nextAttemptAt.toISOString(),
        });
      } else {
        report.failed++;
        ctx.logger.error('webhook delivery given up', { ...log, error: outcome.error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(WEBHOOK_CONCURRENCY, claimed.length) }, worker));
  return report;
}

/** `POST /v1/webhooks/{id}/test`: a `webhook.test` event sent now, outside the outbox (never retried). */
export async function testWebhook(
  ctx: ManagerContext,
  id: string,
  options: PostOptions = {},
): Promise<WebhookTestResult> {
  const row = await requireWebhook(ctx, id);
  const at = ctx.now();
  const deliveryId = randomUUID();
  const body = eventBody({ id: randomUUID(), type: 'webhook.test', at: at.toISOString(), alert: null });
  const started = performance.now();
  const outcome = await postEvent(
    { url: row.url, secret: secretOf(ctx, row), deliveryId, eventType: 'webhook.test', body, at },
    options,
  );
  const durationMs = Math.round(performance.now() - started);
  await recordWebhookAttempt(ctx.db, row.id, { at, status: outcome.status, error: outcome.error });
  ctx.logger.info('webhook tested', { webhook_id: row.id, status: outcome.status, error: outcome.error });
  return { ...outcome, duration_ms: durationMs, delivery_id: deliveryId };
}
