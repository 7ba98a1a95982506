import { z } from 'zod';
import { ApiErrorBody } from './errors.js';

/**
 * The agent's HTTP API (`agent serve`), as zod schemas: the agent validates every request with them, the
 * manager (and the tests) build requests and read answers with them. JSON field names are snake_case.
 * Every route but `GET /healthz` needs `Authorization: Bearer <agent token>`.
 *
 *   GET    /healthz                                   → { status: 'ok' | 'stopping' }   (no token)
 *   GET    /v1/backends                               → BackendInfo[]
 *   GET    /v1/volumes?backend=B                      → Volume[]
 *   POST   /v1/volumes            ProvisionVolumeRequest → 201 Volume
 *   GET    /v1/volume?backend=B&locator=L             → Volume
 *   DELETE /v1/volume?backend=B&locator=L             → 204
 *   POST   /v1/snapshots          CreateSnapshotRequest  → 201 Snapshot
 *   GET    /v1/snapshots?backend=B&volume=L           → Snapshot[]
 *   DELETE /v1/snapshot?backend=B&locator=L           → 204
 *   POST   /v1/storage/backup     BackupRequest   → 202 JobAccepted
 *   POST   /v1/storage/restore    RestoreRequest  → 202 JobAccepted
 *   POST   /v1/storage/verify     VerifyRequest   → 202 JobAccepted
 *   GET    /v1/jobs                                   → Job[]   (jobs this agent process knows)
 *   GET    /v1/jobs/:id                               → Job
 *   POST   /v1/jobs/:id/cancel                        → 202 Job
 *   GET    /metrics                                   → Prometheus text
 *
 * Locators are absolute paths on the agent's host (an image file, a device), so they travel in query
 * strings and bodies, never in the URL path.
 */

export const BACKEND_KINDS = ['local-file', 'block', 'iscsi'] as const;
export const BackendKind = z.enum(BACKEND_KINDS);
export type BackendKind = z.infer<typeof BackendKind>;

/** An absolute path; the agent confines it to its roots. Length-limited and NUL-free here already. */
export const Locator = z
  .string()
  .min(1)
  .max(4096)
  .refine((s) => s.startsWith('/') && !s.includes('\0'), 'must be an absolute path without NUL bytes');

/** A volume or snapshot name: 1–200 of A–Z a–z 0–9 . _ -, not starting with . or -. */
export const VolumeName = z
  .string()
  .regex(
    /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/,
    'must be 1–200 of A–Z a–z 0–9 . _ - and not start with . or -',
  );

/** A byte count: a non-negative safe integer. */
const Bytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** A UUID in any case, lower-cased: ids compare as strings everywhere after the edge. */
const Uuid = z.uuid().transform((id) => id.toLowerCase());
const Timestamp = z.iso.datetime({ offset: true });

export const BackendInfo = z.strictObject({
  backend: BackendKind,
  capabilities: z.strictObject({ provision: z.boolean(), snapshot: z.boolean() }),
});
export type BackendInfo = z.infer<typeof BackendInfo>;

export const Volume = z.strictObject({
  backend: BackendKind,
  locator: Locator,
  name: z.string(),
  size: Bytes,
});
export type Volume = z.infer<typeof Volume>;

export const Snapshot = z.strictObject({
  backend: BackendKind,
  locator: Locator,
  volume: Locator,
  name: z.string(),
  size: Bytes,
  /** How it was made; present on the answer to a create. */
  method: z.enum(['reflink', 'copy']).optional(),
});
export type Snapshot = z.infer<typeof Snapshot>;

export const VolumeQuery = z.strictObject({ backend: BackendKind, locator: Locator });
export type VolumeQuery = z.infer<typeof VolumeQuery>;

export const ProvisionVolumeRequest = z.strictObject({
  backend: BackendKind,
  name: VolumeName,
  size: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
});
export type ProvisionVolumeRequest = z.infer<typeof ProvisionVolumeRequest>;

export const CreateSnapshotRequest = z.strictObject({
  backend: BackendKind,
  volume: Locator,
  name: VolumeName,
  /** Accept a full copy where the backend cannot take a point-in-time snapshot (default false: 501 then).
   * A copy is point in time only if nothing writes the volume meanwhile; the answer's `method` says which. */
  allow_copy: z.boolean().optional(),
});
export type CreateSnapshotRequest = z.infer<typeof CreateSnapshotRequest>;

/**
 * Where a backup lives and the secrets to use it. Held in memory for the job only, never logged or written
 * to disk; every field but `repository` is redacted in anything the agent prints.
 */
export const TargetSettings = z.strictObject({
  /** `s3://bucket/prefix?endpoint=…&region=…&path_style=true`, or `file:///abs/path` (only under the
   * agent's configured repository roots). */
  repository: z.string().min(1).max(4096),
  /** S3 credentials; required for s3:// repositories. */
  credentials: z
    .strictObject({
      access_key_id: z.string().min(1),
      secret_access_key: z.string().min(1),
      session_token: z.string().min(1).optional(),
    })
    .optional(),
  /** The repository's 32-byte target key, base64 (the manager unwraps it; the passphrase never travels). */
  target_key: z.base64().refine((s) => Buffer.from(s, 'base64').length === 32, 'must be 32 bytes, base64'),
});
export type TargetSettings = z.infer<typeof TargetSettings>;

export const BackupRequest = z.strictObject({
  /** Chosen by the caller: a retried request with the same id and body returns the same job. */
  job_id: Uuid,
  volume: VolumeQuery,
  /** The volume's name as the repository records it (`agent ls` shows it). */
  volume_name: z.string().min(1).max(200),
  /** The manager's volume id; defaults to the repository's keyed id for `volume_name`. */
  volume_id: Uuid.optional(),
  /** Defaults to a random UUID. */
  backup_id: Uuid.optional(),
  /**
   * How the volume is frozen for the read; the snapshot is deleted when the job ends, whatever its outcome,
   * and the result's `snapshot` says which kind the backup read.
   * - `true` (the default where the backend can snapshot): a point-in-time snapshot (a reflink); where the
   *   filesystem cannot make one the job fails with `unsupported` rather than read something else;
   * - `"copy"`: a point-in-time snapshot where possible, else a full copy of the volume, which is point in
   *   time only if nothing writes the volume while it is copied (an idle or stopped volume);
   * - `false`: read the live volume (torn if it is written meanwhile).
   */
  snapshot: z.union([z.boolean(), z.literal('copy')]).optional(),
  target: TargetSettings,
  /**
   * `manager`: before it writes the manifest's root (the commit point) the agent asks the manager that sent
   * the job for leave (`POST /v1/agent/jobs/{job_id}/commit`, `CommitGrant`), and fails the backup when the
   * manager refuses or cannot be reached; the root's write must then finish within the grant's
   * `valid_for_ms` or is aborted. This is the fence that keeps the manager's garbage collection from
   * deleting what an uncommitted backup still uses (docs/operations.md#gc). Absent: the agent commits
   * without asking (a standalone agent).
   */
  commit_fence: z.literal('manager').optional(),
});
export type BackupRequest = z.infer<typeof BackupRequest>;

export const BackupRef = z
  .strictObject({
    volume_id: Uuid,
    backup_id: Uuid,
    /** Always `manifests/<volume_id>/<backup_id>` (docs/format.md), in any case; anything else is refused. */
    manifest_key: z
      .string()
      .min(1)
      .max(1024)
      .transform((key) => key.toLowerCase()),
  })
  .refine((ref) => ref.manifest_key === manifestKeyOf(ref.volume_id, ref.backup_id), {
    message: 'must be manifests/<volume_id>/<backup_id>',
    path: ['manifest_key'],
  });
export type BackupRef = z.infer<typeof BackupRef>;

/**
 * Where a restore writes: a new volume the job provisions with the backup's size (`name`) and deletes again
 * if the restore fails or is cancelled, or an existing volume (`locator`: a block device, or a volume the
 * caller provisioned), which is left marked failed — not removed — when the restore does not complete.
 */
export const RestoreDestination = z.union([
  z.strictObject({ backend: BackendKind, name: VolumeName }),
  z.strictObject({ backend: BackendKind, locator: Locator }),
]);
export type RestoreDestination = z.infer<typeof RestoreDestination>;

export const RestoreRequest = z.strictObject({
  job_id: Uuid,
  backup: BackupRef,
  destination: RestoreDestination,
  target: TargetSettings,
});
export type RestoreRequest = z.infer<typeof RestoreRequest>;

/**
 * Verify one backup where it lies: the agent reads its manifest and its chunks (all, or `sample_percent` of
 * them, always with those its damage record lists) from the bucket and checks each (docs/format.md §4.4),
 * keeping the backup's damage record (§12.5). When it finds damage, it then checks which other backups name
 * what is damaged (one pass over every manifest and a listing of the packs, reading only the chunks damage
 * records list) and records their damage too, so that every backup naming a damaged chunk is known
 * (`VerifyResult.damaged_backups`). Nothing of the data leaves the agent but the findings.
 */
export const VerifyRequest = z.strictObject({
  job_id: Uuid,
  backup: BackupRef,
  /** Percentage of the backup's distinct chunk objects to read, in (0, 100]; default 100 (every one). */
  sample_percent: z.number().gt(0).max(100).optional(),
  target: TargetSettings,
});
export type VerifyRequest = z.infer<typeof VerifyRequest>;

export const JOB_KINDS = ['backup', 'restore', 'verify'] as const;
export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export const JobState = z.enum(JOB_STATES);
export type JobState = z.infer<typeof JobState>;
export const TERMINAL_JOB_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export const JobProgress = z.strictObject({
  /** What the bytes count: copying the volume into a snapshot (`snapshot: "copy"`), or moving its data to or
   * from the bucket. Absent before the job started either. */
  phase: z.enum(['snapshot', 'transfer']).optional(),
  bytes_done: Bytes,
  bytes_total: Bytes,
  /** Bytes per second since the job started moving data. */
  rate: z.number().min(0),
  /** Seconds left at the current rate; null before there is a rate. */
  eta_seconds: z.number().min(0).nullable(),
});
export type JobProgress = z.infer<typeof JobProgress>;

export const BackupResult = z.strictObject({
  backup_id: Uuid,
  volume_id: Uuid,
  volume_name: z.string(),
  manifest_key: z.string(),
  created_at: Timestamp,
  size: Bytes,
  bytes_read: Bytes,
  bytes_uploaded: Bytes,
  chunks: Bytes,
  chunks_new: Bytes,
  holes: Bytes,
  hole_bytes: Bytes,
  seconds: z.number().min(0),
  /** How the volume was frozen for the read: a snapshot's method, or `none` for a live read. */
  snapshot: z.enum(['reflink', 'copy', 'none']),
});
export type BackupResult = z.infer<typeof BackupResult>;

export const RestoreResult = z.strictObject({
  backup_id: Uuid,
  volume: Volume,
  size: Bytes,
  bytes_written: Bytes,
  bytes_downloaded: Bytes,
  chunks: Bytes,
  holes: Bytes,
  seconds: z.number().min(0),
});
export type RestoreResult = z.infer<typeof RestoreResult>;

/** A damaged chunk object a verify found, as the engine reports it (`VerifyProblem`). */
export const VerifyProblem = z.strictObject({
  /** `packs/<hh>/<pack-id>`, or a manifest segment's `chunks/<hh>/<id>`. */
  object_key: z.string(),
  /** `packs/<hh>/<pack-id>@<offset>+<length>`; null for a segment. */
  location: z.string().nullable(),
  chunk_id: z.string(),
  problem: z.enum(['missing', 'corrupt']),
  message: z.string(),
});
export type VerifyProblem = z.infer<typeof VerifyProblem>;

/** Problems listed in a `VerifyResult` (the counts stay exact beyond it). */
export const MAX_VERIFY_PROBLEMS = 50;
/** Damaged backups named in a `VerifyResult` (more: `damaged_backups_truncated`), so an event stays small. */
export const MAX_DAMAGED_BACKUPS = 1000;

/** A backup the verify found damaged: the verified one, or one naming a damaged chunk it found. */
export const DamagedBackup = z.strictObject({
  volume_id: Uuid,
  backup_id: Uuid,
  /** Damaged chunk objects of it the verify knows of (at least: the repository check lists at most 10,000
   * chunks per problem); 0 for a manifest that does not decode. */
  damaged_chunks: Bytes,
  /** Its manifest exists and does not decode: nothing of it restores. */
  manifest_damaged: z.boolean(),
});
export type DamagedBackup = z.infer<typeof DamagedBackup>;

export const VerifyResult = z.strictObject({
  backup_id: Uuid,
  volume_id: Uuid,
  /** The share of chunks read (100: a full verify). */
  sample_percent: z.number().gt(0).max(100),
  /** Distinct chunk objects the manifest names, and of them the ones read and found healthy. */
  chunks_total: Bytes,
  chunks_checked: Bytes,
  bytes_checked: Bytes,
  segments_checked: Bytes,
  /** Damaged chunk objects of this backup (that no other stored copy makes good): missing, corrupt. */
  missing_chunks: Bytes,
  corrupt_chunks: Bytes,
  /** Damaged where the manifest names them but read whole from another copy: they restore, no damage. */
  chunks_from_copies: Bytes,
  /** The first `MAX_VERIFY_PROBLEMS` problems, by object key. */
  problems: z.array(VerifyProblem).max(MAX_VERIFY_PROBLEMS),
  /** True when the backup does not restore whole: some chunk is missing or corrupt. */
  damaged: z.boolean(),
  /** What became of the backup's damage record (`damage/<volume>/<backup>`), and why it could not be kept. */
  damage_record: z
    .strictObject({ action: z.enum(['written', 'deleted', 'unchanged']), chunks_listed: Bytes })
    .nullable(),
  damage_record_error: z.string().nullable(),
  /**
   * Every backup found damaged — this one when `damaged`, and every other naming a damaged chunk (from the
   * repository check that runs when damage was found; empty otherwise). At most `MAX_DAMAGED_BACKUPS`.
   */
  damaged_backups: z.array(DamagedBackup).max(MAX_DAMAGED_BACKUPS),
  damaged_backups_truncated: z.boolean(),
  /** The repository check run after damage was found (null: none ran, nothing was damaged). */
  repository_check: z
    .strictObject({
      manifests_checked: Bytes,
      missing_chunks: Bytes,
      corrupt_chunks: Bytes,
      damage_records_written: Bytes,
      seconds: z.number().min(0),
    })
    .nullable(),
  /**
   * Why the repository check after damage was found failed (a storage error, a manifest deleted while it
   * read): the backup's own findings stand, but other backups naming its damaged chunks are not named.
   */
  repository_check_error: z.string().nullable(),
  seconds: z.number().min(0),
});
export type VerifyResult = z.infer<typeof VerifyResult>;

export const Job = z.strictObject({
  id: Uuid,
  kind: z.enum(JOB_KINDS),
  state: JobState,
  created_at: Timestamp,
  started_at: Timestamp.nullable(),
  finished_at: Timestamp.nullable(),
  progress: JobProgress,
  /** Why the job failed or was cancelled. */
  error: ApiErrorBody.nullable(),
  /** The outcome, on success. */
  result: z.union([BackupResult, RestoreResult, VerifyResult]).nullable(),
  /** For a restore that did not complete: what became of the destination volume. */
  destination: z
    .strictObject({ volume: Volume.nullable(), state: z.enum(['available', 'failed', 'removed']) })
    .nullable(),
});
export type Job = z.infer<typeof Job>;

export const JobAccepted = z.strictObject({ job_id: Uuid, state: JobState });
export type JobAccepted = z.infer<typeof JobAccepted>;

/**
 * What the agent POSTs to the manager (`POST <manager>/v1/agent/job-events`, with the agent's own token),
 * retried with backoff until a 2xx. `event_id` is `<job id>:<seq>`, so a redelivered event is recognised;
 * `seq` grows within a job, so an older progress event never overwrites a newer one. Progress events are
 * sent at most once a second and may be dropped in favour of a newer one; the `finished` event is kept in the
 * agent's state file until acknowledged, across restarts.
 */
export const JobEvent = z.strictObject({
  event_id: z.string().regex(/^[0-9a-f-]{36}:\d+$/),
  agent_id: z.string().min(1),
  seq: z.number().int().min(0),
  type: z.enum(['progress', 'finished']),
  at: Timestamp,
  job: Job,
});
export type JobEvent = z.infer<typeof JobEvent>;

/** Where a backup's manifest lives in its repository (docs/format.md). */
export function manifestKeyOf(volumeId: string, backupId: string): string {
  return `manifests/${volumeId.toLowerCase()}/${backupId.toLowerCase()}`;
}

export const MANAGER_JOB_EVENTS_PATH = '/v1/agent/job-events';

/** Where an agent asks leave to commit a fenced backup (`BackupRequest.commit_fence`); `{id}` is the job id. */
export const MANAGER_JOB_COMMIT_PATH = '/v1/agent/jobs/{id}/commit';

/**
 * The manager's leave to write one backup's manifest root. The agent counts `valid_for_ms` from when it sent
 * the request (so clocks need not agree) and aborts a root write still running then; the manager keeps the
 * job's lease, and so holds back garbage collection, for this long plus a margin after it answered.
 */
export const CommitGrant = z.strictObject({
  job_id: z.uuid(),
  valid_for_ms: z.number().int().min(1).max(3_600_000),
});
export type CommitGrant = z.infer<typeof CommitGrant>;
