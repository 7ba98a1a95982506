import { z } from 'zod';
import { BackendKind, Locator, VolumeName } from '../agent.js';
import { ApiErrorBody } from '../errors.js';
import { Bytes, ListQuery, Page, Timestamp, Uuid } from './primitives.js';
import { BackupSchedule } from './schedules.js';

/**
 * Volumes the manager knows: provisioned through a host's agent, adopted (a locator already on the host), or
 * restored from a backup. `archived`: the volume is gone from its host (or its host from the inventory) but
 * its backups remain restorable.
 */
export const VOLUME_STATES = [
  'creating',
  'available',
  'restoring',
  'failed',
  'archived',
  'deleting',
] as const;
export const VolumeState = z.enum(VOLUME_STATES);
export type VolumeState = z.infer<typeof VolumeState>;

/**
 * How a backup freezes the volume for its read (the agent's `BackupRequest.snapshot`): `true` a
 * point-in-time snapshot (a reflink) or the backup fails; `"copy"` a snapshot where possible, else a full
 * copy, point in time only while nothing writes the volume; `false` the live volume. A backup-now request
 * may override it.
 */
export const SnapshotMode = z.union([z.boolean(), z.literal('copy')]);
export type SnapshotMode = z.infer<typeof SnapshotMode>;

export const ManagedVolume = z.strictObject({
  id: Uuid,
  name: z.string(),
  host_id: Uuid.nullable(),
  backend: BackendKind,
  /** Null until the agent has provisioned it. */
  locator: z.string().nullable(),
  size: Bytes,
  state: VolumeState,
  /** Where `backup now` writes when the request names no target. */
  backup_target_id: Uuid.nullable(),
  snapshot: SnapshotMode,
  /** Its cron schedule and retention policy, and when the scheduler fires next. */
  schedule: BackupSchedule,
  last_backup_at: Timestamp.nullable(),
  last_backup_id: Uuid.nullable(),
  created_at: Timestamp,
  updated_at: Timestamp,
  /** Why it is `failed`. */
  error: ApiErrorBody.nullable(),
});
export type ManagedVolume = z.infer<typeof ManagedVolume>;
export const ManagedVolumePage = Page(ManagedVolume);

/** A new volume the host's agent provisions. */
export const NewVolumeRequest = z.strictObject({
  name: VolumeName,
  host_id: Uuid,
  backend: BackendKind,
  size: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  backup_target_id: Uuid.optional(),
  /** Default `true`. */
  snapshot: SnapshotMode.optional(),
});
export type NewVolumeRequest = z.infer<typeof NewVolumeRequest>;

/** An existing volume on the host, taken into the inventory; `name` defaults to the agent's name for it. */
export const AdoptVolumeRequest = z.strictObject({
  name: VolumeName.optional(),
  host_id: Uuid,
  backend: BackendKind,
  locator: Locator,
  backup_target_id: Uuid.optional(),
  /** Default `true`. */
  snapshot: SnapshotMode.optional(),
});
export type AdoptVolumeRequest = z.infer<typeof AdoptVolumeRequest>;

/** Create or adopt: `locator` present means adopt. Both sides are strict, so a body cannot be both. */
export const CreateVolumeRequest = z.union([NewVolumeRequest, AdoptVolumeRequest]);
export type CreateVolumeRequest = z.infer<typeof CreateVolumeRequest>;

export function isAdoptRequest(request: CreateVolumeRequest): request is AdoptVolumeRequest {
  return 'locator' in request;
}

export const VolumeListQuery = ListQuery.extend({
  host_id: Uuid.optional(),
  backup_target_id: Uuid.optional(),
  state: VolumeState.optional(),
  /** Only volumes whose name contains this, ignoring case (the console's search). */
  name: z.string().min(1).max(253).optional(),
});
export type VolumeListQuery = z.infer<typeof VolumeListQuery>;
