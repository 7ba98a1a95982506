import { isTransient, type ObjectStoreOp } from '../errors.js';
import {
  type ByteRange,
  compareKeys,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from '../object-store.js';
import type { RandomSource } from '../random.js';

export interface RetryEvent {
  readonly op: ObjectStoreOp;
  /** The key, or the prefix for list. */
  readonly key: string | undefined;
  /** 1 for the first retry. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: unknown;
}

export interface RetryOptions {
  /** Tries per operation, the first included (default 6). */
  readonly attempts?: number;
  /** Backoff cap for the first retry (default 200 ms); doubles each retry. */
  readonly baseDelayMs?: number;
  /** Longest single wait (default 20 s). */
  readonly maxDelayMs?: number;
  /** Default Math.random. */
  readonly random?: RandomSource;
  /** Default a real timer. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Told before each wait; for logs and metrics. */
  readonly onRetry?: (event: RetryEvent) => void;
}

/**
 * Retries operations that fail with a `transient` ObjectStoreError, waiting a "full jitter" exponential
 * backoff between tries: a uniform random delay in [0, min(maxDelayMs, baseDelayMs · 2^(retry-1))).
 * Every other error, and the last transient one, is thrown as it is. Only the error `kind` is looked at.
 *
 * A retried put sends the whole body again (puts are all-or-nothing, so this is always safe). A retried
 * `put(…, { ifNoneMatch: true })` may fail with `precondition-failed` because its earlier try landed before
 * the connection broke. A listing that fails mid-way resumes after the last key it yielded.
 */
export function withRetry(store: ObjectStore, options: RetryOptions = {}): ObjectStore {
  const attempts = options.attempts ?? 6;
  const baseDelayMs = options.baseDelayMs ?? 200;
  const maxDelayMs = options.maxDelayMs ?? 20_000;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError(`attempts must be ≥ 1: ${attempts}`);

  /** Waits before retry number `retry` if the error allows one; false when the caller must give up. */
  const backoff = async (op: ObjectStoreOp, key: string | undefined, retry: number, error: unknown) => {
    if (!isTransient(error) || retry >= attempts) return false;
    const delayMs = Math.floor(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (retry - 1)));
    options.onRetry?.({ op, key, attempt: retry, delayMs, error });
    await sleep(delayMs);
    return true;
  };

  const retrying = async <T>(
    op: ObjectStoreOp,
    key: string | undefined,
    run: () => Promise<T>,
  ): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (!(await backoff(op, key, attempt, error))) throw error;
      }
    }
  };

  return {
    location: store.location,
    ...(store.flush === undefined ? {} : { flush: () => retrying('put', undefined, () => store.flush!()) }),
    head: (key: string) => retrying('head', key, () => store.head(key)),
    get: (key: string, range?: ByteRange) => retrying('get', key, () => store.get(key, range)),
    put: (key: string, body: Uint8Array, putOptions?: PutOptions) =>
      retrying('put', key, () => store.put(key, body, putOptions)),
    delete: (key: string) => retrying('delete', key, () => store.delete(key)),
    deleteMany: (keys: readonly string[]) => retrying('deleteMany', keys[0], () => store.deleteMany(keys)),
    async *list(prefix: string): AsyncIterable<ObjectInfo> {
      let lastKey: string | undefined;
      let resumeAfter: string | undefined;
      let failures = 0;
      for (;;) {
        try {
          for await (const info of store.list(prefix)) {
            // After a restart, skip what was already yielded; listings are in key order.
            if (resumeAfter !== undefined && compareKeys(info.key, resumeAfter) <= 0) continue;
            lastKey = info.key;
            failures = 0;
            yield info;
          }
          return;
        } catch (error) {
          failures++;
          if (!(await backoff('list', prefix, failures, error))) throw error;
          resumeAfter = lastKey;
        }
      }
    },
  };
}
