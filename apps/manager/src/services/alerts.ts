import { randomUUID } from 'node:crypto';
import { type Alert, ApiError, type WebhookEvent, type WebhookEventType } from '@stowage/api';
import { acknowledgeAlertRow, getAlert, raiseAlert, resolveAlert, touchAlert } from '../db/alerts.js';
import type { Db } from '../db/conn.js';
import type { AlertRow } from '../db/schema-alerts.js';
import { enqueueDeliveries, webhooksFor } from '../db/webhooks.js';
import type { AlertPlan } from '../loops/alert-rules.js';
import type { ManagerContext } from './context.js';

/** An alert as the API and the webhooks show it. */
export function alertJson(row: AlertRow): Alert {
  const iso = (d: Date | null) => (d === null ? null : d.toISOString());
  return {
    id: row.id,
    kind: row.kind,
    severity: row.severity,
    state: row.resolved_at === null ? 'open' : 'resolved',
    message: row.message,
    volume_id: row.subject.volume_id,
    host_id: row.subject.host_id,
    backup_target_id: row.subject.backup_target_id,
    backup_id: row.subject.backup_id,
    gc_run_id: row.subject.gc_run_id,
    job_id: row.subject.job_id,
    opened_at: row.opened_at.toISOString(),
    last_seen_at: row.last_seen_at.toISOString(),
    resolved_at: iso(row.resolved_at),
    acknowledged_at: iso(row.acknowledged_at),
    acknowledged_by: row.acknowledged_by,
  };
}

/** The JSON body of one event, exactly as it is sent and signed. */
export function eventBody(event: WebhookEvent): string {
  return JSON.stringify(event);
}

/** Puts an alert's change in the outbox of every webhook told of its type, in the caller's transaction. */
export async function announce(db: Db, type: WebhookEventType, alert: AlertRow, now: Date): Promise<number> {
  const hooks = await webhooksFor(db, type);
  if (hooks.length === 0) return 0;
  const eventId = randomUUID();
  const body = eventBody({ id: eventId, type, at: now.toISOString(), alert: alertJson(alert) });
  await enqueueDeliveries(
    db,
    hooks.map((hook) => ({ id: randomUUID(), webhookId: hook.id, eventId, eventType: type, body })),
    now,
  );
  return hooks.length;
}

export interface AppliedPlan {
  readonly opened: number;
  readonly resolved: number;
  readonly touched: number;
}

/**
 * Writes a plan: each opening and each resolution in a transaction with its outbox rows, so a change is
 * never told twice or lost. Another replica may have raised or resolved the same alert meanwhile: then the
 * statement changes nothing here and nothing is announced (the other replica did).
 */
export async function applyAlertPlan(ctx: ManagerContext, plan: AlertPlan): Promise<AppliedPlan> {
  const now = ctx.now();
  let opened = 0;
  let resolved = 0;
  for (const condition of plan.raise) {
    const row = await ctx.db.transaction().execute(async (trx) => {
      const raised = await raiseAlert(trx, { ...condition, id: randomUUID(), now });
      if (raised !== undefined) await announce(trx, 'alert.opened', raised, now);
      return raised;
    });
    if (row === undefined) continue;
    opened++;
    ctx.logger.warn('alert opened', { alert_id: row.id, kind: row.kind, message: row.message });
  }
  for (const { alert, condition } of plan.touch) await touchAlert(ctx.db, alert.id, condition, now);
  for (const alert of plan.resolve) {
    const row = await ctx.db.transaction().execute(async (trx) => {
      const done = await resolveAlert(trx, alert.id, now);
      if (done !== undefined) await announce(trx, 'alert.resolved', done, now);
      return done;
    });
    if (row === undefined) continue;
    resolved++;
    ctx.logger.info('alert resolved', { alert_id: row.id, kind: row.kind });
  }
  return { opened, resolved, touched: plan.touch.length };
}

export async function requireAlert(ctx: ManagerContext, id: string): Promise<AlertRow> {
  const row = await getAlert(ctx.db, id);
  if (!row) throw new ApiError('not_found', `no alert ${id}`);
  return row;
}

/** Acknowledges an open alert once (a second call answers the first acknowledgement); 409 once resolved. */
export async function acknowledgeAlert(ctx: ManagerContext, id: string, by: string): Promise<AlertRow> {
  const now = ctx.now();
  const row = await ctx.db.transaction().execute(async (trx) => {
    const acked = await acknowledgeAlertRow(trx, id, by, now);
    if (acked !== undefined) await announce(trx, 'alert.acknowledged', acked, now);
    return acked;
  });
  if (row !== undefined) {
    ctx.logger.info('alert acknowledged', { alert_id: id, by });
    return row;
  }
  const existing = await requireAlert(ctx, id);
  if (existing.resolved_at !== null) {
    throw new ApiError('conflict', `alert ${id} was resolved at ${existing.resolved_at.toISOString()}`);
  }
  return existing;
}
