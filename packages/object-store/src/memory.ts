import { ObjectStoreError, throwIfAborted } from './errors.js';
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

interface StoredObject {
  readonly body: Uint8Array;
  readonly lastModified: Date;
}

export interface MemoryObjectStoreOptions {
  /** Source of `lastModified`; defaults to the wall clock. */
  readonly now?: () => Date;
}

/**
 * An ObjectStore in a Map, for tests and dry runs. Bodies are copied in and out, so callers may reuse
 * their buffers. Honours `ifNoneMatch` exactly. Every operation is done at once, so a signal is looked at
 * only before it (and before each object a listing yields).
 */
export class MemoryObjectStore implements ObjectStore {
  readonly location = 'memory://';
  readonly #objects = new Map<string, StoredObject>();
  readonly #now: () => Date;

  constructor(options: MemoryObjectStoreOptions = {}) {
    this.#now = options.now ?? (() => new Date());
  }

  async head(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    validateKey(key, 'head');
    throwIfAborted(options.signal, 'head', key);
    const object = this.#objects.get(key);
    return object === undefined ? undefined : info(key, object);
  }

  async get(key: string, range?: ByteRange, options: OperationOptions = {}): Promise<Uint8Array> {
    validateKey(key, 'get');
    if (range !== undefined) validateRange(range, key);
    throwIfAborted(options.signal, 'get', key);
    const object = this.#objects.get(key);
    if (object === undefined) {
      throw new ObjectStoreError('not-found', `no object ${key} in ${this.location}`, { op: 'get', key });
    }
    if (range === undefined) return object.body.slice();
    if (range.offset + range.length > object.body.length) throw rangePastEnd(range, object.body.length, key);
    return object.body.slice(range.offset, range.offset + range.length);
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    validateKey(key, 'put');
    throwIfAborted(options.signal, 'put', key);
    if (options.ifNoneMatch === true && this.#objects.has(key)) {
      throw new ObjectStoreError('precondition-failed', `object ${key} already exists in ${this.location}`, {
        op: 'put',
        key,
      });
    }
    this.#objects.set(key, { body: body.slice(), lastModified: this.#now() });
  }

  async delete(key: string, options: OperationOptions = {}): Promise<void> {
    validateKey(key, 'delete');
    throwIfAborted(options.signal, 'delete', key);
    this.#objects.delete(key);
  }

  async deleteMany(keys: readonly string[], options: OperationOptions = {}): Promise<void> {
    for (const key of keys) validateKey(key, 'deleteMany');
    throwIfAborted(options.signal, 'deleteMany', keys[0]);
    for (const key of keys) this.#objects.delete(key);
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    throwIfAborted(options.signal, 'list', prefix);
    const keys = [...this.#objects.keys()].filter((key) => key.startsWith(prefix)).sort(compareKeys);
    for (const key of keys) {
      throwIfAborted(options.signal, 'list', prefix);
      const object = this.#objects.get(key);
      if (object !== undefined) yield info(key, object);
    }
  }
}

function info(key: string, object: StoredObject): ObjectInfo {
  return { key, size: object.body.length, lastModified: object.lastModified };
}
