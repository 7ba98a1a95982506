import { randomBytes } from 'node:crypto';
import { type Dirent, constants as fsConstants, type Stats } from 'node:fs';
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
  type SnapshotOptions,
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
 * How snapshots are made. `auto`: a reflink; where the filesystem has none, a copy only when the caller allows
 * one (`SnapshotOptions.allowCopy`), otherwise `unsupported`. `reflink`: never a copy, allowed or not. `copy`:
 * always a copy, never a reflink (for tests, and filesystems where an operator wants copies of idle volumes).
 */
export type LocalSnapshotMode = 'auto' | 'reflink' | 'copy';

export interface LocalFileBackendOptions {
  /** Absolute directories; every volume and snapshot lives below one of them. `provision` uses the first
   * unless told otherwise. */
  readonly roots: readonly string[];
  readonly snapshotMode?: LocalSnapshotMode;
  /** Milliseconds on a steady clock, for spacing a copy's progress reports; `performance.now` by default. */
  readonly now?: () => number;
}

export interface LocalProvisionRequest extends ProvisionRequest {
  /** One of the configured roots, exactly as configured; the first by default. */
  readonly root?: string;
}

/** Errors from FICLONE that mean "this filesystem (or this pair of files) cannot share blocks". */
const NO_REFLINK_CODES = new Set(['ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EINVAL', 'ENOTTY', 'ENOSYS']);
const COPY_BLOCK = 1024 * 1024;
const HOLE_GRAIN = 64 * 1024;
/** A copy reports its progress at most this often (and once more when it is whole). */
const PROGRESS_INTERVAL_MS = 250;

interface Resolved {
  /** The canonical locator: the real path, spelled from the configured root it lies under. */
  readonly locator: string;
  /** The real path: no symlinks, no `.`. */
  readonly real: string;
  readonly realRoot: string;
}

/** A regular file with one link, opened and checked. */
interface Opened {
  readonly handle: FileHandle;
  readonly stats: Stats;
  /** A path to the very file the descriptor holds (`/proc/self/fd/N`), or its real path where /proc is not. */
  readonly path: string;
}

/**
 * Volumes as sparse raw image files under configured roots; snapshots as reflinks (FICLONE, as
 * `cp --reflink` does) in a `.stowage-snapshots` directory beside the volume, or sparse copies where the
 * filesystem has no reflinks and the caller allows a copy (see `LocalSnapshotMode`).
 *
 * Confinement: a locator is checked lexically first (absolute, no `..`, under a root as configured or as
 * resolved), then resolved with realpath and checked again, and every opened descriptor is checked once
 * more through /proc/self/fd before a byte is read, so a symlink swapped in between cannot lead outside.
 * A file with more than one hard link is refused (`outside-roots`): the other name may be outside the roots,
 * and writing one writes both. The check is made on the opened descriptor (fstat), so a link made after the
 * locator was resolved is caught too; the one exception is a snapshot's second link to its own hidden partial
 * file, which exists for a moment while a copy is linked into place (or for good after a crash there).
 * Volume names are unique across the roots.
 */
export class LocalFileBackend implements HostBackend {
  readonly kind = 'local-file';
  readonly capabilities = { provision: true, snapshot: true } as const;
  private readonly roots: readonly string[];
  private readonly snapshotMode: LocalSnapshotMode;
  private readonly now: () => number;
  private realRootsCache: Promise<readonly string[]> | undefined;

  constructor(options: LocalFileBackendOptions) {
    if (options.roots.length === 0) throw new Error('LocalFileBackend needs at least one root');
    this.roots = options.roots.map((root) => configuredPath(root, 'root'));
    this.snapshotMode = options.snapshotMode ?? 'auto';
    this.now = options.now ?? (() => performance.now());
  }

  async provision(request: LocalProvisionRequest): Promise<VolumeInfo> {
    const op = 'provision';
    validateName(request.name, op);
    validateSize(request.size, op, request.name);
    const rootIndex = request.root === undefined ? 0 : this.roots.indexOf(request.root);
    if (rootIndex < 0) throw outsideRoots(String(request.root), op, 'the configured roots');
    const realRoots = await this.realRoots(op);
    const realRoot = realRoots[rootIndex]!;
    const path = join(realRoot, request.name);
    const locator = join(this.roots[rootIndex]!, request.name);
    // One name, one volume: a name in two roots would make "the volume <name>" ambiguous.
    await this.refuseNameInAnyRoot(request.name, realRoots, op);
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
      // Another provision of the name in another root may have raced this one: then neither keeps it.
      await this.refuseNameInAnyRoot(request.name, realRoots, op, rootIndex);
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
        // A file with other hard links is no volume (every operation on it is refused), so it is not listed.
        if (!stats?.isFile() || stats.nlink > 1) continue;
        volumes.push({ locator: join(this.roots[index]!, entry.name), name: entry.name, size: stats.size });
      }
    }
    return volumes.sort((a, b) => compare(a.locator, b.locator));
  }

  async stat(locator: string): Promise<VolumeInfo> {
    const volume = await this.resolveVolume(locator, 'stat');
    const stats = await lstatFile(volume, 'stat');
    return { locator: volume.locator, name: basename(volume.real), size: stats.size };
  }

  async snapshot(
    volumeLocator: string,
    name: string,
    options: SnapshotOptions = {},
  ): Promise<SnapshotResult> {
    const op = 'snapshot';
    validateName(name, op);
    const volume = await this.resolveVolume(volumeLocator, op);
    const { signal } = options;
    if (signal?.aborted) throw cancelled(op, volume.locator, signal, 'taking a snapshot of');
    const source = await this.openConfined(volume, fsConstants.O_RDONLY, op);
    try {
      const directory = await this.snapshotDirectory(volume, op, true);
      const fileName = `${basename(volume.real)}@${name}`;
      const target = join(directory, fileName);
      const info: SnapshotInfo = {
        locator: join(dirname(volume.locator), SNAPSHOT_DIRECTORY, fileName),
        volume: volume.locator,
        name,
        size: source.stats.size,
      };
      await removeStalePartials(directory, basename(volume.real));
      if (this.snapshotMode !== 'copy') {
        const noReflink = await reflink(source.path, target, volume.locator);
        if (noReflink === undefined) return { ...info, method: 'reflink' };
        const code = (noReflink as { code?: string }).code;
        if (this.snapshotMode === 'reflink') {
          throw new HostBackendError(
            'unsupported',
            `cannot snapshot ${volume.locator}: its filesystem has no reflinks (${code}), and snapshotMode 'reflink' never copies`,
            { op, locator: volume.locator, cause: noReflink },
          );
        }
        if (options.allowCopy !== true) {
          throw new HostBackendError(
            'unsupported',
            `cannot snapshot ${volume.locator} at one instant: its filesystem has no reflinks (${code}). A copy ` +
              'is point in time only if nothing writes the volume while it is made; for an idle volume, ask ' +
              'for one (snapshot: "copy" in the agent API, allowCopy in SnapshotOptions)',
            { op, locator: volume.locator, cause: noReflink },
          );
        }
      } else if (options.allowCopy !== true) {
        // snapshotMode 'copy' makes copies instead of reflinks, never copies nobody asked for.
        throw new HostBackendError(
          'unsupported',
          `cannot snapshot ${volume.locator} at one instant: snapshotMode 'copy' makes only copies, which are ` +
            'point in time only if nothing writes the volume meanwhile; ask for one (snapshot: "copy")',
          { op, locator: volume.locator },
        );
      }
      await sparseCopy(source.handle, source.stats.size, directory, fileName, info.locator, {
        volumeLocator: volume.locator,
        signal,
        report: progressReporter(options.onProgress, source.stats.size, this.now),
      });
      return { ...info, method: 'copy' };
    } finally {
      await source.handle.close();
    }
  }

  async listSnapshots(volumeLocator: string): Promise<SnapshotInfo[]> {
    const op = 'list-snapshots';
    const volume = await this.resolveVolume(volumeLocator, op);
    await lstatFile(volume, op);
    return this.snapshotsOf(volume, op);
  }

  async openReader(locator: string, options: OpenOptions = {}): Promise<VolumeReader> {
    const op = 'open-reader';
    const resolved = await this.resolve(locator, op);
    // Opening a file does not wait on anything, so a signal only matters if it was aborted already.
    if (options.signal?.aborted) throw cancelled(op, resolved.locator, options.signal);
    const { handle, stats } = await this.openConfined(resolved, fsConstants.O_RDONLY, op);
    return handleReader(handle, resolved.locator, stats.size);
  }

  async openWriter(volumeLocator: string, options: OpenOptions = {}): Promise<VolumeWriter> {
    const op = 'open-writer';
    const volume = await this.resolveVolume(volumeLocator, op);
    if (options.signal?.aborted) throw cancelled(op, volume.locator, options.signal);
    const { handle, stats } = await this.openConfined(volume, fsConstants.O_WRONLY, op);
    return handleWriter(handle, volume.locator, stats.size);
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
    const stats = await lstatFile(snapshot, op);
    // What a crash between a copy's link and unlink leaves: the partial file, linked to the snapshot.
    const partials = stats.nlink > 1 ? await ownPartials(snapshot.real, stats) : [];
    await unlinkFile(snapshot, op);
    for (const partial of partials) await unlink(partial).catch(() => {});
  }

  async deleteVolume(volumeLocator: string): Promise<void> {
    const op = 'delete-volume';
    const volume = await this.resolveVolume(volumeLocator, op);
    await lstatFile(volume, op);
    await removeStalePartials(join(dirname(volume.real), SNAPSHOT_DIRECTORY), basename(volume.real));
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

  /**
   * Opens a regular file without following a last-moment symlink, then checks where the descriptor really
   * points and that the file has no other hard link.
   */
  private async openConfined(resolved: Resolved, flags: number, op: HostBackendOp): Promise<Opened> {
    let handle: FileHandle;
    try {
      handle = await open(resolved.real, flags | fsConstants.O_NOFOLLOW);
    } catch (error) {
      throw fromNative(error, 'cannot open', op, resolved.locator);
    }
    try {
      const path = `/proc/self/fd/${handle.fd}`;
      const actual = await readlink(path).catch(() => undefined);
      if (actual !== undefined && !isInside(resolved.realRoot, actual)) {
        throw outsideRoots(resolved.locator, op, 'the configured roots (it moved while being opened)');
      }
      const stats = await handle.stat();
      if (!stats.isFile()) throw notAFile(resolved.locator, op);
      await refuseOtherLinks(resolved, stats, op, () => handle.stat());
      return { handle, stats, path: actual === undefined ? resolved.real : path };
    } catch (error) {
      await handle.close();
      throw fromNative(error, 'cannot open', op, resolved.locator);
    }
  }

  /** Fails with `exists` when a root (but `except`) holds `name`, naming the root. */
  private async refuseNameInAnyRoot(
    name: string,
    realRoots: readonly string[],
    op: HostBackendOp,
    except?: number,
  ): Promise<void> {
    for (const [index, realRoot] of realRoots.entries()) {
      if (index === except) continue;
      const locator = join(this.roots[index]!, name);
      const found = await lstat(join(realRoot, name)).then(
        () => true,
        (error: unknown) => {
          if ((error as { code?: string }).code === 'ENOENT') return false;
          throw fromNative(error, 'cannot look for', op, locator);
        },
      );
      if (found) {
        throw new HostBackendError(
          'exists',
          `root ${this.roots[index]} already has ${JSON.stringify(name)} (${locator}); a volume name is unique across the roots`,
          { op, locator },
        );
      }
    }
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
      const path = join(directory, fileName);
      const stats = await lstat(path).catch(() => undefined);
      if (!stats?.isFile()) continue;
      // Linked to something else than its own partial file: no snapshot of ours (and refused if named).
      if (stats.nlink > 1 && (await ownPartials(path, stats)).length !== stats.nlink - 1) continue;
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

/** The regular file at `resolved.real`, by lstat: `not-found`, `invalid-locator` or `outside-roots` if not. */
async function lstatFile(resolved: Resolved, op: HostBackendOp): Promise<Stats> {
  const stats = await lstat(resolved.real).catch((error: unknown) => {
    throw fromNative(error, 'cannot stat', op, resolved.locator);
  });
  if (!stats.isFile()) throw notAFile(resolved.locator, op);
  await refuseOtherLinks(resolved, stats, op, () => lstat(resolved.real));
  return stats;
}

/**
 * Refuses a file that has hard links besides its own name: another may lie outside the roots, and a write to
 * one is a write to all (a restore over `<root>/hl` would overwrite `/elsewhere/t.img`). The one exception is
 * a snapshot linked to its own partial file (`.<file>@<name>.<random>.partial` beside it), which a copy
 * leaves for a moment, or a crash for good; `restat` looks again once, in case the partial just went.
 */
async function refuseOtherLinks(
  resolved: Resolved,
  stats: Stats,
  op: HostBackendOp,
  restat: () => Promise<Stats>,
): Promise<void> {
  if (stats.nlink <= 1) return;
  if (isSnapshotPath(resolved.real)) {
    if ((await ownPartials(resolved.real, stats)).length === stats.nlink - 1) return;
    const again = await restat();
    if (again.nlink <= 1 && again.ino === stats.ino) return;
  }
  throw new HostBackendError(
    'outside-roots',
    `${resolved.locator} has ${stats.nlink} hard links: another may lie outside the configured roots, and writing ` +
      'one writes all, so it is not used (a volume must be a file of its own: copy it)',
    { op, locator: resolved.locator },
  );
}

/**
 * Removes the partial files of copies of `volumeFile` that a killed writer left (`.<file>@<name>.<pid>-…`
 * whose pid is gone, or of the older unnamed kind); a copy still running in a live process keeps its own.
 * Full-size files otherwise pile up with every crash mid-copy: nothing else ever names them.
 */
async function removeStalePartials(directory: string, volumeFile: string): Promise<string[]> {
  const names = await readdir(directory).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(`.${volumeFile}@`) || !name.endsWith('.partial')) continue;
    const pid = /\.(\d+)-[0-9a-f]+\.partial$/.exec(name)?.[1];
    if (pid !== undefined && processAlive(Number(pid))) continue;
    const path = join(directory, name);
    const stats = await lstat(path).catch(() => undefined);
    if (!stats?.isFile()) continue;
    await unlink(path).then(
      () => removed.push(path),
      () => {},
    );
  }
  return removed;
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** The partial files of a copy snapshot that are hard links to it (`stats` are the snapshot's). */
async function ownPartials(snapshotPath: string, stats: Stats): Promise<string[]> {
  const directory = dirname(snapshotPath);
  const prefix = `.${basename(snapshotPath)}.`;
  const names = await readdir(directory).catch(() => [] as string[]);
  const partials: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.partial')) continue;
    const path = join(directory, name);
    const partial = await lstat(path).catch(() => undefined);
    if (partial?.isFile() && partial.ino === stats.ino && partial.dev === stats.dev) partials.push(path);
  }
  return partials;
}

async function unlinkFile(resolved: Resolved, op: HostBackendOp): Promise<void> {
  try {
    await unlink(resolved.real);
  } catch (error) {
    throw fromNative(error, 'cannot delete', op, resolved.locator);
  }
}

/**
 * Clones `source` (a path to the very file checked, `/proc/self/fd/N`) to `target` with FICLONE; answers the
 * error when the filesystem (or this pair of files) cannot share blocks, `undefined` when it did.
 */
async function reflink(source: string, target: string, volumeLocator: string): Promise<unknown> {
  try {
    await copyFile(source, target, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE_FORCE);
    return undefined;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== undefined && NO_REFLINK_CODES.has(code)) return error;
    throw fromNative(error, 'cannot snapshot volume', 'snapshot', volumeLocator);
  }
}

type ProgressReport = (done: number, final?: boolean) => void;

/** Calls `onProgress` at most once per PROGRESS_INTERVAL_MS, and always for a `final` report. */
function progressReporter(
  onProgress: ((done: number, total: number) => void) | undefined,
  total: number,
  now: () => number,
): ProgressReport {
  if (onProgress === undefined) return () => {};
  let last = Number.NEGATIVE_INFINITY;
  return (done, final = false) => {
    const at = now();
    if (!final && at - last < PROGRESS_INTERVAL_MS) return;
    last = at;
    onProgress(done, total);
  };
}

/**
 * Copies `size` bytes into `<directory>/<fileName>`, leaving all-zero stretches as holes, through a hidden
 * partial file of its own (a random name, created exclusively) linked into place only when whole: link,
 * unlike rename, refuses to replace a snapshot. The partial is unlinked whatever happens, so the snapshot
 * ends with one link. The signal is looked at before every block (a millisecond or so of I/O), so an abort
 * stops the copy at once, and it leaves nothing behind.
 */
async function sparseCopy(
  source: FileHandle,
  size: number,
  directory: string,
  fileName: string,
  snapshotLocator: string,
  options: { volumeLocator: string; signal: AbortSignal | undefined; report: ProgressReport },
): Promise<void> {
  const op = 'snapshot';
  const { volumeLocator, signal, report } = options;
  const target = join(directory, fileName);
  // Found before a byte is copied, rather than by the link after all of them.
  const taken = await lstat(target).then(
    () => true,
    () => false,
  );
  if (taken) {
    throw new HostBackendError('exists', `snapshot ${snapshotLocator} already exists`, {
      op,
      locator: volumeLocator,
    });
  }
  // The writer's pid in the name: a copy killed mid-way leaves its partial file, which the next snapshot or
  // delete of the volume removes once that pid is gone (see removeStalePartials).
  const partial = join(directory, `.${fileName}.${process.pid}-${randomBytes(6).toString('hex')}.partial`);
  let output: FileHandle | undefined;
  let created = false;
  try {
    output = await open(
      partial,
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
      0o600,
    );
    created = true;
    await output.truncate(size);
    const buffer = Buffer.alloc(COPY_BLOCK);
    const zeros = Buffer.alloc(HOLE_GRAIN);
    report(0);
    for (let position = 0; position < size; position += COPY_BLOCK) {
      if (signal?.aborted) throw cancelled(op, volumeLocator, signal, 'taking a snapshot of');
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
      report(position + length);
    }
    await output.close();
    output = undefined;
    if (signal?.aborted) throw cancelled(op, volumeLocator, signal, 'taking a snapshot of');
    await link(partial, target);
  } catch (error) {
    if ((error as { code?: string }).code === 'EEXIST' && created) {
      throw new HostBackendError('exists', `snapshot ${snapshotLocator} already exists`, {
        op,
        locator: volumeLocator,
        cause: error,
      });
    }
    throw fromNative(error, 'cannot copy a snapshot of', op, volumeLocator);
  } finally {
    await output?.close().catch(() => {});
    if (created) await unlink(partial).catch(() => {});
  }
  report(size, true);
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
