import { ObjectStoreError, type ObjectStoreOp } from '../errors.js';
import type { ByteRange, ObjectInfo, ObjectStore, OperationOptions, PutOptions } from '../object-store.js';
import type { RandomSource } from '../random.js';

/**
 * Where an injected fault strikes:
 * - `error-before`: the server answers 503 and does nothing;
 * - `reset-before`: the connection drops before the request arrives;
 * - `error-after`: the operation takes effect, then the answer is a 500;
 * - `reset-after`: the operation takes effect (a PUT lands), then the connection drops before the answer.
 * All of them surface as `transient` ObjectStoreErrors, as the real ones do.
 */
export const FAULT_KINDS = ['error-before', 'reset-before', 'error-after', 'reset-after'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface InjectedFault {
  readonly op: ObjectStoreOp;
  readonly key: string | undefined;
  readonly fault: FaultKind;
}

export interface FaultOptions {
  /** Probability in [0, 1] that an operation (or a listing step) fails. */
  readonly rate: number;
  /** Use a seeded source (createSeededRandom) for runs that repeat exactly. */
  readonly random: RandomSource;
  /** Which faults to inject, picked uniformly; default all of FAULT_KINDS. */
  readonly kinds?: readonly FaultKind[];
  /** Which operations to hit; default all. */
  readonly ops?: readonly ObjectStoreOp[];
  /** A listing may fail before its first object and then every this many objects, as S3 pages (default 1000). */
  readonly listPageSize?: number;
  /** Told about every fault injected: when it replaces an answer (an "after" fault on a call that failed on its
   * own is not). */
  readonly onFault?: (fault: InjectedFault) => void;
}

/**
 * Injects transient failures into a store, for testing what sits above it (retry, the backup pipeline).
 * With the same seeded `random` and the same sequence of calls, the same calls fail the same way.
 * Listings fail only "before" a page: at the start and every `listPageSize` objects. Signals pass through to
 * `store`; a call whose signal has already aborted draws no fault (a server never sees it), so it leaves the
 * sequence of draws as it was.
 */
export function withFaults(store: ObjectStore, options: FaultOptions): ObjectStore {
  const kinds = options.kinds ?? FAULT_KINDS;
  if (!(options.rate >= 0 && options.rate <= 1)) throw new RangeError(`fault rate must be in [0, 1]`);
  if (kinds.length === 0) throw new RangeError('withFaults needs at least one fault kind');
  const hits = new Set<ObjectStoreOp>(options.ops ?? ['head', 'get', 'put', 'delete', 'deleteMany', 'list']);

  const draw = (op: ObjectStoreOp, allowed: readonly FaultKind[]) => {
    if (!hits.has(op) || options.random() >= options.rate) return undefined;
    return allowed[Math.min(allowed.length - 1, Math.floor(options.random() * allowed.length))]!;
  };
  const inject = (op: ObjectStoreOp, key: string | undefined, fault: FaultKind) => {
    options.onFault?.({ op, key, fault });
    return injected(op, key, fault);
  };

  const faulty = async <T>(
    op: ObjectStoreOp,
    key: string | undefined,
    signal: AbortSignal | undefined,
    run: () => Promise<T>,
  ): Promise<T> => {
    if (signal?.aborted) return run();
    const fault = draw(op, kinds);
    if (fault === 'error-before' || fault === 'reset-before') throw inject(op, key, fault);
    // An "after" fault replaces the answer only when there is one: a call that failed on its own (a GET of
    // a key that is not there) reports its own error, and the fault is not counted as injected.
    const result = await run();
    if (fault !== undefined) throw inject(op, key, fault);
    return result;
  };

  const pageSize = options.listPageSize ?? 1000;
  const beforeKinds = kinds.filter((kind) => kind.endsWith('-before'));
  return {
    location: store.location,
    ...(store.flush === undefined ? {} : { flush: () => store.flush!() }),
    head: (key: string, callOptions?: OperationOptions) =>
      faulty('head', key, callOptions?.signal, () => store.head(key, callOptions)),
    get: (key: string, range?: ByteRange, callOptions?: OperationOptions) =>
      faulty('get', key, callOptions?.signal, () => store.get(key, range, callOptions)),
    put: (key: string, body: Uint8Array, putOptions?: PutOptions) =>
      faulty('put', key, putOptions?.signal, () => store.put(key, body, putOptions)),
    delete: (key: string, callOptions?: OperationOptions) =>
      faulty('delete', key, callOptions?.signal, () => store.delete(key, callOptions)),
    deleteMany: (keys: readonly string[], callOptions?: OperationOptions) =>
      faulty('deleteMany', keys[0], callOptions?.signal, () => store.deleteMany(keys, callOptions)),
    async *list(prefix: string, callOptions?: OperationOptions): AsyncIterable<ObjectInfo> {
      const listKinds = beforeKinds.length > 0 ? beforeKinds : (['reset-before'] as const);
      const iterator = store.list(prefix, callOptions)[Symbol.asyncIterator]();
      try {
        for (let index = 0; ; index++) {
          if (index % pageSize === 0 && !callOptions?.signal?.aborted) {
            const fault = draw('list', listKinds);
            if (fault !== undefined) throw inject('list', prefix, fault);
          }
          const step = await iterator.next();
          if (step.done === true) return;
          yield step.value;
        }
      } finally {
        await iterator.return?.();
      }
    },
  };
}

function injected(op: ObjectStoreOp, key: string | undefined, fault: FaultKind): ObjectStoreError {
  const cause = fault.startsWith('reset')
    ? Object.assign(new Error('read ECONNRESET (injected)'), { code: 'ECONNRESET' })
    : new Error(fault === 'error-before' ? '503 SlowDown (injected)' : '500 InternalError (injected)');
  return new ObjectStoreError('transient', `injected ${fault} fault on ${op} ${key ?? ''}`.trimEnd(), {
    op,
    key,
    cause,
  });
}
