import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { configuredPath, normalizeLocator, outsideRoots } from './confine.js';
import { cancelled, fromNative, HostBackendError, type HostBackendOp } from './errors.js';
import { blockDeviceSize, handleReader, handleWriter } from './file-io.js';
import type {
  HostBackend,
  OpenOptions,
  ProvisionRequest,
  SnapshotInfo,
  SnapshotOptions,
  SnapshotResult,
  VolumeInfo,
  VolumeReader,
  VolumeWriter,
} from './host-backend.js';

export interface BlockBackendOptions {
  /** Absolute paths of the block devices the agent may read and write (e.g. `/dev/disk/by-id/…`); any
   * other locator is `outside-roots`, however it resolves. */
  readonly devices: readonly string[];
}

/**
 * Existing block devices, named by allow-listed paths. Devices are neither created nor destroyed here
 * (`provision` and `deleteVolume` are `unsupported`), and there are no snapshots until a pre-snapshot hook
 * exists: `snapshot` is `unsupported`. A device opened for writing is opened exclusively, so one that is
 * mounted or held by another exclusive opener is `busy`.
 */
export class BlockBackend implements HostBackend {
  readonly kind = 'block';
  readonly capabilities = { provision: false, snapshot: false } as const;
  private readonly devices: readonly string[];

  constructor(options: BlockBackendOptions) {
    this.devices = [...new Set(options.devices.map((device) => configuredPath(device, 'device')))];
  }

  async provision(request: ProvisionRequest): Promise<VolumeInfo> {
    throw new HostBackendError('unsupported', 'block devices are not provisioned by the agent', {
      op: 'provision',
      locator: request.name,
    });
  }

  async list(): Promise<VolumeInfo[]> {
    const volumes: VolumeInfo[] = [];
    for (const device of [...this.devices].sort()) {
      try {
        volumes.push(await this.stat(device));
      } catch (error) {
        // A device that is not there now (unplugged, LUN not logged in) is simply not listed.
        if (!(error instanceof HostBackendError && error.kind === 'not-found')) throw error;
      }
    }
    return volumes;
  }

  async stat(locator: string): Promise<VolumeInfo> {
    const device = this.allowed(locator, 'stat');
    const stats = await stat(device).catch((error: unknown) => {
      throw fromNative(error, 'cannot stat device', 'stat', device);
    });
    if (!stats.isBlockDevice()) throw notABlockDevice(device, 'stat');
    return { locator: device, name: basename(device), size: await sizeOf(stats.rdev, device, 'stat') };
  }

  /** No snapshots, copies allowed or not (`unsupported`): `options` change nothing. */
  async snapshot(volume: string, _name: string, _options: SnapshotOptions = {}): Promise<SnapshotResult> {
    const device = this.allowed(volume, 'snapshot');
    throw new HostBackendError(
      'unsupported',
      `cannot snapshot ${device}: block devices have no snapshots without a pre-snapshot hook`,
      { op: 'snapshot', locator: device },
    );
  }

  async listSnapshots(volume: string): Promise<SnapshotInfo[]> {
    await this.stat(volume);
    return [];
  }

  async openReader(locator: string, options: OpenOptions = {}): Promise<VolumeReader> {
    const device = this.allowed(locator, 'open-reader');
    // Opening a device does not wait on anything, so a signal only matters if it was aborted already.
    if (options.signal?.aborted) throw cancelled('open-reader', device, options.signal);
    const { handle, size } = await openDevice(device, fsConstants.O_RDONLY, 'open-reader');
    return handleReader(handle, device, size);
  }

  async openWriter(volume: string, options: OpenOptions = {}): Promise<VolumeWriter> {
    const device = this.allowed(volume, 'open-writer');
    if (options.signal?.aborted) throw cancelled('open-writer', device, options.signal);
    // O_EXCL on a block device fails with EBUSY while it is mounted or otherwise held open exclusively.
    const { handle, size } = await openDevice(
      device,
      fsConstants.O_WRONLY | fsConstants.O_EXCL,
      'open-writer',
    );
    return handleWriter(handle, device, size);
  }

  async deleteSnapshot(snapshot: string): Promise<void> {
    const device = this.allowed(snapshot, 'delete-snapshot');
    throw new HostBackendError('unsupported', `block devices have no snapshots to delete (${device})`, {
      op: 'delete-snapshot',
      locator: device,
    });
  }

  async deleteVolume(volume: string): Promise<void> {
    const device = this.allowed(volume, 'delete-volume');
    throw new HostBackendError('unsupported', `block devices are not deleted by the agent (${device})`, {
      op: 'delete-volume',
      locator: device,
    });
  }

  /** Holds nothing between calls: every reader and writer is closed by its caller. */
  async close(): Promise<void> {}

  /** Only the configured paths themselves, spelled as configured: nothing else is ever opened. */
  private allowed(locator: string, op: HostBackendOp): string {
    const normalized = normalizeLocator(locator, op);
    if (!this.devices.includes(normalized)) throw outsideRoots(normalized, op, 'the allowed devices');
    return normalized;
  }
}

async function openDevice(
  device: string,
  flags: number,
  op: HostBackendOp,
): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(device, flags);
  } catch (error) {
    throw fromNative(error, 'cannot open device', op, device);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isBlockDevice()) throw notABlockDevice(device, op);
    return { handle, size: await sizeOf(stats.rdev, device, op) };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function sizeOf(rdev: number, device: string, op: HostBackendOp): Promise<number> {
  try {
    return await blockDeviceSize(rdev);
  } catch (error) {
    throw fromNative(error, 'cannot read the size of device', op, device);
  }
}

function notABlockDevice(device: string, op: HostBackendOp): HostBackendError {
  return new HostBackendError('invalid-locator', `${device} is not a block device`, { op, locator: device });
}
