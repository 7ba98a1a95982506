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
});
export type ManagedBackup = z.infer<typeof ManagedBackup>;
export const ManagedBackupPage = Page(ManagedBackup);

export const BackupListQuery = ListQuery.extend({
  volume_id: Uuid.optional(),
  backup_target_id: Uuid.optional(),
  state: BackupState.optional(),
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
