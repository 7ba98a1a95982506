import { randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { link, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ObjectStoreError, type ObjectStoreErrorKind, type ObjectStoreOp } from './errors.js';
import {
  type ByteRange,
  compareKeys,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  rangePastEnd,
  validateKey,
  validatePrefix,
  validateRange,
} from './object-store.js';

/** Names starting with this are writes in progress (or left by a crash): never objects, never listed. */
export const FS_TEMP_PREFIX = '.stowage-tmp-';

const DELETE_PARALLELISM = 16;

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

/**
 * Objects as files under a root directory, `chunks/ab/<hex>` at `<root>/chunks/ab/<hex>`.
 *
 * put writes a temporary file in the object's directory, fsyncs it, moves it into place and fsyncs the
 * directory, so a half-written object is never visible under its key, even after a crash or power loss;
 * the temporary files a crash leaves behind start with `.stowage-tmp-` and are ignored (segments starting
 * so are refused as keys). `ifNoneMatch` is honoured exactly: the move is a hard link, which fails when the
 * name exists. Directories are created as needed and never removed. A key cannot be both an object and a
 * directory of other keys (`a/b` and `a/b/c`): the second put fails with `permanent`.
 */
export class FsObjectStore implements ObjectStore {
  readonly location: string;
  readonly root: string;
  readonly #beforeCommit: ((tempPath: string) => Promise<void>) | undefined;
  /** Directories holding `deferred` puts whose names are not yet durable. */
  readonly #unsyncedDirectories = new Set<string>();
  readonly #onDirectorySynced: ((directory: string) => void) | undefined;

  constructor(options: FsObjectStoreOptions) {
    if (!isAbsolute(options.root))
      throw new TypeError(`FsObjectStore root must be absolute: ${options.root}`);
    this.root = resolve(options.root);
    this.location = pathToFileURL(this.root).href;
    this.#beforeCommit = options.beforeCommit;
    this.#onDirectorySynced = options.onDirectorySynced;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.#path(key, 'head');
    try {
      const stats = await stat(path);
      if (!stats.isFile()) return undefined;
      // The name found may be another writer's deferred put: the next flush makes it durable too, so a
      // manifest written after that flush never names an object a crash could take back.
      this.#unsyncedDirectories.add(dirname(path));
      return { key, size: stats.size, lastModified: stats.mtime };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.#translate(error, 'head', key);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const path = this.#path(key, 'get');
    if (range !== undefined) validateRange(range, key);
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      handle = await open(path, constants.O_RDONLY);
      const stats = await handle.stat();
      if (!stats.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
      const offset = range?.offset ?? 0;
      const length = range?.length ?? stats.size;
      if (range !== undefined && offset + length > stats.size) throw rangePastEnd(range, stats.size, key);
      const body = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(body, done, length - done, offset + done);
        if (bytesRead === 0) throw rangePastEnd({ offset, length }, offset + done, key);
        done += bytesRead;
      }
      return body;
    } catch (error) {
      if (error instanceof ObjectStoreError) throw error;
      if (isMissing(error)) {
        throw new ObjectStoreError('not-found', `no object ${key} in ${this.location}`, {
          op: 'get',
          key,
          cause: error,
        });
      }
      throw this.#translate(error, 'get', key);
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
    const path = this.#path(key, 'put');
    const directory = dirname(path);
    const tempPath = join(directory, `${FS_TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    let tempWritten = false;
    try {
      // The directory usually exists (256 chunk directories serve every chunk): try the open first and make
      // the directory only when it is missing, instead of a mkdir per put.
      const handle = await open(tempPath, 'wx', 0o644).catch(async (error: unknown) => {
        if (errnoCode(error) !== 'ENOENT') throw error;
        await this.#makeDirectory(directory);
        return open(tempPath, 'wx', 0o644);
      });
      tempWritten = true;
      try {
        let done = 0;
        while (done < body.length) {
          const { bytesWritten } = await handle.write(body, done, body.length - done);
          done += bytesWritten;
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.#beforeCommit?.(tempPath);
      if (options.ifNoneMatch === true) {
        // link() refuses an existing name, which rename() would silently replace.
        await link(tempPath, path);
        await unlink(tempPath);
      } else {
        await rename(tempPath, path);
      }
      tempWritten = false;
      if (options.durability === 'deferred') this.#unsyncedDirectories.add(directory);
      else await this.#syncDirectory(directory);
    } catch (error) {
      if (tempWritten) await unlink(tempPath).catch(() => {});
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
      throw this.#translate(error, 'put', key);
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.#path(key, 'delete');
    try {
      await unlink(path);
    } catch (error) {
      // EISDIR/EPERM: the key names a directory of other keys, so there is no object to delete.
      if (isMissing(error) || errnoCode(error) === 'EISDIR' || errnoCode(error) === 'EPERM') return;
      throw this.#translate(error, 'delete', key);
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.#path(key, 'deleteMany');
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < keys.length) {
        const key = keys[next++]!;
        await this.delete(key);
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_PARALLELISM, keys.length) }, worker));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const directoryKey = prefix.slice(0, slash + 1); // '' or 'chunks/ab/'
    const namePrefix = prefix.slice(slash + 1);
    if (directoryKey.split('/').some((segment) => segment === '.' || segment === '..')) return;
    yield* this.#walk(directoryKey, namePrefix);
  }

  async *#walk(directoryKey: string, namePrefix: string): AsyncGenerator<ObjectInfo> {
    let entries: Dirent[];
    try {
      entries = await readdir(join(this.root, ...directoryKey.split('/')), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error) || errnoCode(error) === 'ENOTDIR') return;
      throw this.#translate(error, 'list', directoryKey + namePrefix);
    }
    // Sorting a directory's entries as `name` for files and `name/` for directories yields keys in global
    // byte order: every key below a directory starts with `name/`.
    const sorted = entries
      .filter((entry) => entry.name.startsWith(namePrefix) && !entry.name.startsWith(FS_TEMP_PREFIX))
      .filter((entry) => entry.isFile() || entry.isDirectory())
      .map((entry) => ({ entry, sortKey: entry.isDirectory() ? `${entry.name}/` : entry.name }))
      .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const { entry } of sorted) {
      const key = directoryKey + entry.name;
      if (entry.isDirectory()) {
        yield* this.#walk(`${key}/`, '');
        continue;
      }
      try {
        const stats = await stat(join(this.root, ...key.split('/')));
        if (stats.isFile()) yield { key, size: stats.size, lastModified: stats.mtime };
      } catch (error) {
        if (isMissing(error)) continue; // deleted while we listed
        throw this.#translate(error, 'list', key);
      }
    }
  }

  #path(key: string, op: ObjectStoreOp): string {
    validateKey(key, op);
    const segments = key.split('/');
    if (segments.some((segment) => segment.startsWith(FS_TEMP_PREFIX))) {
      throw new ObjectStoreError('invalid-key', `key ${key} uses the reserved prefix ${FS_TEMP_PREFIX}`, {
        op,
        key,
      });
    }
    return join(this.root, ...segments);
  }

  /** mkdir -p, then fsync the parent of every directory it created so the new names survive a crash. */
  async #makeDirectory(directory: string): Promise<void> {
    const firstCreated = await mkdir(directory, { recursive: true });
    if (firstCreated === undefined) return;
    const created: string[] = [];
    for (let path = directory; path.length >= firstCreated.length; path = dirname(path)) created.push(path);
    for (const path of created) await this.#syncDirectory(dirname(path));
  }

  async #syncDirectory(directory: string): Promise<void> {
    await syncDirectory(directory);
    this.#onDirectorySynced?.(directory);
  }

  #translate(error: unknown, op: ObjectStoreOp, key: string): ObjectStoreError {
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
