import type { ObjectStore } from '../object-store.js';
import { withConcurrencyLimit } from './concurrency-limit.js';
import { type StoreEvent, withMetrics } from './metrics.js';
import { type RetryOptions, withRetry } from './retry.js';

export interface DefaultStoreStackOptions {
  /** Requests in flight at once (default 16, which matches the S3 socket pool's default). */
  readonly concurrency?: number;
  readonly retry?: RetryOptions;
  /** Where operation events go; without it the metrics layer is left out. */
  readonly onEvent?: (event: StoreEvent) => void;
}

/**
 * The stack every app uses: `withMetrics(withRetry(withConcurrencyLimit(store)))`, outermost first.
 *
 * - The limit is innermost so that only requests on the wire hold a slot: a try waiting out its backoff
 *   lets other work through instead of sitting on a connection.
 * - Retry sits above the limit, so each retry queues again like any request.
 * - Metrics are outermost: one event per logical operation, its duration including the retries, and its
 *   error kind the one the caller saw. Individual retries are reported through `retry.onRetry`.
 */
export function createDefaultStoreStack(
  store: ObjectStore,
  options: DefaultStoreStackOptions = {},
): ObjectStore {
  const limited = withConcurrencyLimit(store, options.concurrency ?? 16);
  const retried = withRetry(limited, options.retry);
  return options.onEvent === undefined ? retried : withMetrics(retried, options.onEvent);
}
