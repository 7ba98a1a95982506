-- Alerts and webhooks (docs/manager.md#alerts-and-webhooks): the alerts loop raises one row per condition
-- (a kind and the id of what it is about) and resolves it when the condition clears; every change is put in
-- the webhook outbox in the same transaction, so a manager that stops between the two loses nothing.
-- Forward-only, like every migration.

CREATE TABLE alert (
  id uuid PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('backup_failed', 'volume_overdue', 'agent_unreachable', 'gc_failed',
    'verify_failed', 'target_unreachable')),
  -- The id of the volume, host, target or backup the alert is about: with the kind, what makes it one condition.
  subject_key text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('critical', 'warning')),
  message text NOT NULL,
  -- The ids it names: { volume_id, host_id, backup_target_id, backup_id, gc_run_id, job_id } (null: none).
  subject jsonb NOT NULL,
  opened_at timestamptz NOT NULL,
  -- When the loop last found the condition true.
  last_seen_at timestamptz NOT NULL,
  resolved_at timestamptz,
  acknowledged_at timestamptz,
  -- Who acknowledged it (a token's or a user's name, as the API saw the caller).
  acknowledged_by text
);
-- One open alert per condition, whichever replica raised it: a second raise is a conflict, turned into a touch.
-- A resolved alert that recurs opens a new row.
CREATE UNIQUE INDEX alert_one_open ON alert (kind, subject_key) WHERE resolved_at IS NULL;
CREATE INDEX alert_listing ON alert (opened_at DESC, id DESC);

CREATE TABLE webhook (
  id uuid PRIMARY KEY,
  url text NOT NULL,
  description text,
  -- The event types it is told of (alert.opened, alert.resolved, alert.acknowledged).
  events jsonb NOT NULL,
  -- The signing secret, an envelope under the master key (webhook.secret:<id>), shown once on create.
  secret bytea NOT NULL,
  created_at timestamptz NOT NULL,
  -- The outcome of its last delivery attempt: when, the HTTP status (null: no answer) and why it failed.
  last_attempt_at timestamptz,
  last_status integer,
  last_error text
);
CREATE INDEX webhook_listing ON webhook (created_at DESC, id DESC);

-- The outbox: one row per event and webhook, retried with backoff until delivered or given up on.
CREATE TABLE webhook_delivery (
  id uuid PRIMARY KEY,
  -- Insertion order: events of one tick share their times, and are sent in the order they happened.
  seq bigserial NOT NULL,
  webhook_id uuid NOT NULL REFERENCES webhook (id) ON DELETE CASCADE,
  event_id uuid NOT NULL,
  event_type text NOT NULL,
  -- The JSON body exactly as it is sent and signed.
  body text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  -- When it is next due; a replica that claims it moves this past its request's timeout, so no other
  -- replica sends it meanwhile, and a replica that dies mid-send leaves it due again.
  next_attempt_at timestamptz NOT NULL,
  last_attempt_at timestamptz,
  last_status integer,
  last_error text,
  created_at timestamptz NOT NULL,
  finished_at timestamptz
);
CREATE INDEX webhook_delivery_due ON webhook_delivery (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_delivery_finished ON webhook_delivery (finished_at) WHERE state <> 'pending';

-- What the alerts loop's probe of each target found (the manager recorded nothing of a target's health
-- before). A replica claims a probe by moving `claimed_at`, so two replicas do not probe one target at once.
CREATE TABLE target_health (
  backup_target_id uuid PRIMARY KEY REFERENCES backup_target (id) ON DELETE CASCADE,
  claimed_at timestamptz NOT NULL,
  checked_at timestamptz,
  ok boolean,
  -- Probes failed in a row, and the first of them; what the last one said.
  failures integer NOT NULL DEFAULT 0,
  failing_since timestamptz,
  error text
);
