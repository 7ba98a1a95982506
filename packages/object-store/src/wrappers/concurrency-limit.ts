import type { ByteRange, ObjectInfo, ObjectStore, PutOptions } from '../object-store.js';

/**
 * Lets at most `limit` operations reach `store` at once; the others wait their turn in arrival order.
 * A listing holds a slot only while it fetches the next object, never while its consumer works.
 */
export function withConcurrencyLimit(store: ObjectStore, limit: number): ObjectStore {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency limit must be ≥ 1: ${limit}`);
  let running = 0;
  const waiting: (() => void)[] = [];

  const limited = async <T>(run: () => Promise<T>): Promise<T> => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await run();
    } finally {
      // Hand the slot straight to the next waiter so a newcomer cannot overtake it.
      const next = waiting.shift();
      if (next === undefined) running--;
      else next();
    }
  };

  return {
    location: store.location,
    ...(store.flush === undefined ? {} : { flush: () => limited(() => store.flush!()) }),
    head: (key: string) => limited(() => store.head(key)),
    get: (key: string, range?: ByteRange) => limited(() => store.get(key, range)),
    put: (key: string, body: Uint8Array, options?: PutOptions) =>
      limited(() => store.put(key, body, options)),
    delete: (key: string) => limited(() => store.delete(key)),
    deleteMany: (keys: readonly string[]) => limited(() => store.deleteMany(keys)),
    list(prefix: string): AsyncIterable<ObjectInfo> {
      return {
        [Symbol.asyncIterator]() {
          const inner = store.list(prefix)[Symbol.asyncIterator]();
          return {
            next: () => limited(() => inner.next()),
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
