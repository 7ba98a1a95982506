import { setMaxListeners } from 'node:events';
import { isObjectStoreError } from '@stowage/object-store';
import { EngineError } from './errors.js';

/** The signal a job hands to every store call, and the one listener it keeps on the caller's. */
export interface JobSignal {
  /** Aborts when the caller's signal does (with its reason); undefined when the caller gave none. */
  readonly signal: AbortSignal | undefined;
  /** Removes the listener on the caller's signal. */
  close(): void;
}

/**
 * The job's own signal, following the caller's. Every store call in flight takes it (the store aborts the
 * request: an S3 socket is destroyed, a file store starts no further step), and each adds a listener while it
 * runs: with 16 requests in flight, the limit's waiters and the retry's sleeps, more than Node's 10 before it
 * warns of a leak. So the engine gives the store a signal of its own with no such limit, and leaves the
 * caller's as it was, with one listener that `close` removes.
 */
export function jobSignal(signal: AbortSignal | undefined): JobSignal {
  if (signal === undefined) return { signal: undefined, close: () => {} };
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  const onAbort = () => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return { signal: controller.signal, close: () => signal.removeEventListener('abort', onAbort) };
}

/**
 * What a job throws for `error`: the store's `aborted` — the job's cancel, which only the job's signal
 * raises — as the engine's `aborted` EngineError (its cause the store's error); anything else as it is.
 */
export function asCancel(error: unknown, what: string): unknown {
  if (isObjectStoreError(error, 'aborted')) {
    return new EngineError('aborted', `${what} cancelled`, { cause: error });
  }
  return error;
}

/** Throws the engine's `aborted` when `signal` has aborted. */
export function throwIfCancelled(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new EngineError('aborted', `${what} cancelled`);
}
