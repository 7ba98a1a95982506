import type {
  ApiErrorBody,
  ApiToken,
  BackendInfo,
  BackupTarget,
  Host,
  JobProgress,
  ManagedBackup,
  ManagedJob,
  ManagedVolume,
} from '@stowage/api';
import type { ApiTokenRow, BackupRow, BackupTargetRow, HostRow, JobRow } from '../db/schema.js';
import { targetUsage } from '../db/targets.js';
import type { VolumeWithLastBackup } from '../db/volumes.js';
import { scheduleJson } from '../services/schedules.js';
import { snapshotMode } from '../services/volumes.js';
import { locationOf, repositoryUrl } from '../targets/locations.js';

/**
 * Rows as the API shows them. These are the only places a row leaves the manager, and none of them reads a
 * secret column (credentials, target_key, agent_token, token_hash): what is not copied here cannot leak.
 */
const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());
const errorBody = (value: unknown): ApiErrorBody | null =>
  value === null || value === undefined ? null : (value as ApiErrorBody);

export function tokenJson(row: ApiTokenRow): ApiToken {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    host_id: row.host_id,
    created_at: row.created_at.toISOString(),
    last_used_at: iso(row.last_used_at),
    revoked_at: iso(row.revoked_at),
  };
}

export function hostJson(row: HostRow): Host {
  return {
    id: row.id,
    name: row.name,
    url: row.url,
    agent_id: row.agent_id,
    status: row.status,
    last_contact_at: iso(row.last_contact_at),
    last_error: row.last_error,
    backends: row.backends as BackendInfo[],
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export function targetJson(row: BackupTargetRow): BackupTarget {
  const location = locationOf(row);
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    s3:
      location.kind === 's3'
        ? {
            endpoint: location.endpoint,
            region: location.region,
            bucket: location.bucket,
            prefix: location.prefix,
            path_style: location.pathStyle,
          }
        : null,
    filesystem: location.kind === 'filesystem' ? { path: location.path } : null,
    repository: repositoryUrl(location),
    repository_id: row.repository_id,
    chunker: row.chunker,
    gc_hour: row.gc_hour,
    gc_enabled: row.gc_enabled,
    gc_grace_seconds: row.gc_grace_seconds,
    verify_every_days: row.verify_every_days,
    verify_sample_percent: row.verify_sample_percent,
    timezone: row.timezone,
    has_credentials: row.credentials !== null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    usage: targetUsage(row),
  };
}

export function volumeJson(row: VolumeWithLastBackup, now: Date = new Date()): ManagedVolume {
  return {
    id: row.id,
    name: row.name,
    host_id: row.host_id,
    backend: row.backend as ManagedVolume['backend'],
    locator: row.locator,
    size: row.size,
    state: row.state,
    backup_target_id: row.backup_target_id,
    snapshot: snapshotMode(row.snapshot),
    schedule: scheduleJson(row, now),
    last_backup_at: iso(row.last_backup_at === null ? null : new Date(row.last_backup_at)),
    last_backup_id: row.last_backup_id,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    error: errorBody(row.error),
  };
}

export function backupJson(row: BackupRow): ManagedBackup {
  return {
    id: row.id,
    volume_id: row.volume_id,
    backup_target_id: row.backup_target_id,
    job_id: row.job_id,
    state: row.state,
    started_at: row.started_at.toISOString(),
    finished_at: iso(row.finished_at),
    size: row.size,
    bytes_read: row.bytes_read,
    bytes_uploaded: row.bytes_uploaded,
    chunks: row.chunks,
    chunks_new: row.chunks_new,
    manifest_key: row.manifest_key,
    duration_seconds:
      row.finished_at === null
        ? null
        : Math.max(0, (row.finished_at.getTime() - row.started_at.getTime()) / 1000),
    snapshot: row.snapshot as ManagedBackup['snapshot'],
    error: errorBody(row.error),
    verification: {
      state: row.verify_state ?? 'unverified',
      verified_at: iso(row.verified_at),
      sample_percent: row.verify_sample_percent,
      damaged_chunks: row.verify_state === 'damaged' ? row.damaged_chunks : null,
      damage_found_at: row.verify_state === 'damaged' ? iso(row.damage_found_at) : null,
      job_id: row.verify_job_id,
      error: errorBody(row.verify_error),
    },
  };
}

export function jobJson(row: JobRow): ManagedJob {
  return {
    id: row.id,
    kind: row.kind,
    state: row.state,
    host_id: row.host_id,
    volume_id: row.volume_id,
    backup_id: row.backup_id,
    created_at: row.created_at.toISOString(),
    started_at: iso(row.started_at),
    finished_at: iso(row.finished_at),
    last_event_at: iso(row.last_event_at),
    progress: row.progress as JobProgress,
    error: errorBody(row.error),
  };
}
