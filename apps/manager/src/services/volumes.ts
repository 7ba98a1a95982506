import { randomUUID } from 'node:crypto';
import { ApiError, type BackendKind, type SnapshotMode } from '@stowage/api';
import { runningBackupOf } from '../db/backups.js';
import { uniqueViolation } from '../db/conn.js';
import { getTarget } from '../db/targets.js';
import {
  countBackupsOfVolume,
  deleteVolumeRow,
  getVolume,
  insertVolume,
  updateVolume,
  type VolumeWithLastBackup,
} from '../db/volumes.js';
import type { ManagerContext } from './context.js';
import { callAgent, requireHost } from './hosts.js';

interface VolumeSettings {
  targetId?: string | undefined;
  snapshot?: SnapshotMode | undefined;
}

export type NewVolumeInput =
  | ({ name: string; hostId: string; backend: BackendKind; size: number } & VolumeSettings)
  | ({ name?: string | undefined; hostId: string; backend: BackendKind; locator: string } & VolumeSettings);

/** The API's snapshot mode as the column stores it, and back. */
export function snapshotColumn(mode: SnapshotMode | undefined): 'snapshot' | 'copy' | 'live' {
  return mode === 'copy' ? 'copy' : mode === false ? 'live' : 'snapshot';
}
export function snapshotMode(column: 'snapshot' | 'copy' | 'live'): SnapshotMode {
  return column === 'copy' ? 'copy' : column !== 'live';
}

export async function requireVolume(ctx: ManagerContext, id: string): Promise<VolumeWithLastBackup> {
  const volume = await getVolume(ctx.db, id);
  if (!volume) throw new ApiError('not_found', `no volume ${id}`);
  return volume;
}

async function checkTarget(ctx: ManagerContext, targetId: string | undefined): Promise<void> {
  if (targetId !== undefined && !(await getTarget(ctx.db, targetId))) {
    throw new ApiError('not_found', `no backup target ${targetId}`, { field: 'backup_target_id' });
  }
}

/**
 * Creates a volume through the host's agent (provisioned: a sparse image of `size` bytes), or adopts one
 * already on the host (`locator`: the agent confirms it exists and reports its size). Either way the row
 * is written only once the agent has answered, so a failed call leaves nothing behind.
 */
export async function createVolume(
  ctx: ManagerContext,
  input: NewVolumeInput,
): Promise<VolumeWithLastBackup> {
  const host = await requireHost(ctx, input.hostId);
  await checkTarget(ctx, input.targetId);
  const adopting = 'locator' in input;
  const found = await callAgent(ctx, host, (agent) =>
    adopting
      ? agent.getVolume(input.backend, input.locator)
      : agent.provisionVolume({ backend: input.backend, name: input.name, size: input.size }),
  );
  const id = randomUUID();
  const now = ctx.now();
  try {
    await insertVolume(ctx.db, {
      id,
      name: input.name ?? found.name,
      host_id: host.id,
      backend: found.backend,
      locator: found.locator,
      size: found.size,
      state: 'available',
      backup_target_id: input.targetId ?? null,
      provisioned: !adopting,
      snapshot: snapshotColumn(input.snapshot),
      created_at: now,
      updated_at: now,
    });
  } catch (error) {
    if (uniqueViolation(error) === 'volume_locator_unique') {
      throw new ApiError('conflict', `${found.locator} on host ${host.name} is already in the inventory`, {
        locator: found.locator,
      });
    }
    throw error;
  }
  ctx.logger.info(adopting ? 'volume adopted' : 'volume provisioned', {
    volume_id: id,
    host_id: host.id,
    locator: found.locator,
  });
  return requireVolume(ctx, id);
}

/**
 * Deletes a volume. A provisioned one is deleted on its host; an adopted one is only forgotten (its data
 * stays). A volume with backups keeps its row, archived, so that its backups stay listed and restorable.
 * 409 while a backup of it runs.
 */
export async function deleteVolume(ctx: ManagerContext, id: string): Promise<void> {
  const volume = await requireVolume(ctx, id);
  const running = await runningBackupOf(ctx.db, id);
  if (running)
    throw new ApiError('conflict', `a backup of volume ${id} is running`, { job_id: running.job_id });
  if (volume.state === 'restoring' || volume.state === 'creating') {
    throw new ApiError('conflict', `volume ${id} is ${volume.state}; cancel its job first`);
  }
  if (
    volume.provisioned &&
    volume.host_id !== null &&
    volume.locator !== null &&
    volume.state !== 'archived'
  ) {
    const host = await requireHost(ctx, volume.host_id);
    const { backend, locator } = volume;
    await callAgent(ctx, host, (agent) => agent.deleteVolume(backend, locator)).catch((error: unknown) => {
      // Already gone on the host: forgetting it is what is left to do.
      if (!(error instanceof ApiError && error.code === 'not_found')) throw error;
    });
  }
  if ((await countBackupsOfVolume(ctx.db, id)) > 0) {
    await updateVolume(ctx.db, id, { state: 'archived', updated_at: ctx.now() });
  } else {
    await deleteVolumeRow(ctx.db, id);
  }
  ctx.logger.info('volume deleted', { volume_id: id, kept_as_archived: volume.last_backup_id !== null });
}
