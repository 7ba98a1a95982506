import { z } from 'zod';
import { BackendKind, VolumeName } from '../agent.js';
import { ApiErrorBody } from '../errors.js';
import { ManagedJob } from './jobs.js';
import { Bytes, ListQuery, Page, Timestamp, Uuid } from './primitives.js';
import { ManagedVolume, SnapshotMode } from './volumes.js';

/**
 * Backups as the inventory records them. A row is `running` from the moment the job is started (the database
 * allows one running backup per volume), then `completed` with the agent's figures or `failed` with its
 * cause. The figures are null until completed.
 */
export const BACKUP_STATES = ['running', 'completed', 'failed'] as const;
export const BackupState = z.enum(BACKUP_STATES);
export type BackupState = z.infer<typeof BackupState>;

/**
 * What verification knows of a backup (docs/operations.md#verify). `state`: `unverified` (never verified and
 * never found damaged), `ok` (its last verify found every chunk it read healthy — all of them, or
 * `sample_percent` of them), `damaged` (a verify found a chunk object its manifest names missing or corrupt:
 * its own verify, or that of another backup naming the same chunk, `job_id`). A damaged backup does not
 * restore whole; it stays damaged until a verify of its own finds it healthy again.
 */
export const VERIFY_STATES = ['unverified', 'ok', 'damaged'] as const;
export const VerifyState = z.enum(VERIFY_STATES);
export type VerifyState = z.infer<typeof VerifyState>;

export const BackupVerification = z.strictObject({
  state: VerifyState,
  /** When a verify of this backup last completed (null: never); the schedule counts from it. */
  verified_at: Timestamp.nullable(),
  /** The share of chunks that verify read (100: all). */
  sample_percent: z.number().gt(0).max(100).nullable(),
  /** Damaged chunk objects known (while `damaged`; 0 when its manifest does not decode), else null. */
  damaged_chunks: Bytes.nullable(),
  /** When damage was first found (while `damaged`). */
  damage_found_at: Timestamp.nullable(),
  /** The verify job that last reported on it (its own, or another backup's that found damage it shares). */
  job_id: Uuid.nullable(),
  /** Why its last verify could not check it; null once one succeeds. */
  error: ApiErrorBody.nullable(),
});
export type BackupVerification = z.infer<typeof BackupVerification>;

export const ManagedBackup = z.strictObject({
  id: Uuid,
  volume_id: Uuid,
  backup_target_id: Uuid,
  job_id: Uuid.nullable(),
  state: BackupState,
  started_at: Timestamp,
  finished_at: Timestamp.nullable(),
  size: Bytes.nullable(),
  bytes_read: Bytes.nullable(),
  bytes_uploaded: Bytes.nullable(),
  chunks: Bytes.nullable(),
  chunks_new: Bytes.nullable(),
  /** `manifests/<volume_id>/<backup_id>`, known before the backup runs. */
  manifest_key: z.string(),
  duration_seconds: z.number().min(0).nullable(),
  snapshot: z.enum(['reflink', 'copy', 'none']).nullable(),
  error: ApiErrorBody.nullable(),
  verification: BackupVerification,
});
export type ManagedBackup = z.infer<typeof ManagedBackup>;
export const ManagedBackupPage = Page(ManagedBackup);

export const BackupListQuery = ListQuery.extend({
  volume_id: Uuid.optional(),
  backup_target_id: Uuid.optional(),
  state: BackupState.optional(),
  /** Only backups whose verification is in this state (`damaged`: what will not restore whole). */
  verify_state: VerifyState.optional(),
});
export type BackupListQuery = z.infer<typeof BackupListQuery>;

/** `POST /v1/volumes/{id}/backup`; an empty body means `{}`. */
export const BackupNowRequest = z.strictObject({
  /** Absent: the volume's `backup_target_id` (a 400 if it has none). */
  backup_target_id: Uuid.optional(),
  /** As agent.ts `BackupRequest.snapshot`; default: the volume's `snapshot`. */
  snapshot: SnapshotMode.optional(),
});
export type BackupNowRequest = z.infer<typeof BackupNowRequest>;

export const BackupStarted = z.strictObject({ job: ManagedJob, backup: ManagedBackup });
export type BackupStarted = z.infer<typeof BackupStarted>;

/** `POST /v1/backups/{id}/restore`: onto a new volume. Absent fields: the backed-up volume's host and
 * backend, and a name derived from the source volume's and the backup's. */
export const RestoreBackupRequest = z.strictObject({
  host_id: Uuid.optional(),
  name: VolumeName.optional(),
  backend: BackendKind.optional(),
});
export type RestoreBackupRequest = z.infer<typeof RestoreBackupRequest>;

/** `volume` is the new volume's real row (state `restoring`), so its id is usable at once. */
export const RestoreStarted = z.strictObject({ job: ManagedJob, volume: ManagedVolume });
export type RestoreStarted = z.infer<typeof RestoreStarted>;
