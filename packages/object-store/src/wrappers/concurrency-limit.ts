import { abortedError, type ObjectStoreOp, throwIfAborted } from '../errors.js';
import type { ByteRange, ObjectInfo, ObjectStore, OperationOptions, PutOptions } from '../object-store.js';

interface Waiter {
  /** Hands the slot over: the waiter now holds it. */
  readonly grant: () => void;
}

/**
 * Lets at most `limit` operations reach `store` at once; the others wait their turn in arrival order.
 * A listing holds a slot only while it fetches the next object, never while its consumer works.
 *
 * A waiter whose signal aborts leaves the queue at once and rejects with `aborted`, holding no slot; an
 * operation holding a slot gives it back however it ends (the store rejects an aborted one promptly).
 */
export function withConcurrencyLimit(store: ObjectStore, limit: number): ObjectStore {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency limit must be ≥ 1: ${limit}`);
  let running = 0;
  const waiting: Waiter[] = [];

  /** Resolves once the caller holds a slot; rejects (holding none) when its signal aborts first. */
  const acquire = (op: ObjectStoreOp, key: string | undefined, signal: AbortSignal | undefined) => {
    throwIfAborted(signal, op, key);
    if (running < limit) {
      running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const at = waiting.indexOf(waiter);
        if (at >= 0) waiting.splice(at, 1);
        reject(abortedError(op, key, signal!));
      };
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      waiting.push(waiter);
    });
  };

  const release = () => {
    // Hand the slot straight to the next waiter so a newcomer cannot overtake it.
    const next = waiting.shift();
    if (next === undefined) running--;
    else next.grant();
  };

  const limited = async <T>(
    op: ObjectStoreOp,
    key: string | undefined,
    signal: AbortSignal | undefined,
    run: () => Promise<T>,
  ): Promise<T> => {
    await acquire(op, key, signal);
    try {
      return await run();
    } finally {
      release();
    }
  };

  return {
    location: store.location,
    ...(store.flush === undefined
      ? {}
      : { flush: () => limited('put', undefined, undefined, () => store.flush!()) }),
    head: (key: string, options?: OperationOptions) =>
      limited('head', key, options?.signal, () => store.head(key, options)),
    get: (key: string, range?: ByteRange, options?: OperationOptions) =>
      limited('get', key, options?.signal, () => store.get(key, range, options)),
    put: (key: string, body: Uint8Array, options?: PutOptions) =>
      limited('put', key, options?.signal, () => store.put(key, body, options)),
    delete: (key: string, options?: OperationOptions) =>
      limited('delete', key, options?.signal, () => store.delete(key, options)),
    deleteMany: (keys: readonly string[], options?: OperationOptions) =>
      limited('deleteMany', keys[0], options?.signal, () => store.deleteMany(keys, options)),
    list(prefix: string, options?: OperationOptions): AsyncIterable<ObjectInfo> {
      return {
        [Symbol.asyncIterator]() {
          const inner = store.list(prefix, options)[Symbol.asyncIterator]();
          return {
            next: () => limited('list', prefix, options?.signal, () => inner.next()),
            return: async (value?: unknown) => {
              await inner.return?.(value);
              return { done: true, value: undefined };
            },
          };
        },
      };
    },
  };
}
