import { EngineError } from './errors.js';

/**
 * Settles with `promise`, or rejects with an `aborted` EngineError as soon as `signal` aborts, whichever
 * comes first. The object store takes no signal, so a request stalled on a dead connection would otherwise
 * hold a cancelled restore until the request timeout and every retry ran out. The abandoned request goes on
 * in the background until it settles; its result is dropped. Only for reads whose result nothing else uses.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(new EngineError('aborted', `${what} cancelled`));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {}); // its later failure is not ours to report
      reject(new EngineError('aborted', `${what} cancelled`));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
