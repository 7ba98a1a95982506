-- The manager's inventory (docs/manager.md#database): tokens, hosts, targets, volumes, jobs, backups.
-- Forward-only: a later change is a new file, never an edit of this one.

CREATE TABLE host (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  url text NOT NULL,
  -- AES-256-GCM envelope of the bearer token the manager presents to the agent.
  agent_token bytea NOT NULL,
  -- What the agent's job events carry as agent_id; learnt from its first event.
  agent_id text,
  status text NOT NULL DEFAULT 'unknown' CHECK (status IN ('up', 'down', 'unknown')),
  last_contact_at timestamptz,
  last_error text,
  backends jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_token (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  -- SHA-256 of the bearer token; the token itself is shown once and never stored.
  token_hash bytea NOT NULL UNIQUE,
  role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'agent')),
  -- Set for agent tokens: the host whose events the token may post.
  host_id uuid REFERENCES host (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz,
  CHECK ((role = 'agent') = (host_id IS NOT NULL))
);

CREATE TABLE backup_target (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('s3', 'filesystem')),
  endpoint text,
  region text,
  bucket text,
  prefix text NOT NULL DEFAULT '',
  path_style boolean NOT NULL DEFAULT false,
  path text,
  -- Envelopes under the master key; credentials only for S3.
  credentials bytea,
  target_key bytea NOT NULL,
  repository_id uuid NOT NULL,
  chunker jsonb NOT NULL,
  gc_hour smallint NOT NULL DEFAULT 3 CHECK (gc_hour BETWEEN 0 AND 23),
  -- What its completed backups hold and uploaded, kept by the trigger below (summing 100,000 backup rows per
  -- list request cost 20-70 ms).
  usage_backups bigint NOT NULL DEFAULT 0,
  usage_logical_bytes bigint NOT NULL DEFAULT 0,
  usage_stored_bytes bigint NOT NULL DEFAULT 0,
  timezone text NOT NULL DEFAULT 'UTC',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((kind = 's3') = (bucket IS NOT NULL AND credentials IS NOT NULL)),
  CHECK ((kind = 'filesystem') = (path IS NOT NULL))
);

CREATE TABLE volume (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  host_id uuid REFERENCES host (id),
  backend text NOT NULL,
  -- Null while a restore's new volume is still being provisioned.
  locator text,
  size bigint NOT NULL CHECK (size >= 0),
  state text NOT NULL CHECK (state IN ('creating', 'available', 'restoring', 'failed', 'archived', 'deleting')),
  backup_target_id uuid REFERENCES backup_target (id),
  -- Made by the manager (create, restore): deleting the volume deletes it on its host. An adopted volume is
  -- only forgotten; its data stays where it was.
  provisioned boolean NOT NULL DEFAULT false,
  -- How its backups freeze it (the agent's BackupRequest.snapshot): a reflink, a reflink or else a copy, or
  -- the live volume.
  snapshot text NOT NULL DEFAULT 'snapshot' CHECK (snapshot IN ('snapshot', 'copy', 'live')),
  error jsonb,
  -- Schedule and retention (the loops' issue fills these in).
  backup_cron text,
  timezone text NOT NULL DEFAULT 'UTC',
  retention jsonb,
  schedule_enabled boolean NOT NULL DEFAULT false,
  -- When cron, time zone or enabled last changed: the scheduler's first slot is the one after it.
  schedule_since timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- One inventory row per volume on a host (archived rows, recreated by an index rebuild, have no host).
CREATE UNIQUE INDEX volume_locator_unique ON volume (host_id, backend, locator)
  WHERE locator IS NOT NULL AND state <> 'archived';
CREATE INDEX volume_list ON volume (created_at, id);

CREATE TABLE job (
  id uuid PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('backup', 'restore')),
  state text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  host_id uuid REFERENCES host (id),
  volume_id uuid REFERENCES volume (id) ON DELETE SET NULL,
  backup_id uuid,
  progress jsonb NOT NULL DEFAULT '{"bytes_done":0,"bytes_total":0,"rate":0,"eta_seconds":null}',
  error jsonb,
  result jsonb,
  -- The newest agent event applied: older or repeated events change nothing.
  last_event_seq bigint NOT NULL DEFAULT -1,
  -- What the stale-job reconciler reads: silence since then means the agent may be gone.
  last_event_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
CREATE INDEX job_list ON job (created_at, id);
CREATE INDEX job_unfinished ON job (state) WHERE state IN ('queued', 'running');

CREATE TABLE backup (
  id uuid PRIMARY KEY,
  volume_id uuid NOT NULL REFERENCES volume (id),
  backup_target_id uuid NOT NULL REFERENCES backup_target (id),
  job_id uuid REFERENCES job (id) ON DELETE SET NULL,
  state text NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
  manifest_key text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  size bigint,
  bytes_read bigint,
  bytes_uploaded bigint,
  chunks bigint,
  chunks_new bigint,
  snapshot text,
  error jsonb
);
-- One running backup per volume, whichever replica started it.
CREATE UNIQUE INDEX backup_one_running ON backup (volume_id) WHERE state = 'running';
CREATE INDEX backup_list ON backup (started_at, id);
CREATE INDEX backup_by_volume ON backup (volume_id, started_at);
-- A volume's newest completed backup in one probe, however many backups it has.
CREATE INDEX backup_last_completed ON backup (volume_id, started_at DESC) WHERE state = 'completed';
CREATE INDEX backup_by_target ON backup (backup_target_id, started_at);

-- Target usage follows every change of a completed backup: inserted, completed, failed, resized, deleted.
CREATE FUNCTION backup_target_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.state = 'completed' THEN
    UPDATE backup_target SET
      usage_backups = usage_backups - 1,
      usage_logical_bytes = usage_logical_bytes - coalesce(OLD.size, 0),
      usage_stored_bytes = usage_stored_bytes - coalesce(OLD.bytes_uploaded, 0)
    WHERE id = OLD.backup_target_id;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.state = 'completed' THEN
    UPDATE backup_target SET
      usage_backups = usage_backups + 1,
      usage_logical_bytes = usage_logical_bytes + coalesce(NEW.size, 0),
      usage_stored_bytes = usage_stored_bytes + coalesce(NEW.bytes_uploaded, 0)
    WHERE id = NEW.backup_target_id;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER backup_target_usage AFTER INSERT OR UPDATE OR DELETE ON backup
  FOR EACH ROW EXECUTE FUNCTION backup_target_usage();
