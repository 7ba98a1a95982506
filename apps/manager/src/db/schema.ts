import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { AlertTables } from './schema-alerts.js';
import type { GcTables } from './schema-gc.js';
import type { UserTables } from './schema-users.js';

/**
 * The manager's tables as kysely sees them (migrations/0001_create_inventory.sql is the truth; keep the two
 * in step). bigint columns arrive as numbers (the dialects parse int8 so; byte counts stay below 2^53).
 */
export type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
export type NullableTimestamp = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;
type Json<T> = ColumnType<T, string, string>;
/** A nullable column that inserts may leave out (null then). */
type Optional<T> = ColumnType<T | null, T | null | undefined, T | null>;
export type NullableJson<T> = ColumnType<T | null, string | null | undefined, string | null>;

export interface HostTable {
  id: string;
  name: string;
  url: string;
  agent_token: Uint8Array;
  agent_id: string | null;
  status: Generated<'up' | 'down' | 'unknown'>;
  last_contact_at: NullableTimestamp;
  last_error: string | null;
  backends: ColumnType<unknown[], string | undefined, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ApiTokenTable {
  id: string;
  name: string;
  token_hash: Uint8Array;
  role: 'admin' | 'operator' | 'viewer' | 'agent';
  host_id: string | null;
  created_at: Timestamp;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

export interface BackupTargetTable {
  id: string;
  name: string;
  kind: 's3' | 'filesystem';
  endpoint: string | null;
  region: string | null;
  bucket: string | null;
  prefix: Generated<string>;
  path_style: Generated<boolean>;
  path: string | null;
  credentials: Uint8Array | null;
  target_key: Uint8Array;
  repository_id: string;
  chunker: Json<{ min_size: number; avg_size: number; max_size: number }>;
  gc_hour: Generated<number>;
  timezone: Generated<string>;
  /** Migration 0002: the GC's and verify's settings, and the run sweeping the target (null: none). */
  gc_enabled: Generated<boolean>;
  gc_grace_seconds: Generated<number>;
  gc_sweeping_run: string | null;
  verify_every_days: number | null;
  verify_sample_percent: Generated<number>;
  /** Kept by a trigger on `backup` (migration 0001). */
  usage_backups: Generated<number>;
  usage_logical_bytes: Generated<number>;
  usage_stored_bytes: Generated<number>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type VolumeState = 'creating' | 'available' | 'restoring' | 'failed' | 'archived' | 'deleting';

export interface VolumeTable {
  id: string;
  name: string;
  host_id: string | null;
  backend: string;
  locator: string | null;
  size: number;
  state: VolumeState;
  backup_target_id: string | null;
  provisioned: Generated<boolean>;
  snapshot: Generated<'snapshot' | 'copy' | 'live'>;
  error: NullableJson<unknown>;
  backup_cron: string | null;
  timezone: Generated<string>;
  retention: NullableJson<unknown>;
  schedule_enabled: Generated<boolean>;
  schedule_since: Timestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type JobKind = 'backup' | 'restore' | 'verify';
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobTable {
  id: string;
  kind: JobKind;
  state: JobState;
  host_id: string | null;
  volume_id: string | null;
  backup_id: string | null;
  progress: ColumnType<unknown, string | undefined, string>;
  error: NullableJson<unknown>;
  result: NullableJson<unknown>;
  last_event_seq: Generated<number>;
  last_event_at: NullableTimestamp;
  created_at: Timestamp;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  /** Migration 0002: a queued backup's own options, sent when a sweep lets it go. */
  request: NullableJson<{ snapshot?: boolean | 'copy' }>;
}

export type BackupState = 'running' | 'completed' | 'failed';

export interface BackupTable {
  id: string;
  volume_id: string;
  backup_target_id: string;
  job_id: string | null;
  state: BackupState;
  manifest_key: string;
  started_at: Timestamp;
  finished_at: NullableTimestamp;
  size: number | null;
  bytes_read: number | null;
  bytes_uploaded: number | null;
  chunks: number | null;
  chunks_new: number | null;
  snapshot: string | null;
  error: NullableJson<unknown>;
  /** Migration 0003: what verification knows of the backup (see `VerifyState`). */
  verified_at: NullableTimestamp;
  verify_sample_percent: Optional<number>;
  verify_state: Optional<VerifyState>;
  damaged_chunks: Optional<number>;
  damage_found_at: NullableTimestamp;
  verify_job_id: Optional<string>;
  verify_started_at: NullableTimestamp;
  verify_error: NullableJson<unknown>;
}

/** `ok`: its last verify found nothing; `damaged`: a verify (its own or another backup's) found a chunk object
 * it names missing or corrupt. */
export type VerifyState = 'ok' | 'damaged';

export interface MigrationTable {
  name: string;
  sha256: string;
  applied_at: Timestamp;
}

export interface Database extends GcTables, AlertTables, UserTables {
  host: HostTable;
  api_token: ApiTokenTable;
  backup_target: BackupTargetTable;
  volume: VolumeTable;
  job: JobTable;
  backup: BackupTable;
  manager_migration: MigrationTable;
}

export type HostRow = Selectable<HostTable>;
export type ApiTokenRow = Selectable<ApiTokenTable>;
export type BackupTargetRow = Selectable<BackupTargetTable>;
export type VolumeRow = Selectable<VolumeTable>;
export type JobRow = Selectable<JobTable>;
export type BackupRow = Selectable<BackupTable>;
export type NewVolume = Insertable<VolumeTable>;
export type NewJob = Insertable<JobTable>;
export type NewBackup = Insertable<BackupTable>;
export type VolumeUpdate = Updateable<VolumeTable>;
