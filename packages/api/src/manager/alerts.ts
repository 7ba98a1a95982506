import { z } from 'zod';
import { HttpUrl, ListQuery, Page, Timestamp, Uuid } from './primitives.js';

/**
 * Alerts the manager raises and resolves on its own (docs/manager.md#alerts-and-webhooks): one open alert per
 * condition (a kind and the id of what it is about). A condition that clears resolves its alert; one that
 * recurs later opens a new alert. Acknowledging says someone has seen it; it stays open until resolved.
 */
export const ALERT_KINDS = [
  'backup_failed',
  'volume_overdue',
  'agent_unreachable',
  'gc_failed',
  'verify_failed',
  'target_unreachable',
] as const;
export const AlertKind = z.enum(ALERT_KINDS);
export type AlertKind = z.infer<typeof AlertKind>;

export const AlertSeverity = z.enum(['critical', 'warning']);
export type AlertSeverity = z.infer<typeof AlertSeverity>;

export const AlertState = z.enum(['open', 'resolved']);
export type AlertState = z.infer<typeof AlertState>;

export const Alert = z.strictObject({
  id: Uuid,
  kind: AlertKind,
  severity: AlertSeverity,
  state: AlertState,
  /** What is wrong, in words. */
  message: z.string(),
  /** What it is about; null where the kind names no such thing. */
  volume_id: Uuid.nullable(),
  host_id: Uuid.nullable(),
  backup_target_id: Uuid.nullable(),
  backup_id: Uuid.nullable(),
  gc_run_id: Uuid.nullable(),
  job_id: Uuid.nullable(),
  opened_at: Timestamp,
  /** When the alerts loop last found the condition true. */
  last_seen_at: Timestamp,
  resolved_at: Timestamp.nullable(),
  acknowledged_at: Timestamp.nullable(),
  /** The name of the token (or user) that acknowledged it. */
  acknowledged_by: z.string().nullable(),
});
export type Alert = z.infer<typeof Alert>;
export const AlertPage = Page(Alert);

export const AlertListQuery = ListQuery.extend({
  /** Default `open`. */
  state: z.enum(['open', 'resolved', 'all']).default('open'),
  kind: AlertKind.optional(),
});
export type AlertListQuery = z.infer<typeof AlertListQuery>;

/** What a webhook can be told of. `webhook.test` is sent only by `POST /v1/webhooks/{id}/test`. */
export const WEBHOOK_EVENT_TYPES = ['alert.opened', 'alert.resolved', 'alert.acknowledged'] as const;
export const WebhookEventType = z.enum(WEBHOOK_EVENT_TYPES);
export type WebhookEventType = z.infer<typeof WebhookEventType>;

/**
 * The body of every delivery (JSON, `content-type: application/json`). Headers: `x-stowage-event` (the type),
 * `x-stowage-delivery` (this delivery's id: the same on every retry, so a receiver can drop repeats),
 * `x-stowage-timestamp` (Unix seconds) and `x-stowage-signature: sha256=<hex HMAC-SHA256 of
 * "<timestamp>.<body>" under the webhook's secret>`.
 */
export const WebhookEvent = z.strictObject({
  /** The event's id: one change told to several webhooks has one id. */
  id: Uuid,
  type: z.enum([...WEBHOOK_EVENT_TYPES, 'webhook.test']),
  at: Timestamp,
  /** The alert as it is after the change; null for `webhook.test`. */
  alert: Alert.nullable(),
});
export type WebhookEvent = z.infer<typeof WebhookEvent>;

export const Webhook = z.strictObject({
  id: Uuid,
  url: z.string(),
  description: z.string().nullable(),
  events: z.array(WebhookEventType),
  created_at: Timestamp,
  /** The last delivery attempt: when, its HTTP status (null: no answer) and why it failed (null: it did not). */
  last_attempt_at: Timestamp.nullable(),
  last_status: z.number().int().nullable(),
  last_error: z.string().nullable(),
});
export type Webhook = z.infer<typeof Webhook>;
export const WebhookPage = Page(Webhook);

export const CreateWebhookRequest = z.strictObject({
  url: HttpUrl,
  description: z.string().min(1).max(500).optional(),
  /** Default: every alert event. */
  events: z
    .array(WebhookEventType)
    .min(1, 'give at least one event type, or leave events out for all of them')
    .refine((events) => new Set(events).size === events.length, 'must not repeat an event type')
    .optional(),
});
export type CreateWebhookRequest = z.infer<typeof CreateWebhookRequest>;

export const CreatedWebhook = z.strictObject({
  webhook: Webhook,
  /** The signing secret: shown once, never retrievable again. */
  secret: z.string().min(1),
});
export type CreatedWebhook = z.infer<typeof CreatedWebhook>;

/** What `POST /v1/webhooks/{id}/test` found: the receiver's HTTP status, or why there was none. */
export const WebhookTestResult = z.strictObject({
  /** A 2xx answer. */
  ok: z.boolean(),
  status: z.number().int().nullable(),
  error: z.string().nullable(),
  duration_ms: z.number().int().min(0),
  delivery_id: Uuid,
});
export type WebhookTestResult = z.infer<typeof WebhookTestResult>;
