import { abortedError, isTransient, type ObjectStoreOp, throwIfAborted } from '../errors.js';
import {
  type ByteRange,
  compareKeys,
  type ObjectInfo,
  type ObjectStore,
  type OperationOptions,
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
  /**
   * Default a real timer, cleared by an abort. The call's signal is passed on; a sleep that ignores it is
   * abandoned when it aborts (the retry gives up at once either way).
   */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
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
 *
 * An aborted call is never retried: no try starts once the signal has aborted, an error that comes after it
 * (whatever its kind) is thrown as `aborted`, and an abort during the backoff wait ends the wait at once and
 * throws `aborted`.
 */
export function withRetry(store: ObjectStore, options: RetryOptions = {}): ObjectStore {
  const attempts = options.attempts ?? 6;
  const baseDelayMs = options.baseDelayMs ?? 200;
  const maxDelayMs = options.maxDelayMs ?? 20_000;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? timerSleep;
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError(`attempts must be ≥ 1: ${attempts}`);

  /**
   * Waits before retry number `retry` if the error allows one; false when the caller must give up. Throws
   * `aborted` once the signal has aborted, whatever the error was.
   */
  const backoff = async (
    op: ObjectStoreOp,
    key: string | undefined,
    retry: number,
    error: unknown,
    signal: AbortSignal | undefined,
  ) => {
    throwIfAborted(signal, op, key);
    if (!isTransient(error) || retry >= attempts) return false;
    const delayMs = Math.floor(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (retry - 1)));
    options.onRetry?.({ op, key, attempt: retry, delayMs, error });
    await abortableSleep(sleep, delayMs, signal, op, key);
    return true;
  };

  const retrying = async <T>(
    op: ObjectStoreOp,
    key: string | undefined,
    signal: AbortSignal | undefined,
    run: () => Promise<T>,
  ): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal, op, key);
      try {
        return await run();
      } catch (error) {
        if (!(await backoff(op, key, attempt, error, signal))) throw error;
      }
    }
  };

  return {
    location: store.location,
    ...(store.flush === undefined
      ? {}
      : { flush: () => retrying('put', undefined, undefined, () => store.flush!()) }),
    head: (key: string, callOptions?: OperationOptions) =>
      retrying('head', key, callOptions?.signal, () => store.head(key, callOptions)),
    get: (key: string, range?: ByteRange, callOptions?: OperationOptions) =>
      retrying('get', key, callOptions?.signal, () => store.get(key, range, callOptions)),
    put: (key: string, body: Uint8Array, putOptions?: PutOptions) =>
      retrying('put', key, putOptions?.signal, () => store.put(key, body, putOptions)),
    delete: (key: string, callOptions?: OperationOptions) =>
      retrying('delete', key, callOptions?.signal, () => store.delete(key, callOptions)),
    deleteMany: (keys: readonly string[], callOptions?: OperationOptions) =>
      retrying('deleteMany', keys[0], callOptions?.signal, () => store.deleteMany(keys, callOptions)),
    async *list(prefix: string, callOptions?: OperationOptions): AsyncIterable<ObjectInfo> {
      const signal = callOptions?.signal;
      let lastKey: string | undefined;
      let resumeAfter: string | undefined;
      let failures = 0;
      for (;;) {
        throwIfAborted(signal, 'list', prefix);
        try {
          for await (const info of store.list(prefix, callOptions)) {
            // After a restart, skip what was already yielded; listings are in key order.
            if (resumeAfter !== undefined && compareKeys(info.key, resumeAfter) <= 0) continue;
            lastKey = info.key;
            failures = 0;
            yield info;
          }
          return;
        } catch (error) {
          failures++;
          if (!(await backoff('list', prefix, failures, error, signal))) throw error;
          resumeAfter = lastKey;
        }
      }
    },
  };
}

function timerSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * `sleep(ms, signal)`, ended by an abort even when the sleep given ignores its signal; then throws `aborted`.
 * The abort's listener is removed when the wait ends, so waits do not pile up listeners on a long-lived signal.
 */
async function abortableSleep(
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>,
  ms: number,
  signal: AbortSignal | undefined,
  op: ObjectStoreOp,
  key: string | undefined,
): Promise<void> {
  if (signal === undefined) return sleep(ms);
  throwIfAborted(signal, op, key);
  let onAbort: (() => void) | undefined;
  try {
    await Promise.race([
      sleep(ms, signal),
      new Promise<never>((_, reject) => {
        onAbort = () => reject(abortedError(op, key, signal));
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } catch (error) {
    throwIfAborted(signal, op, key); // a sleep that rejects on its signal: the abort, in our words
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
  throwIfAborted(signal, op, key);
}
