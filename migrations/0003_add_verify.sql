-- Verify jobs (docs/operations.md#verify): a job kind of their own, run on an agent, and on each backup what
-- the last verification found and when, so the API shows damage and the verify schedule knows what is due.
-- Forward-only, like every migration.

ALTER TABLE job DROP CONSTRAINT job_kind_check;
ALTER TABLE job ADD CONSTRAINT job_kind_check CHECK (kind IN ('backup', 'restore', 'verify'));
-- One verify of a backup at a time, whichever replica (or the schedule) started it: a second is a 409.
CREATE UNIQUE INDEX job_one_verify ON job (backup_id) WHERE kind = 'verify' AND state IN ('queued', 'running');

ALTER TABLE backup
  -- When a verify of this backup last completed its check (null: never), and the share of chunks it read.
  ADD COLUMN verified_at timestamptz,
  ADD COLUMN verify_sample_percent real CHECK (verify_sample_percent > 0 AND verify_sample_percent <= 100),
  -- What is known of its health: 'ok' (its last verify found nothing), 'damaged' (its own verify, or another
  -- backup's, found a chunk object it names missing or corrupt); null: never verified nor found damaged.
  ADD COLUMN verify_state text CHECK (verify_state IN ('ok', 'damaged')),
  -- Damaged chunk objects known (0 with a manifest that does not decode), and when damage was first found.
  ADD COLUMN damaged_chunks bigint,
  ADD COLUMN damage_found_at timestamptz,
  -- The verify job that last reported on this backup (its own or another's), and when one last started.
  ADD COLUMN verify_job_id uuid,
  ADD COLUMN verify_started_at timestamptz,
  -- Why its last verify could not check it (the agent's or the manager's cause); null after a verify succeeds.
  ADD COLUMN verify_error jsonb;

-- The verify schedule's scan: completed backups of a target by when they were last checked.
CREATE INDEX backup_verify_due ON backup (backup_target_id, (coalesce(verified_at, finished_at)))
  WHERE state = 'completed';
