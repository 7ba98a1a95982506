-- Garbage collection (docs/operations.md#gc): the targets' GC and verify settings, the backups' leases that
-- fence their commits, the GC runs and the mark's scratch state. Forward-only, like every migration.

ALTER TABLE backup_target
  ADD COLUMN gc_enabled boolean NOT NULL DEFAULT true,
  -- An unreferenced object younger than this is kept (PBS and restic keep a day too).
  ADD COLUMN gc_grace_seconds integer NOT NULL DEFAULT 86400 CHECK (gc_grace_seconds BETWEEN 0 AND 31536000),
  -- Set while a GC run sweeps the target: new backups of it wait queued, none is given a lease.
  ADD COLUMN gc_sweeping_run uuid,
  -- Re-verify every backup within this many days (null: no scheduled verify), reading this share of chunks.
  ADD COLUMN verify_every_days integer CHECK (verify_every_days BETWEEN 1 AND 3650),
  ADD COLUMN verify_sample_percent real NOT NULL DEFAULT 100
    CHECK (verify_sample_percent > 0 AND verify_sample_percent <= 100);

-- A repository is one target: two rows of one bucket would run two GCs of it at once.
CREATE UNIQUE INDEX backup_target_repository_unique ON backup_target (repository_id);

-- What a backup job waiting for a sweep to end is sent with when it does (its own options; null: defaults).
ALTER TABLE job ADD COLUMN request jsonb;

-- A backup job's hold on its target. It holds from when the job is sent to the agent until the job ends —
-- and, once the manager let the job commit, until commit_hold_until at least, since the root's write may
-- still land until then. A sweep deletes nothing while any lease on its target holds.
CREATE TABLE backup_lease (
  job_id uuid PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
  backup_target_id uuid NOT NULL REFERENCES backup_target (id) ON DELETE CASCADE,
  acquired_at timestamptz NOT NULL,
  commit_granted_at timestamptz,
  commit_hold_until timestamptz,
  released_at timestamptz
);
CREATE INDEX backup_lease_holding ON backup_lease (backup_target_id) WHERE released_at IS NULL;
CREATE INDEX backup_lease_committing ON backup_lease (backup_target_id, commit_hold_until)
  WHERE commit_hold_until IS NOT NULL;

CREATE TABLE backup_gc_run (
  id uuid PRIMARY KEY,
  backup_target_id uuid NOT NULL REFERENCES backup_target (id) ON DELETE CASCADE,
  state text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
  phase text NOT NULL CHECK (phase IN ('mark', 'list', 'wait', 'remark', 'sweep', 'done')),
  trigger text NOT NULL CHECK (trigger IN ('schedule', 'api')),
  dry_run boolean NOT NULL,
  grace_seconds integer NOT NULL,
  -- Objects last modified at or after this are kept whatever names them: started_at - grace.
  cutoff timestamptz NOT NULL,
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  -- The replica running it writes this every few seconds; a run silent for minutes is failed by another.
  heartbeat_at timestamptz NOT NULL,
  manifests bigint NOT NULL DEFAULT 0,
  packs_listed bigint NOT NULL DEFAULT 0,
  packs_live bigint NOT NULL DEFAULT 0,
  packs_deleted bigint NOT NULL DEFAULT 0,
  segments_listed bigint NOT NULL DEFAULT 0,
  segments_live bigint NOT NULL DEFAULT 0,
  segments_deleted bigint NOT NULL DEFAULT 0,
  index_objects_listed bigint NOT NULL DEFAULT 0,
  index_objects_deleted bigint NOT NULL DEFAULT 0,
  bytes_listed bigint NOT NULL DEFAULT 0,
  bytes_freed bigint NOT NULL DEFAULT 0,
  error jsonb
);
-- One GC per target at a time, whichever replica runs it.
CREATE UNIQUE INDEX backup_gc_one_running ON backup_gc_run (backup_target_id) WHERE state = 'running';
CREATE INDEX backup_gc_run_list ON backup_gc_run (backup_target_id, started_at, id);

-- The mark and the listings of one run, in Postgres rather than the heap (a target may hold millions of
-- objects). kind: 'p' pack, 's' segment (chunks/); id: the object's 32-byte id, so ordering is bytewise
-- like the bucket's listing. Deleted with their run's end.
CREATE TABLE gc_live_object (
  run_id uuid NOT NULL REFERENCES backup_gc_run (id) ON DELETE CASCADE,
  kind "char" NOT NULL,
  id bytea NOT NULL,
  PRIMARY KEY (run_id, kind, id)
);
CREATE TABLE gc_listed_object (
  run_id uuid NOT NULL REFERENCES backup_gc_run (id) ON DELETE CASCADE,
  kind "char" NOT NULL,
  id bytea NOT NULL,
  size bigint NOT NULL,
  last_modified timestamptz NOT NULL,
  PRIMARY KEY (run_id, kind, id)
);
-- Manifest roots the mark read (by either listing), and index objects with the packs each names.
CREATE TABLE gc_marked_manifest (
  run_id uuid NOT NULL REFERENCES backup_gc_run (id) ON DELETE CASCADE,
  volume_id text NOT NULL,
  backup_id text NOT NULL,
  PRIMARY KEY (run_id, volume_id, backup_id)
);
CREATE TABLE gc_index_object (
  run_id uuid NOT NULL REFERENCES backup_gc_run (id) ON DELETE CASCADE,
  key text NOT NULL,
  volume_id text NOT NULL,
  backup_id text NOT NULL,
  size bigint NOT NULL,
  last_modified timestamptz NOT NULL,
  readable boolean NOT NULL DEFAULT true,
  PRIMARY KEY (run_id, key)
);
CREATE TABLE gc_index_pack (
  run_id uuid NOT NULL REFERENCES backup_gc_run (id) ON DELETE CASCADE,
  pack_id bytea NOT NULL,
  key text NOT NULL,
  PRIMARY KEY (run_id, pack_id, key)
);
