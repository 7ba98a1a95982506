import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { WebhookDeliveryRow, WebhookRow } from './schema-alerts.js';

// Webhooks and their outbox (migration 0005). Deliveries are claimed row by row (FOR UPDATE SKIP LOCKED,
// then `next_attempt_at` moved past the request's timeout), so replicas never send one delivery at once.

export async function insertWebhook(
  db: Db,
  webhook: {
    id: string;
    url: string;
    description: string | null;
    events: readonly string[];
    secret: Uint8Array;
    now: Date;
  },
): Promise<WebhookRow> {
  return db
    .insertInto('webhook')
    .values({
      id: webhook.id,
      url: webhook.url,
      description: webhook.description,
      events: JSON.stringify(webhook.events),
      secret: webhook.secret,
      created_at: webhook.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function getWebhook(db: Db, id: string): Promise<WebhookRow | undefined> {
  return db.selectFrom('webhook').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listWebhooksPage(
  db: Db,
  page: { limit: number; cursor?: PageCursor },
): Promise<WebhookRow[]> {
  const query = db.selectFrom('webhook').selectAll();
  return newestFirstPage(query, 'created_at', 'id', page).execute();
}

/** Deletes a webhook and (cascade) its deliveries; false when there was none. */
export async function deleteWebhookRow(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('webhook').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Webhooks told of an event type (few rows: filtered here rather than with a JSON operator). */
export async function webhooksFor(db: Db, eventType: string): Promise<WebhookRow[]> {
  const rows = await db.selectFrom('webhook').selectAll().execute();
  return rows.filter((row) => row.events.includes(eventType));
}

/** Puts one event in the outbox of each webhook given, due now. */
export async function enqueueDeliveries(
  db: Db,
  deliveries: readonly { id: string; webhookId: string; eventId: string; eventType: string; body: string }[],
  now: Date,
): Promise<void> {
  if (deliveries.length === 0) return;
  await db
    .insertInto('webhook_delivery')
    .values(
      deliveries.map((d) => ({
        id: d.id,
        webhook_id: d.webhookId,
        event_id: d.eventId,
        event_type: d.eventType,
        body: d.body,
        state: 'pending' as const,
        next_attempt_at: now,
        created_at: now,
      })),
    )
    .execute();
}

/**
 * Claims up to `limit` due deliveries, oldest due first, by moving their `next_attempt_at` to `claimUntil`:
 * another replica skips the locked rows now and finds them not due afterwards. A claimer that dies leaves
 * them due again at `claimUntil` (so a delivery may be sent twice; its id lets the receiver tell).
 */
export async function claimDueDeliveries(
  db: Db,
  now: Date,
  claimUntil: Date,
  limit: number,
): Promise<(WebhookDeliveryRow & { url: string; secret: Uint8Array })[]> {
  return db.transaction().execute(async (trx) => {
    const due = await trx
      .selectFrom('webhook_delivery')
      .select('id')
      .where('state', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .orderBy('seq')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
    if (due.length === 0) return [];
    await trx
      .updateTable('webhook_delivery')
      .set({ next_attempt_at: claimUntil })
      .where(
        'id',
        'in',
        due.map((d) => d.id),
      )
      .execute();
    return trx
      .selectFrom('webhook_delivery as d')
      .innerJoin('webhook as w', 'w.id', 'd.webhook_id')
      .selectAll('d')
      .select(['w.url', 'w.secret'])
      .where(
        'd.id',
        'in',
        due.map((d) => d.id),
      )
      .orderBy('d.seq')
      .execute();
  });
}

export interface AttemptOutcome {
  readonly at: Date;
  readonly status: number | null;
  readonly error: string | null;
  /** delivered: a 2xx; pending: tried again at `nextAttemptAt`; failed: given up. */
  readonly state: 'delivered' | 'pending' | 'failed';
  readonly nextAttemptAt: Date;
}

/** Records one attempt on the delivery and, for the list's sake, on its webhook. */
export async function recordAttempt(
  db: Db,
  delivery: { id: string; webhookId: string },
  outcome: AttemptOutcome,
): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx
      .updateTable('webhook_delivery')
      .set((eb) => ({
        attempts: eb('attempts', '+', 1),
        state: outcome.state,
        last_attempt_at: outcome.at,
        last_status: outcome.status,
        last_error: outcome.error,
        next_attempt_at: outcome.nextAttemptAt,
        finished_at: outcome.state === 'pending' ? null : outcome.at,
      }))
      .where('id', '=', delivery.id)
      .execute();
    await recordWebhookAttempt(trx, delivery.webhookId, outcome);
  });
}

export async function recordWebhookAttempt(
  db: Db,
  webhookId: string,
  outcome: Pick<AttemptOutcome, 'at' | 'status' | 'error'>,
): Promise<void> {
  await db
    .updateTable('webhook')
    .set({ last_attempt_at: outcome.at, last_status: outcome.status, last_error: outcome.error })
    .where('id', '=', webhookId)
    .execute();
}

export async function getDelivery(db: Db, id: string): Promise<WebhookDeliveryRow | undefined> {
  return db.selectFrom('webhook_delivery').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Deletes delivered and given-up deliveries that finished before `before`; how many. */
export async function purgeFinishedDeliveries(db: Db, before: Date): Promise<number> {
  const result = await db
    .deleteFrom('webhook_delivery')
    .where('state', '<>', 'pending')
    .where('finished_at', '<', before)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
