import { EngineError } from './errors.js';

/** Races requests against one abort signal; see `abortRace`. */
export interface AbortRace {
  /**
   * Starts the request and settles with it, or rejects with an `aborted` EngineError as soon as the signal
   * aborts; once it has aborted, requests are not started at all.
   */
  race<T>(start: () => Promise<T>): Promise<T>;
  /** Removes the one listener on the signal. */
  close(): void;
}

/**
 * The object store takes no signal, so a request stalled on a dead connection would hold a cancelled backup,
 * restore or verify until the request timeout and every retry ran out. Racing each request against the
 * signal ends the job at once; the abandoned request goes on in the background until it settles, and its
 * result is dropped. So it is only for requests whose late outcome harms nothing: reads, HEADs, and PUTs of
 * chunk objects (content-addressed: landing late, after the job, only leaves an unreferenced chunk for GC) —
 * never a manifest. The caller must not reuse what an abandoned request still reads (a put's body). One
 * listener serves every request of the operation (one per request would pass Node's limit of 10 a signal).
 */
export function abortRace(signal: AbortSignal | undefined, what: string): AbortRace {
  if (signal === undefined) return { race: (start) => start(), close: () => {} };
  const pending = new Set<(error: EngineError) => void>();
  const onAbort = () => {
    const error = new EngineError('aborted', `${what} cancelled`);
    for (const reject of pending) reject(error);
    pending.clear();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  return {
    race<T>(start: () => Promise<T>): Promise<T> {
      if (signal.aborted) return Promise.reject(new EngineError('aborted', `${what} cancelled`));
      const promise = start();
      return new Promise<T>((resolve, reject) => {
        const abandon = (error: EngineError) => {
          promise.catch(() => {});
          reject(error);
        };
        pending.add(abandon);
        promise.then(
          (value) => {
            pending.delete(abandon);
            resolve(value);
          },
          (error: unknown) => {
            pending.delete(abandon);
            reject(error);
          },
        );
      });
    },
    close() {
      signal.removeEventListener('abort', onAbort);
      pending.clear();
    },
  };
}
