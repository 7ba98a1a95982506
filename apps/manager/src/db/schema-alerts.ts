import type { AlertKind, AlertSeverity } from '@stowage/api';
import type { ColumnType, Generated, Selectable } from 'kysely';
import type { NullableTimestamp, Timestamp } from './schema.js';

// Tables of migration 0005: alerts, webhooks and the webhooks' outbox.

export type { AlertKind, AlertSeverity };

/** The ids an alert names (null: none). */
export interface AlertSubject {
  volume_id: string | null;
  host_id: string | null;
  backup_target_id: string | null;
  backup_id: string | null;
  gc_run_id: string | null;
  job_id: string | null;
}

export interface AlertTable {
  id: string;
  kind: AlertKind;
  subject_key: string;
  severity: AlertSeverity;
  message: string;
  subject: ColumnType<AlertSubject, string, string>;
  opened_at: Timestamp;
  last_seen_at: Timestamp;
  resolved_at: NullableTimestamp;
  acknowledged_at: NullableTimestamp;
  acknowledged_by: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface WebhookTable {
  id: string;
  url: string;
  description: string | null;
  events: ColumnType<string[], string, string>;
  secret: Uint8Array;
  created_at: Timestamp;
  last_attempt_at: NullableTimestamp;
  last_status: ColumnType<number | null, number | null | undefined, number | null>;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface WebhookDeliveryTable {
  id: string;
  seq: Generated<number>;
  webhook_id: string;
  event_id: string;
  event_type: string;
  body: string;
  state: DeliveryState;
  attempts: Generated<number>;
  next_attempt_at: Timestamp;
  last_attempt_at: NullableTimestamp;
  last_status: ColumnType<number | null, number | null | undefined, number | null>;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  finished_at: NullableTimestamp;
}

export interface TargetHealthTable {
  backup_target_id: string;
  claimed_at: Timestamp;
  checked_at: NullableTimestamp;
  ok: ColumnType<boolean | null, boolean | null | undefined, boolean | null>;
  failures: Generated<number>;
  failing_since: NullableTimestamp;
  error: ColumnType<string | null, string | null | undefined, string | null>;
}

/** The alert and webhook tables (migrations/0005_add_alerts.sql). */
export interface AlertTables {
  alert: AlertTable;
  webhook: WebhookTable;
  webhook_delivery: WebhookDeliveryTable;
  target_health: TargetHealthTable;
}

export type AlertRow = Selectable<AlertTable>;
export type WebhookRow = Selectable<WebhookTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveryTable>;
export type TargetHealthRow = Selectable<TargetHealthTable>;
