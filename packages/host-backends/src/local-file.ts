import { type Dirent, constants as fsConstants } from 'node:fs';
import {
  copyFile,
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  unlink,
} from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { configuredPath, isInside, normalizeLocator, outsideRoots } from './confine.js';
import { cancelled, fromNative, HostBackendError, type HostBackendOp } from './errors.js';
import { handleReader, handleWriter } from './file-io.js';
import {
  type HostBackend,
  type OpenOptions,
  type ProvisionRequest,
  type SnapshotInfo,
  type SnapshotResult,
  type VolumeInfo,
  type VolumeReader,
  type VolumeWriter,
  validateName,
  validateSize,
} from './host-backend.js';

/** The directory, beside each volume, that holds its snapshots (same filesystem, so reflinks work). */
export const SNAPSHOT_DIRECTORY = '.stowage-snapshots';

/**
 * `auto` tries a reflink and falls back to a sparse copy; `reflink` fails with `unsupported` where the
 * filesystem has no reflinks; `copy` never tries one.
 */
export type LocalSnapshotMode = 'auto' | 'reflink' | 'copy';

export interface LocalFileBackendOptions {
  /** Absolute directories; every volume and snapshot lives below one of them. `provision` uses the first
   * unless told otherwise. */
  readonly roots: readonly string[];
  readonly snapshotMode?: LocalSnapshotMode;
}

export interface LocalProvisionRequest extends ProvisionRequest {
  /** One of the configured roots, exactly as configured; the first by default. */
  readonly root?: string;
}

/** Errors from FICLONE that mean "this filesystem (or this pair of files) cannot share blocks". */
const NO_REFLINK_CODES = new Set(['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOTTY', 'ENOSYS']);
const COPY_BLOCK = 1024 * 1024;
const HOLE_GRAIN = 64 * 1024;

interface Resolved {
  /** The canonical locator: the real path, spelled from the configured root it lies under. */
  readonly locator: string;
  /** The real path: no symlinks, no `.`. */
  readonly real: string;
  readonly realRoot: string;
}

/**
 * Volumes as sparse raw image files under configured roots; snapshots as reflinks (FICLONE, as
 * `cp --reflink` does) in a `.stowage-snapshots` directory beside the volume, or sparse copies where the
 * filesystem has no reflinks.
 *
 * Confinement: a locator is checked lexically first (absolute, no `..`, under a root as configured or as
 * resolved), then resolved with realpath and checked again, and every opened descriptor is checked once
 * more through /proc/self/fd before a byte is read, so a symlink swapped in between cannot lead outside.
 */
export class LocalFileBackend implements HostBackend {
  readonly kind = 'local-file';
  readonly capabilities = { provision: true, snapshot: true } as const;
  private readonly roots: readonly string[];
  private readonly snapshotMode: LocalSnapshotMode;
  private realRootsCache: Promise<readonly string[]> | undefined;

  constructor(options: LocalFileBackendOptions) {
    if (options.roots.length === 0) throw new Error('LocalFileBackend needs at least one root');
    this.roots = options.roots.map((root) => configuredPath(root, 'root'));
    this.snapshotMode = options.snapshotMode ?? 'auto';
  }

  async provision(request: LocalProvisionRequest): Promise<VolumeInfo> {
    const op = 'provision';
    validateName(request.name, op);
    validateSize(request.size, op, request.name);
    const rootIndex = request.root === undefined ? 0 : this.roots.indexOf(request.root);
    if (rootIndex < 0) throw outsideRoots(String(request.root), op, 'the configured roots');
    const realRoot = (await this.realRoots(op))[rootIndex]!;
    const path = join(realRoot, request.name);
    const locator = join(this.roots[rootIndex]!, request.name);
    let handle: FileHandle;
    try {
      handle = await open(
        path,
        fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
        0o600,
      );
    } catch (error) {
      throw fromNative(error, 'cannot create volume', op, locator);
    }
    try {
      await handle.truncate(request.size);
      await handle.close();
    } catch (error) {
      await handle.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw fromNative(error, `cannot make a ${request.size}-byte volume at`, op, locator);
    }
    await syncDirectory(realRoot).catch(() => {});
    return { locator, name: request.name, size: request.size };
  }

  async list(): Promise<VolumeInfo[]> {
    const realRoots = await this.realRoots('list');
    const volumes: VolumeInfo[] = [];
    for (const [index, realRoot] of realRoots.entries()) {
      let entries: Dirent[];
      try {
        entries = await readdir(realRoot, { withFileTypes: true });
      } catch (error) {
        throw fromNative(error, 'cannot list root', 'list', this.roots[index]);
      }
      for (const entry of entries) {
        if (!entry.isFile() || entry.name.startsWith('.')) continue;
        const stats = await lstat(join(realRoot, entry.name)).catch(() => undefined);
        if (!stats?.isFile()) continue;
        volumes.push({ locator: join(this.roots[index]!, entry.name), name: entry.name, size: stats.size });
      }
    }
    return volumes.sort((a, b) => compare(a.locator, b.locator));
  }

  async stat(locator: string): Promise<VolumeInfo> {
    const volume = await this.resolveVolume(locator, 'stat');
    const stats = await lstat(volume.real).catch((error: unknown) => {
      throw fromNative(error, 'cannot stat volume', 'stat', volume.locator);
    });
    if (!stats.isFile()) throw notAFile(volume.locator, 'stat');
    return { locator: volume.locator, name: basename(volume.real), size: stats.size };
  }

  async snapshot(volumeLocator: string, name: string): Promise<SnapshotResult> {
    const op = 'snapshot';
    validateName(name, op);
    const volume = await this.resolveVolume(volumeLocator, op);
    const source = await this.openConfined(volume, fsConstants.O_RDONLY, op);
    try {
      const stats = await source.stat();
      if (!stats.isFile()) throw notAFile(volume.locator, op);
      const directory = await this.snapshotDirectory(volume, op, true);
      const fileName = `${basename(volume.real)}@${name}`;
      const target = join(directory, fileName);
      const info: SnapshotInfo = {
        locator: join(dirname(volume.locator), SNAPSHOT_DIRECTORY, fileName),
        volume: volume.locator,
        name,
        size: stats.size,
      };
      if (this.snapshotMode !== 'copy') {
        try {
          await copyFile(volume.real, target, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE_FORCE);
          return { ...info, method: 'reflink' };
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code === undefined || !NO_REFLINK_CODES.has(code)) {
            throw fromNative(error, 'cannot snapshot volume', op, volume.locator);
          }
          if (this.snapshotMode === 'reflink') {
            throw new HostBackendError(
              'unsupported',
              `cannot snapshot ${volume.locator}: its filesystem has no reflinks (${code}) and copies are off`,
              { op, locator: volume.locator, cause: error },
            );
          }
        }
      }
      await sparseCopy(source, stats.size, directory, fileName, volume.locator);
      return { ...info, method: 'copy' };
    } finally {
      await source.close();
    }
  }

  async listSnapshots(volumeLocator: string): Promise<SnapshotInfo[]> {
    const op = 'list-snapshots';
    const volume = await this.resolveVolume(volumeLocator, op);
    const stats = await lstat(volume.real).catch((error: unknown) => {
      throw fromNative(error, 'cannot stat volume', op, volume.locator);
    });
    if (!stats.isFile()) throw notAFile(volume.locator, op);
    return this.snapshotsOf(volume, op);
  }

  async openReader(locator: string, options: OpenOptions = {}): Promise<VolumeReader> {
    const op = 'open-reader';
    const resolved = await this.resolve(locator, op);
    // Opening a file does not wait on anything, so a signal only matters if it was aborted already.
    if (options.signal?.aborted) throw cancelled(op, resolved.locator, options.signal);
    const handle = await this.openConfined(resolved, fsConstants.O_RDONLY, op);
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw notAFile(resolved.locator, op);
      return handleReader(handle, resolved.locator, stats.size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async openWriter(volumeLocator: string, options: OpenOptions = {}): Promise<VolumeWriter> {
    const op = 'open-writer';
    const volume = await this.resolveVolume(volumeLocator, op);
    if (options.signal?.aborted) throw cancelled(op, volume.locator, options.signal);
    const handle = await this.openConfined(volume, fsConstants.O_WRONLY, op);
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw notAFile(volume.locator, op);
      return handleWriter(handle, volume.locator, stats.size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Holds nothing between calls: every reader and writer is closed by its caller. */
  async close(): Promise<void> {}

  async deleteSnapshot(snapshotLocator: string): Promise<void> {
    const op = 'delete-snapshot';
    const snapshot = await this.resolve(snapshotLocator, op);
    if (!isSnapshotPath(snapshot.real)) {
      throw new HostBackendError('invalid-locator', `${snapshot.locator} is not a snapshot`, {
        op,
        locator: snapshot.locator,
      });
    }
    await unlinkFile(snapshot, op);
  }

  async deleteVolume(volumeLocator: string): Promise<void> {
    const op = 'delete-volume';
    const volume = await this.resolveVolume(volumeLocator, op);
    const snapshots = await this.snapshotsOf(volume, op);
    if (snapshots.length > 0) {
      throw new HostBackendError(
        'busy',
        `${volume.locator} still has ${snapshots.length} snapshot(s) (${snapshots.map((s) => s.name).join(', ')}); delete them first`,
        { op, locator: volume.locator },
      );
    }
    await unlinkFile(volume, op);
  }

  private realRoots(op: HostBackendOp): Promise<readonly string[]> {
    if (this.realRootsCache === undefined) {
      const pending = Promise.all(
        this.roots.map((root) =>
          realpath(root).catch((error: unknown) => {
            throw fromNative(error, 'cannot resolve root', op, root);
          }),
        ),
      );
      // A root that is missing now may be mounted later: only a success is kept.
      this.realRootsCache = pending;
      pending.catch(() => {
        if (this.realRootsCache === pending) this.realRootsCache = undefined;
      });
    }
    return this.realRootsCache;
  }

  /** Confines a locator to the roots, resolving symlinks; a missing file inside the roots is `not-found`. */
  private async resolve(locator: string, op: HostBackendOp): Promise<Resolved> {
    const normalized = normalizeLocator(locator, op);
    const realRoots = await this.realRoots(op);
    const lexicallyInside =
      this.roots.some((root) => isInside(root, normalized)) ||
      realRoots.some((root) => isInside(root, normalized));
    // Nothing outside the roots is so much as looked at: not even whether it exists.
    if (!lexicallyInside) throw outsideRoots(normalized, op, 'the configured roots');
    let real: string;
    try {
      real = await realpath(normalized);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') {
        // Say not-found only when the directory it would be in is itself inside the roots.
        const parent = await realpath(dirname(normalized)).catch(() => undefined);
        if (parent !== undefined && !realRoots.some((root) => isInside(root, parent))) {
          throw outsideRoots(normalized, op, 'the configured roots');
        }
      }
      throw fromNative(error, 'cannot find', op, normalized);
    }
    const index = realRoots.findIndex((root) => isInside(root, real));
    if (index < 0) throw outsideRoots(normalized, op, 'the configured roots (it resolves to another place)');
    const realRoot = realRoots[index]!;
    return { locator: this.roots[index]! + real.slice(realRoot.length), real, realRoot };
  }

  /** Resolves a locator that must name a volume, not a snapshot or one of the backend's hidden files. */
  private async resolveVolume(locator: string, op: HostBackendOp): Promise<Resolved> {
    const resolved = await this.resolve(locator, op);
    if (isSnapshotPath(resolved.real) || basename(resolved.real).startsWith('.')) {
      throw new HostBackendError('invalid-locator', `${resolved.locator} is not a volume`, {
        op,
        locator: resolved.locator,
      });
    }
    return resolved;
  }

  /** Opens without following a last-moment symlink, then checks where the descriptor really points. */
  private async openConfined(resolved: Resolved, flags: number, op: HostBackendOp): Promise<FileHandle> {
    let handle: FileHandle;
    try {
      handle = await open(resolved.real, flags | fsConstants.O_NOFOLLOW);
    } catch (error) {
      throw fromNative(error, 'cannot open', op, resolved.locator);
    }
    const actual = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
    if (actual !== undefined && !isInside(resolved.realRoot, actual)) {
      await handle.close();
      throw outsideRoots(resolved.locator, op, 'the configured roots (it moved while being opened)');
    }
    return handle;
  }

  private async snapshotDirectory(volume: Resolved, op: HostBackendOp, create: boolean): Promise<string> {
    const directory = join(dirname(volume.real), SNAPSHOT_DIRECTORY);
    if (create) {
      await mkdir(directory, { mode: 0o700 }).catch((error: unknown) => {
        if ((error as { code?: string }).code !== 'EEXIST') {
          throw fromNative(error, 'cannot create the snapshot directory for', op, volume.locator);
        }
      });
    }
    const stats = await lstat(directory).catch(() => undefined);
    if (stats !== undefined && !stats.isDirectory()) {
      // A symlink planted here could send snapshots (and their reads) outside the roots.
      throw new HostBackendError('io', `${directory} is not a directory`, { op, locator: volume.locator });
    }
    return directory;
  }

  private async snapshotsOf(volume: Resolved, op: HostBackendOp): Promise<SnapshotInfo[]> {
    const directory = await this.snapshotDirectory(volume, op, false);
    let names: string[];
    try {
      names = await readdir(directory);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return [];
      throw fromNative(error, 'cannot list snapshots of', op, volume.locator);
    }
    const prefix = `${basename(volume.real)}@`;
    const snapshots: SnapshotInfo[] = [];
    for (const fileName of names.sort(compare)) {
      const name = fileName.slice(prefix.length);
      if (!fileName.startsWith(prefix) || name.includes('@') || name.length === 0) continue;
      const stats = await lstat(join(directory, fileName)).catch(() => undefined);
      if (!stats?.isFile()) continue;
      snapshots.push({
        locator: join(dirname(volume.locator), SNAPSHOT_DIRECTORY, fileName),
        volume: volume.locator,
        name,
        size: stats.size,
      });
    }
    return snapshots;
  }
}

function isSnapshotPath(real: string): boolean {
  const file = basename(real);
  return basename(dirname(real)) === SNAPSHOT_DIRECTORY && file.includes('@') && !file.startsWith('.');
}

function notAFile(locator: string, op: HostBackendOp): HostBackendError {
  return new HostBackendError('invalid-locator', `${locator} is not a regular file`, { op, locator });
}

async function unlinkFile(resolved: Resolved, op: HostBackendOp): Promise<void> {
  const stats = await lstat(resolved.real).catch((error: unknown) => {
    throw fromNative(error, 'cannot delete', op, resolved.locator);
  });
  if (!stats.isFile()) throw notAFile(resolved.locator, op);
  try {
    await unlink(resolved.real);
  } catch (error) {
    throw fromNative(error, 'cannot delete', op, resolved.locator);
  }
}

/**
 * Copies `size` bytes into `<directory>/<fileName>`, leaving all-zero stretches as holes, through a hidden
 * partial file linked into place only when whole (link, unlike rename, refuses to replace a snapshot).
 */
async function sparseCopy(
  source: FileHandle,
  size: number,
  directory: string,
  fileName: string,
  volumeLocator: string,
): Promise<void> {
  const op = 'snapshot';
  const partial = join(directory, `.${fileName}.partial`);
  const target = join(directory, fileName);
  let output: FileHandle | undefined;
  try {
    output = await open(
      partial,
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW,
      0o600,
    );
    await output.truncate(size);
    const buffer = Buffer.alloc(COPY_BLOCK);
    const zeros = Buffer.alloc(HOLE_GRAIN);
    for (let position = 0; position < size; position += COPY_BLOCK) {
      const length = Math.min(COPY_BLOCK, size - position);
      let read = 0;
      while (read < length) {
        const { bytesRead } = await source.read(buffer, read, length - read, position + read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      for (let at = 0; at < read; at += HOLE_GRAIN) {
        const grain = buffer.subarray(at, Math.min(at + HOLE_GRAIN, read));
        if (grain.equals(zeros.subarray(0, grain.length))) continue;
        let written = 0;
        while (written < grain.length) {
          const { bytesWritten } = await output.write(
            grain,
            written,
            grain.length - written,
            position + at + written,
          );
          written += bytesWritten;
        }
      }
    }
    await output.close();
    output = undefined;
    await link(partial, target);
  } catch (error) {
    throw fromNative(error, 'cannot copy snapshot of', op, volumeLocator);
  } finally {
    await output?.close().catch(() => {});
    await unlink(partial).catch(() => {});
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
