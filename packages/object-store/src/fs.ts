import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import {
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  rename,
  unlink,
} from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  abortedError,
  isObjectStoreError,
  ObjectStoreError,
  type ObjectStoreErrorKind,
  type ObjectStoreOp,
  throwIfAborted,
} from './errors.js';
import {
  type ByteRange,
  compareKeys,
  type ObjectInfo,
  type ObjectStore,
  type OperationOptions,
  type PutOptions,
  rangePastEnd,
  validateKey,
  validatePrefix,
  validateRange,
} from './object-store.js';

/** Names starting with this are writes in progress (or left by a crash): never objects, never listed. */
export const FS_TEMP_PREFIX = '.stowage-tmp-';

const DELETE_PARALLELISM = 16;
/** deleteMany opens a directory once for up to this many of its keys. */
const DELETE_SLICE = 32;

export interface FsObjectStoreOptions {
  /** Absolute path of the directory that holds the objects; created on first put if missing. */
  readonly root: string;
  /**
   * Test seam: runs after the temporary file is written and fsynced, before it is moved into place.
   * Throwing from it fails the put as a crash at that moment would, minus the leftover temp file.
   */
  readonly beforeCommit?: (tempPath: string) => Promise<void>;
  /** Test seam: called with each directory the store fsyncs, after it did. */
  readonly onDirectorySynced?: (directory: string) => void;
}

/** How a directory below the root is opened: never through a symbolic link at its last component. */
const DIRECTORY_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** How an object is opened for reading: no symlink at the last component, no waiting on a FIFO. */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const TEMP_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** A directory below the root, opened and checked; `path` names it through its descriptor. */
interface OpenDirectory {
  readonly handle: FileHandle;
  /** `/proc/self/fd/N` (names under it cannot be redirected by a rename or a symlink), or its real path. */
  readonly path: string;
}

/**
 * Objects as files under a root directory, `chunks/ab/<hex>` at `<root>/chunks/ab/<hex>`.
 *
 * put writes a temporary file in the object's directory, fsyncs it, moves it into place and fsyncs the
 * directory, so a half-written object is never visible under its key, even after a crash or power loss;
 * the temporary files a crash leaves behind start with `.stowage-tmp-` and are ignored (segments starting
 * so are refused as keys). `ifNoneMatch` is honoured exactly: the move is a hard link, which fails when the
 * name exists. Directories are created as needed and never removed. A key cannot be both an object and a
 * directory of other keys (`a/b` and `a/b/c`): the second put fails with `permanent`.
 *
 * No symbolic link below the root is followed (the root itself may be reached through one): every object
 * opened (get, head, a put's temporary file) is opened with O_NOFOLLOW and its descriptor's path, read from
 * /proc/self/fd, must be `<real root>/<key>`; directories are opened the same way before they are listed,
 * or have a name deleted in them (through the directory's descriptor), or are made; a symlink found as an
 * entry fails a listing. Anything else fails with `permanent`, saying which path is the link, and nothing
 * behind the link is read, written, made or deleted. A `rename` into place does not follow a symlink at the
 * object's name either: it replaces it.
 *
 * A signal is looked at before each system call step (each read and write of a body, each directory made,
 * each name deleted, each directory listed): no system call takes one, so the step already in the kernel
 * finishes first — on a local disk, well within a second; a hung network mount can hold it longer. A put
 * aborted before its rename removes its temporary file and leaves the key as it was; once renamed, it
 * completes (the directory fsync included) and resolves.
 */
export class FsObjectStore implements ObjectStore {
  readonly location: string;
  readonly root: string;
  readonly #beforeCommit: ((tempPath: string) => Promise<void>) | undefined;
  /** Directories (relative to the root, `''` for it) holding `deferred` puts whose names are not yet durable. */
  readonly #unsyncedDirectories = new Set<string>();
  readonly #onDirectorySynced: ((directory: string) => void) | undefined;
  /** The root with every symlink in it resolved, once it exists. */
  #realRoot: string | undefined;
  /** Directories found real below the root by a full check, with their device and inode (see head). */
  readonly #checkedDirectories = new Map<string, { readonly dev: number; readonly ino: number }>();

  constructor(options: FsObjectStoreOptions) {
    if (!isAbsolute(options.root))
      throw new TypeError(`FsObjectStore root must be absolute: ${options.root}`);
    this.root = resolve(options.root);
    this.location = pathToFileURL(this.root).href;
    this.#beforeCommit = options.beforeCommit;
    this.#onDirectorySynced = options.onDirectorySynced;
  }

  async head(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    const segments = this.#segments(key, 'head');
    const directoryKey = segments.slice(0, -1).join('/');
    const { signal } = options;
    try {
      throwIfAborted(signal, 'head', key);
      const realRoot = this.#realRoot ?? (await this.#resolveRoot());
      if (realRoot === undefined) return undefined;
      throwIfAborted(signal, 'head', key);
      // The hot path of a backup (a head per new chunk): an lstat, and the directory's identity beside it.
      const [stats, directoryFound] = await Promise.all([
        lstat(join(realRoot, ...segments)).catch((error: unknown) => {
          if (isMissing(error)) return undefined;
          throw error;
        }),
        this.#confirmDirectory(directoryKey, 'head', key),
      ]);
      if (!directoryFound) return undefined;
      if (stats?.isSymbolicLink()) throw this.#symlinkRefused(key, 'head', key);
      if (!stats?.isFile()) return undefined;
      // The name found may be another writer's deferred put: the next flush makes it durable too, so a
      // manifest written after that flush never names an object a crash could take back.
      this.#unsyncedDirectories.add(directoryKey);
      return { key, size: stats.size, lastModified: stats.mtime };
    } catch (error) {
      throw this.#translate(error, 'head', key, signal);
    }
  }

  async get(key: string, range?: ByteRange, options: OperationOptions = {}): Promise<Uint8Array> {
    const segments = this.#segments(key, 'get');
    if (range !== undefined) validateRange(range, key);
    const { signal } = options;
    let handle: FileHandle | undefined;
    try {
      throwIfAborted(signal, 'get', key);
      const opened = await this.#openObject(segments, 'get', key);
      handle = opened?.handle;
      if (opened === undefined || !opened.stats.isFile()) {
        throw new ObjectStoreError('not-found', `no object ${key} in ${this.location}`, { op: 'get', key });
      }
      const { stats } = opened;
      const offset = range?.offset ?? 0;
      const length = range?.length ?? stats.size;
      if (range !== undefined && offset + length > stats.size) throw rangePastEnd(range, stats.size, key);
      const body = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        throwIfAborted(signal, 'get', key);
        const { bytesRead } = await opened.handle.read(body, done, length - done, offset + done);
        if (bytesRead === 0) throw rangePastEnd({ offset, length }, offset + done, key);
        done += bytesRead;
      }
      return body;
    } catch (error) {
      throw this.#translate(error, 'get', key, signal);
    } finally {
      await handle?.close();
    }
  }

  /**
   * Syncs each directory that received a deferred put, or in which `head` found an object, since the last
   * flush: one fsync per directory (at most the 256 `chunks/xx/` and a few more).
   */
  async flush(): Promise<void> {
    const directories = [...this.#unsyncedDirectories];
    this.#unsyncedDirectories.clear();
    try {
      await Promise.all(directories.map((directory) => this.#syncDirectory(directory)));
    } catch (error) {
      // Not known to be durable: a later flush tries them again.
      for (const directory of directories) this.#unsyncedDirectories.add(directory);
      throw this.#translate(error, 'put', '(flush)');
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    const segments = this.#segments(key, 'put');
    const directorySegments = segments.slice(0, -1);
    const directoryKey = directorySegments.join('/');
    const tempName = `${FS_TEMP_PREFIX}${randomBytes(8).toString('hex')}`;
    const { signal } = options;
    const step = () => throwIfAborted(signal, 'put', key);
    let tempPath: string | undefined;
    try {
      step();
      const realRoot = this.#realRoot ?? (await this.#resolveRoot(true));
      const directory = join(realRoot, ...directorySegments);
      const path = join(directory, segments.at(-1)!);
      const opening = join(directory, tempName);
      // The directory usually exists (256 chunk directories serve every chunk): try the open first and make
      // the directory only when it is missing, instead of a mkdir per put.
      const handle = await open(opening, TEMP_FLAGS, 0o644).catch(async (error: unknown) => {
        if (errnoCode(error) !== 'ENOENT' && errnoCode(error) !== 'ENOTDIR') throw error;
        await this.#makeDirectory(directorySegments, key, signal);
        step();
        return open(opening, TEMP_FLAGS, 0o644);
      });
      tempPath = opening;
      try {
        // Where the file really is: a symlink anywhere on the way shows here (and the file is removed).
        await this.#checkDescriptor(handle, join(directoryKey, tempName), opening, 'put', key);
        let done = 0;
        while (done < body.length) {
          step();
          const { bytesWritten } = await handle.write(body, done, body.length - done);
          done += bytesWritten;
        }
        step();
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.#beforeCommit?.(opening);
      // The last point of return: once the name is in place the put has landed, and it completes.
      step();
      if (options.ifNoneMatch === true) {
        // link() refuses an existing name, which rename() would silently replace.
        await link(opening, path).catch(async (error: unknown) => {
          if (errnoCode(error) === 'EEXIST' && (await lstat(path).catch(() => undefined))?.isSymbolicLink()) {
            throw this.#symlinkRefused(key, 'put', key);
          }
          throw error;
        });
        await unlink(opening);
      } else {
        await rename(opening, path);
      }
      tempPath = undefined;
      if (options.durability === 'deferred') this.#unsyncedDirectories.add(directoryKey);
      else await this.#syncDirectory(directoryKey);
    } catch (error) {
      if (tempPath !== undefined) await unlink(tempPath).catch(() => {});
      if (signal?.aborted) throw this.#translate(error, 'put', key, signal);
      if (options.ifNoneMatch === true && errnoCode(error) === 'EEXIST') {
        throw new ObjectStoreError(
          'precondition-failed',
          `object ${key} already exists in ${this.location}`,
          {
            op: 'put',
            key,
            cause: error,
          },
        );
      }
      throw this.#translate(error, 'put', key, signal);
    }
  }

  async delete(key: string, options: OperationOptions = {}): Promise<void> {
    const segments = this.#segments(key, 'delete');
    const { signal } = options;
    try {
      throwIfAborted(signal, 'delete', key);
      const directory = await this.#openDirectory(segments.slice(0, -1).join('/'), 'delete', key);
      if (directory === undefined) return;
      try {
        await this.#deleteIn(directory, segments.at(-1)!, 'delete', key, signal);
      } finally {
        await directory.handle.close();
      }
    } catch (error) {
      throw this.#translate(error, 'delete', key, signal);
    }
  }

  async deleteMany(keys: readonly string[], options: OperationOptions = {}): Promise<void> {
    const { signal } = options;
    // Grouped by directory, in slices: each directory is opened (and checked) once per slice, not per key.
    const groups = new Map<string, { key: string; name: string }[]>();
    for (const key of keys) {
      const segments = this.#segments(key, 'deleteMany');
      const directoryKey = segments.slice(0, -1).join('/');
      const group = groups.get(directoryKey) ?? [];
      groups.set(directoryKey, group);
      group.push({ key, name: segments.at(-1)! });
    }
    const slices: { directoryKey: string; items: { key: string; name: string }[] }[] = [];
    for (const [directoryKey, items] of groups) {
      for (let at = 0; at < items.length; at += DELETE_SLICE) {
        slices.push({ directoryKey, items: items.slice(at, at + DELETE_SLICE) });
      }
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < slices.length) {
        const { directoryKey, items } = slices[next++]!;
        let key = items[0]!.key;
        try {
          throwIfAborted(signal, 'deleteMany', key);
          const directory = await this.#openDirectory(directoryKey, 'deleteMany', key);
          if (directory === undefined) continue;
          try {
            for (const item of items) {
              key = item.key;
              await this.#deleteIn(directory, item.name, 'deleteMany', key, signal);
            }
          } finally {
            await directory.handle.close();
          }
        } catch (error) {
          throw this.#translate(error, 'deleteMany', key, signal);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_PARALLELISM, slices.length) }, worker));
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    throwIfAborted(options.signal, 'list', prefix);
    const slash = prefix.lastIndexOf('/');
    const directoryKey = prefix.slice(0, slash + 1); // '' or 'chunks/ab/'
    const namePrefix = prefix.slice(slash + 1);
    if (directoryKey.split('/').some((segment) => segment === '.' || segment === '..')) return;
    yield* this.#walk(directoryKey, namePrefix, prefix, options.signal);
  }

  async *#walk(
    directoryKey: string,
    namePrefix: string,
    prefix: string,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ObjectInfo> {
    // Read whole, with the directory open, and only then yielded: no descriptor is held across a yield.
    const found: { key: string; info: ObjectInfo | undefined }[] = [];
    try {
      throwIfAborted(signal, 'list', prefix);
      const directory = await this.#openDirectory(directoryKey.slice(0, -1), 'list', prefix);
      if (directory === undefined) return;
      try {
        throwIfAborted(signal, 'list', prefix);
        const entries = await readdir(directory.path, { withFileTypes: true });
        const named = entries.filter(
          (entry) => entry.name.startsWith(namePrefix) && !entry.name.startsWith(FS_TEMP_PREFIX),
        );
        for (const entry of named) {
          if (entry.isSymbolicLink()) throw this.#symlinkRefused(directoryKey + entry.name, 'list', prefix);
        }
        // Sorting a directory's entries as `name` for files and `name/` for directories yields keys in global
        // byte order: every key below a directory starts with `name/`.
        const sorted = named
          .filter((entry) => entry.isFile() || entry.isDirectory())
          .map((entry) => ({ entry, sortKey: entry.isDirectory() ? `${entry.name}/` : entry.name }))
          .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
        for (const { entry } of sorted) {
          const key = directoryKey + entry.name;
          if (entry.isDirectory()) {
            found.push({ key, info: undefined });
            continue;
          }
          throwIfAborted(signal, 'list', prefix);
          const stats = await lstat(`${directory.path}/${entry.name}`).catch((error: unknown) => {
            if (isMissing(error)) return undefined; // deleted while we listed
            throw error;
          });
          if (stats?.isSymbolicLink()) throw this.#symlinkRefused(key, 'list', prefix);
          if (stats?.isFile())
            found.push({ key, info: { key, size: stats.size, lastModified: stats.mtime } });
        }
      } finally {
        await directory.handle.close();
      }
    } catch (error) {
      throw this.#translate(error, 'list', prefix, signal);
    }
    for (const { key, info } of found) {
      throwIfAborted(signal, 'list', prefix);
      if (info === undefined) yield* this.#walk(`${key}/`, '', prefix, signal);
      else yield info;
    }
  }

  /**
   * Deletes `name` in an open directory, through its descriptor: a symlink put in the directory's place
   * after it was checked cannot redirect the unlink. A symlink as the object is refused, a directory of other
   * keys is no object to delete.
   */
  async #deleteIn(
    directory: OpenDirectory,
    name: string,
    op: ObjectStoreOp,
    key: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    throwIfAborted(signal, op, key);
    const path = `${directory.path}/${name}`;
    const stats = await lstat(path).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw error;
    });
    if (stats?.isSymbolicLink()) throw this.#symlinkRefused(key, op, key);
    if (stats === undefined || stats.isDirectory()) return;
    throwIfAborted(signal, op, key);
    await unlink(path).catch((error: unknown) => {
      if (isMissing(error) || errnoCode(error) === 'EPERM') return;
      throw error;
    });
  }

  #segments(key: string, op: ObjectStoreOp): string[] {
    validateKey(key, op);
    const segments = key.split('/');
    if (segments.some((segment) => segment.startsWith(FS_TEMP_PREFIX))) {
      throw new ObjectStoreError('invalid-key', `key ${key} uses the reserved prefix ${FS_TEMP_PREFIX}`, {
        op,
        key,
      });
    }
    return segments;
  }

  /** The real root; `undefined` when it does not exist (yet), unless `create`, which makes it. */
  async #resolveRoot(create: true): Promise<string>;
  async #resolveRoot(create?: false): Promise<string | undefined>;
  async #resolveRoot(create = false): Promise<string | undefined> {
    if (this.#realRoot !== undefined) return this.#realRoot;
    try {
      this.#realRoot = await realpath(this.root);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
      if (!create) return undefined;
      // The root and the directories above it are the operator's: they are made as asked, then resolved.
      const firstCreated = await mkdir(this.root, { recursive: true });
      if (firstCreated !== undefined) {
        for (let path = this.root; path.length >= firstCreated.length; path = dirname(path)) {
          await syncDirectory(dirname(path));
          this.#onDirectorySynced?.(dirname(path));
        }
      }
      this.#realRoot = await realpath(this.root);
    }
    return this.#realRoot;
  }

  /**
   * Opens an object for reading without following a symlink anywhere below the root: `undefined` when it is
   * missing (after checking that the way to it has no symlink either).
   */
  async #openObject(
    segments: readonly string[],
    op: ObjectStoreOp,
    key: string,
  ): Promise<{ handle: FileHandle; stats: Stats } | undefined> {
    const realRoot = this.#realRoot ?? (await this.#resolveRoot());
    if (realRoot === undefined) return undefined;
    const path = join(realRoot, ...segments);
    let handle: FileHandle;
    try {
      handle = await open(path, READ_FLAGS);
    } catch (error) {
      if (errnoCode(error) === 'ELOOP') throw this.#symlinkRefused(key, op, key);
      if (!isMissing(error)) throw error;
      await this.#confirmDirectory(segments.slice(0, -1).join('/'), op, key);
      return undefined;
    }
    try {
      if ((await this.#checkDescriptor(handle, segments.join('/'), path, op, key)) === 'deleted') {
        await handle.close();
        return undefined;
      }
      return { handle, stats: await handle.stat() };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /**
   * Opens the directory `directoryKey` (`''`: the root) and checks that it is where it should be, so no
   * symlink lies on the way; `undefined` when it is missing (or a file), after checking the way to it.
   */
  async #openDirectory(
    directoryKey: string,
    op: ObjectStoreOp,
    key: string,
  ): Promise<OpenDirectory | undefined> {
    const realRoot = this.#realRoot ?? (await this.#resolveRoot());
    if (realRoot === undefined) return undefined;
    const path = directoryKey === '' ? realRoot : join(realRoot, directoryKey);
    let handle: FileHandle;
    try {
      handle = await open(path, DIRECTORY_FLAGS);
    } catch (error) {
      // Missing, a file, or a symlink (O_DIRECTORY | O_NOFOLLOW says ENOTDIR for one): which, and is the way
      // to it free of symlinks?
      if (errnoCode(error) !== 'ENOENT' && errnoCode(error) !== 'ENOTDIR') throw error;
      if (directoryKey === '') return undefined;
      const parentKey = directoryKey.includes('/')
        ? directoryKey.slice(0, directoryKey.lastIndexOf('/'))
        : '';
      const parent = await this.#openDirectory(parentKey, op, key);
      if (parent === undefined) return undefined;
      await parent.handle.close();
      if ((await lstat(path).catch(() => undefined))?.isSymbolicLink()) {
        throw this.#symlinkRefused(directoryKey, op, key);
      }
      return undefined;
    }
    try {
      await this.#checkDescriptor(handle, directoryKey, path, op, key);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return { handle, path: this.#procAvailable ? `/proc/self/fd/${handle.fd}` : path };
  }

  #procAvailable = true;

  /**
   * True when the directory `directoryKey` is a real directory below the root, false when it is missing;
   * throws for a symlink. Checked in full once (and whenever it looks different), then by its identity: an
   * lstat whose device and inode must be the ones checked, which a symlink swapped in anywhere on the way
   * changes.
   */
  async #confirmDirectory(directoryKey: string, op: ObjectStoreOp, key: string): Promise<boolean> {
    const realRoot = this.#realRoot ?? (await this.#resolveRoot());
    if (realRoot === undefined) return false;
    if (directoryKey === '') return true;
    const known = this.#checkedDirectories.get(directoryKey);
    if (known !== undefined) {
      const stats = await lstat(join(realRoot, directoryKey)).catch(() => undefined);
      if (stats?.isDirectory() && stats.dev === known.dev && stats.ino === known.ino) return true;
      this.#checkedDirectories.delete(directoryKey);
    }
    const directory = await this.#openDirectory(directoryKey, op, key);
    if (directory === undefined) return false;
    try {
      const stats = await directory.handle.stat();
      this.#checkedDirectories.set(directoryKey, { dev: stats.dev, ino: stats.ino });
    } finally {
      await directory.handle.close();
    }
    return true;
  }

  /**
   * Checks that an opened descriptor is `<real root>/<relative>`: a symlink anywhere below the root makes it
   * something else. `deleted` when it was unlinked meanwhile. Without /proc (not Linux) the opened path is
   * resolved instead, which a swap between the open and the check could fool.
   */
  async #checkDescriptor(
    handle: FileHandle,
    relative: string,
    opened: string,
    op: ObjectStoreOp,
    key: string,
  ): Promise<'ok' | 'deleted'> {
    const realRoot = this.#realRoot!;
    const expected = relative === '' ? realRoot : join(realRoot, relative);
    let actual: string;
    try {
      actual = await readlink(`/proc/self/fd/${handle.fd}`);
    } catch (error) {
      if (errnoCode(error) !== 'ENOENT') throw error;
      this.#procAvailable = false;
      actual = await realpath(opened).catch(() => `${expected} (deleted)`);
    }
    if (actual === expected) return 'ok';
    if (actual === `${expected} (deleted)`) return 'deleted';
    throw this.#symlinkRefused(relative, op, key, actual);
  }

  #symlinkRefused(relative: string, op: ObjectStoreOp, key: string, actual?: string): ObjectStoreError {
    const where = actual === undefined ? '' : ` (it leads to ${actual})`;
    return new ObjectStoreError(
      'permanent',
      `${op} ${key} in ${this.location} refused: ${relative} is, or goes through, a symbolic link below the ` +
        `store's root${where}; the filesystem store follows none`,
      { op, key },
    );
  }

  /**
   * Makes the missing directories of `segments` one at a time, each only once the one above it is checked
   * (no mkdir through a symlink), then fsyncs the parent of each so the new names survive a crash.
   */
  async #makeDirectory(
    segments: readonly string[],
    key: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const realRoot = this.#realRoot ?? (await this.#resolveRoot(true));
    const created: string[] = [];
    for (let depth = 1; depth <= segments.length; depth++) {
      // An abort stops here, but the directories made so far are synced into their parents first: a later put
      // finds them and makes none, so nothing else would.
      if (signal?.aborted) break;
      const directoryKey = segments.slice(0, depth).join('/');
      const existing = await this.#openDirectory(directoryKey, 'put', key);
      if (existing !== undefined) {
        await existing.handle.close();
        continue;
      }
      await mkdir(join(realRoot, directoryKey)).then(
        () => created.push(directoryKey),
        (error: unknown) => {
          if (errnoCode(error) !== 'EEXIST') throw error;
        },
      );
      const made = await this.#openDirectory(directoryKey, 'put', key);
      if (made === undefined) {
        throw Object.assign(new Error(`${directoryKey} is not a directory`), { code: 'ENOTDIR' });
      }
      await made.handle.close();
    }
    for (const directoryKey of created) {
      await this.#syncDirectory(directoryKey.includes('/') ? dirname(directoryKey) : '');
    }
    throwIfAborted(signal, 'put', key);
  }

  async #syncDirectory(directoryKey: string): Promise<void> {
    await syncDirectory(join(this.#realRoot ?? this.root, directoryKey));
    this.#onDirectorySynced?.(join(this.root, directoryKey));
  }

  #translate(error: unknown, op: ObjectStoreOp, key: string, signal?: AbortSignal): ObjectStoreError {
    if (isObjectStoreError(error, 'aborted')) return error;
    // What fails once the caller has aborted is reported as the abort (the contract's rule).
    if (signal?.aborted) return abortedError(op, key, signal);
    if (error instanceof ObjectStoreError) return error;
    const code = errnoCode(error);
    const kind = fsErrorKind(code);
    const detail = error instanceof Error ? error.message : String(error);
    return new ObjectStoreError(kind, `${op} ${key} in ${this.location} failed: ${detail}`, {
      op,
      key,
      cause: error,
    });
  }
}

/** Maps a Node errno code to an error kind. Exported for tests. */
export function fsErrorKind(code: string | undefined): ObjectStoreErrorKind {
  switch (code) {
    case 'ENOENT':
      return 'not-found';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'no-space';
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return 'auth';
    case 'EMFILE':
    case 'ENFILE':
    case 'EAGAIN':
    case 'EBUSY':
    case 'EINTR':
    case 'ETIMEDOUT':
      return 'transient';
    default:
      return 'permanent';
  }
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return error.code;
  }
  return undefined;
}

function isMissing(error: unknown): boolean {
  const code = errnoCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}
