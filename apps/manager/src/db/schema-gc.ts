import type { Generated, Selectable } from 'kysely';
import type { NullableJson, NullableTimestamp, Timestamp } from './schema.js';

// Tables of migration 0002: the commit fence's leases, GC runs and each run's scratch state.

export interface BackupLeaseTable {
  job_id: string;
  backup_target_id: string;
  acquired_at: Timestamp;
  commit_granted_at: NullableTimestamp;
  /** Once a commit was granted: until when the root's write may still land (grant + validity + margin). */
  commit_hold_until: NullableTimestamp;
  released_at: NullableTimestamp;
}

export type GcRunState = 'running' | 'succeeded' | 'failed';
export type GcRunPhase = 'mark' | 'list' | 'wait' | 'remark' | 'sweep' | 'done';

export interface GcRunTable {
  id: string;
  backup_target_id: string;
  state: GcRunState;
  phase: GcRunPhase;
  trigger: 'schedule' | 'api';
  dry_run: boolean;
  grace_seconds: number;
  cutoff: Timestamp;
  started_at: Timestamp;
  finished_at: NullableTimestamp;
  heartbeat_at: Timestamp;
  manifests: Generated<number>;
  packs_listed: Generated<number>;
  packs_live: Generated<number>;
  packs_deleted: Generated<number>;
  segments_listed: Generated<number>;
  segments_live: Generated<number>;
  segments_deleted: Generated<number>;
  index_objects_listed: Generated<number>;
  index_objects_deleted: Generated<number>;
  bytes_listed: Generated<number>;
  bytes_freed: Generated<number>;
  error: NullableJson<{ code: string; message: string }>;
}

/** kind: 'p' a pack, 's' a manifest segment (chunks/); id: its 32 bytes. */
export type GcObjectKind = 'p' | 's';

export interface GcLiveObjectTable {
  run_id: string;
  kind: GcObjectKind;
  id: Uint8Array;
}

export interface GcListedObjectTable {
  run_id: string;
  kind: GcObjectKind;
  id: Uint8Array;
  size: number;
  last_modified: Timestamp;
}

export interface GcMarkedManifestTable {
  run_id: string;
  volume_id: string;
  backup_id: string;
}

export interface GcIndexObjectTable {
  run_id: string;
  key: string;
  volume_id: string;
  backup_id: string;
  size: number;
  last_modified: Timestamp;
  readable: Generated<boolean>;
}

export interface GcIndexPackTable {
  run_id: string;
  pack_id: Uint8Array;
  key: string;
}

export interface GcTables {
  backup_lease: BackupLeaseTable;
  backup_gc_run: GcRunTable;
  gc_live_object: GcLiveObjectTable;
  gc_listed_object: GcListedObjectTable;
  gc_marked_manifest: GcMarkedManifestTable;
  gc_index_object: GcIndexObjectTable;
  gc_index_pack: GcIndexPackTable;
}

export type BackupLeaseRow = Selectable<BackupLeaseTable>;
export type GcRunRow = Selectable<GcRunTable>;
