import { isObjectStoreError, type ObjectStoreErrorKind, type ObjectStoreOp } from '../errors.js';
import type { ByteRange, ObjectInfo, ObjectStore, OperationOptions, PutOptions } from '../object-store.js';

interface StoreEventBase {
  readonly op: ObjectStoreOp;
  /** The key; the prefix for list; the first key for deleteMany. */
  readonly key: string | undefined;
  /** Body bytes sent (put) or received (get); for list, the number of objects listed is in `count`. */
  readonly bytes: number;
  /** Objects touched: 1, the keys of a deleteMany, or the objects a listing yielded. */
  readonly count: number;
  readonly durationMs: number;
}

/**
 * One finished operation, successful or not. A listing reports once, when it ends or is abandoned.
 * `aborted`: the caller's signal ended it (an `aborted` ObjectStoreError) — a cancel, not a failure of the
 * store, so it is no `error`; its `bytes` are 0, since how much went over the wire is not known.
 */
export type StoreEvent =
  | (StoreEventBase & { readonly outcome: 'ok' | 'aborted' })
  | (StoreEventBase & {
      readonly outcome: 'error';
      /** `unknown` when something other than an ObjectStoreError escaped. */
      readonly errorKind: Exclude<ObjectStoreErrorKind, 'aborted'> | 'unknown';
    });

export interface MetricsOptions {
  /** Monotonic milliseconds; default performance.now. */
  readonly now?: () => number;
}

/** Reports every operation on `store` to `onEvent`. Never picks a logger; a throwing onEvent is ignored. */
export function withMetrics(
  store: ObjectStore,
  onEvent: (event: StoreEvent) => void,
  options: MetricsOptions = {},
): ObjectStore {
  const now = options.now ?? (() => performance.now());

  const emit = (base: StoreEventBase, error?: unknown, failed = false) => {
    const event: StoreEvent = !failed
      ? { ...base, outcome: 'ok' }
      : isObjectStoreError(error, 'aborted')
        ? { ...base, bytes: 0, outcome: 'aborted' }
        : {
            ...base,
            outcome: 'error',
            errorKind: isObjectStoreError(error) && error.kind !== 'aborted' ? error.kind : 'unknown',
          };
    try {
      onEvent(event);
    } catch {
      // Metrics must never change what the store does.
    }
  };

  const measured = async <T>(
    op: ObjectStoreOp,
    key: string | undefined,
    bytesSent: number,
    count: number,
    run: () => Promise<T>,
    bytesReceived: (result: T) => number = () => 0,
  ): Promise<T> => {
    const start = now();
    try {
      const result = await run();
      emit({ op, key, bytes: bytesSent + bytesReceived(result), count, durationMs: now() - start });
      return result;
    } catch (error) {
      emit({ op, key, bytes: bytesSent, count, durationMs: now() - start }, error, true);
      throw error;
    }
  };

  return {
    location: store.location,
    ...(store.flush === undefined ? {} : { flush: () => store.flush!() }),
    head: (key: string, options?: OperationOptions) =>
      measured('head', key, 0, 1, () => store.head(key, options)),
    get: (key: string, range?: ByteRange, options?: OperationOptions) =>
      measured(
        'get',
        key,
        0,
        1,
        () => store.get(key, range, options),
        (body) => body.length,
      ),
    put: (key: string, body: Uint8Array, putOptions?: PutOptions) =>
      measured('put', key, body.length, 1, () => store.put(key, body, putOptions)),
    delete: (key: string, options?: OperationOptions) =>
      measured('delete', key, 0, 1, () => store.delete(key, options)),
    deleteMany: (keys: readonly string[], options?: OperationOptions) =>
      measured('deleteMany', keys[0], 0, keys.length, () => store.deleteMany(keys, options)),
    async *list(prefix: string, options?: OperationOptions): AsyncIterable<ObjectInfo> {
      const start = now();
      let count = 0;
      let failure: { error: unknown } | undefined;
      try {
        for await (const info of store.list(prefix, options)) {
          count++;
          yield info;
        }
      } catch (error) {
        failure = { error };
        throw error;
      } finally {
        const base = { op: 'list' as const, key: prefix, bytes: 0, count, durationMs: now() - start };
        if (failure === undefined) emit(base);
        else emit(base, failure.error, true);
      }
    },
  };
}
