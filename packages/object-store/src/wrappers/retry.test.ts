import { describe, expect, it } from 'vitest';
import { ObjectStoreError, type ObjectStoreErrorKind } from '../errors.js';
import { MemoryObjectStore } from '../memory.js';
import type { ObjectInfo, ObjectStore } from '../object-store.js';
import { collect } from '../testing/index.js';
import { type RetryEvent, withRetry } from './retry.js';

/** A fake clock: sleeps finish at once but are recorded. */
function fakeSleep() {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}

function failing(store: ObjectStore, kinds: ObjectStoreErrorKind[]): ObjectStore & { calls: number } {
  const wrapper = {
    calls: 0,
    location: store.location,
    head: (key: string) => store.head(key),
    get: (key: string) => store.get(key),
    put: async (key: string, body: Uint8Array) => {
      wrapper.calls++;
      const kind = kinds.shift();
      if (kind !== undefined) throw new ObjectStoreError(kind, `fail ${kind}`, { op: 'put', key });
      await store.put(key, body);
    },
    delete: (key: string) => store.delete(key),
    deleteMany: (keys: readonly string[]) => store.deleteMany(keys),
    list: (prefix: string) => store.list(prefix),
  };
  return wrapper;
}

describe('withRetry', () => {
  it('retries transient errors with full-jitter exponential backoff, capped', async () => {
    const inner = failing(new MemoryObjectStore(), ['transient', 'transient', 'transient', 'transient']);
    const { waits, sleep } = fakeSleep();
    const events: RetryEvent[] = [];
    const store = withRetry(inner, {
      attempts: 5,
      baseDelayMs: 100,
      maxDelayMs: 500,
      random: () => 0.5,
      sleep,
      onRetry: (event) => events.push(event),
    });
    const body = new Uint8Array([1, 2, 3]);
    await store.put('k', body);
    expect(inner.calls).toBe(5);
    expect(waits).toEqual([50, 100, 200, 250]); // 0.5 × min(500, 100 · 2^n)
    expect(events.map((event) => [event.op, event.key, event.attempt])).toEqual([
      ['put', 'k', 1],
      ['put', 'k', 2],
      ['put', 'k', 3],
      ['put', 'k', 4],
    ]);
    expect(await inner.get('k')).toEqual(body);
  });

  it('gives up after the attempt budget with the last transient error', async () => {
    const inner = failing(new MemoryObjectStore(), ['transient', 'transient', 'transient']);
    const { waits, sleep } = fakeSleep();
    const store = withRetry(inner, { attempts: 3, random: () => 0.999, sleep, baseDelayMs: 10 });
    await expect(store.put('k', new Uint8Array(1))).rejects.toMatchObject({ kind: 'transient' });
    expect(inner.calls).toBe(3);
    expect(waits).toEqual([9, 19]);
  });

  it.each(['not-found', 'precondition-failed', 'auth', 'no-space', 'permanent'] as const)(
    'does not retry %s',
    async (kind) => {
      const inner = failing(new MemoryObjectStore(), [kind]);
      const { waits, sleep } = fakeSleep();
      await expect(withRetry(inner, { sleep }).put('k', new Uint8Array(1))).rejects.toMatchObject({ kind });
      expect(inner.calls).toBe(1);
      expect(waits).toEqual([]);
    },
  );

  it('never retries an aborted call: no try after the abort, whatever the last error was', async () => {
    const controller = new AbortController();
    let calls = 0;
    const inner: ObjectStore = {
      ...wrap(new MemoryObjectStore()),
      put: async (key) => {
        calls++;
        controller.abort();
        // A store breaking the contract: the destroyed socket's reset, as it would look.
        throw new ObjectStoreError('transient', 'read ECONNRESET', { op: 'put', key });
      },
    };
    const { waits, sleep } = fakeSleep();
    const store = withRetry(inner, { sleep });
    await expect(store.put('k', new Uint8Array(1), { signal: controller.signal })).rejects.toMatchObject({
      kind: 'aborted',
      op: 'put',
      key: 'k',
    });
    expect(calls).toBe(1);
    expect(waits).toEqual([]);
    // Already aborted: not even a first try.
    await expect(store.put('k', new Uint8Array(1), { signal: controller.signal })).rejects.toMatchObject({
      kind: 'aborted',
    });
    expect(calls).toBe(1);
  });

  it('ends its backoff wait at the abort, with a sleep that ignores the signal and with the real timer', async () => {
    for (const sleep of [() => new Promise<void>(() => {}), undefined]) {
      const inner = failing(new MemoryObjectStore(), ['transient', 'transient']);
      const controller = new AbortController();
      const store = withRetry(inner, {
        baseDelayMs: 600_000,
        maxDelayMs: 600_000,
        random: () => 0.99,
        onRetry: () => setTimeout(() => controller.abort(), 5),
        ...(sleep === undefined ? {} : { sleep }),
      });
      const started = performance.now();
      await expect(store.put('k', new Uint8Array(1), { signal: controller.signal })).rejects.toMatchObject({
        kind: 'aborted',
      });
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(inner.calls).toBe(1);
    }
  });

  it('stops a listing it would have resumed once the signal aborts', async () => {
    const memory = new MemoryObjectStore();
    for (let index = 0; index < 4; index++) await memory.put(`k/${index}`, new Uint8Array(1));
    const controller = new AbortController();
    let listings = 0;
    const flaky: ObjectStore = {
      ...wrap(memory),
      async *list(prefix: string): AsyncIterable<ObjectInfo> {
        listings++;
        yield* memory.list(prefix);
        controller.abort();
        throw new ObjectStoreError('transient', 'reset', { op: 'list', key: prefix });
      },
    };
    const { sleep } = fakeSleep();
    const seen: string[] = [];
    const listing = (async () => {
      for await (const info of withRetry(flaky, { sleep }).list('k/', { signal: controller.signal })) {
        seen.push(info.key);
      }
    })();
    await expect(listing).rejects.toMatchObject({ kind: 'aborted', op: 'list' });
    expect(seen).toHaveLength(4);
    expect(listings).toBe(1);
  });

  it('does not retry errors that are not ObjectStoreErrors', async () => {
    let calls = 0;
    const inner = new MemoryObjectStore();
    const store = withRetry(
      {
        ...inner,
        location: inner.location,
        head: async () => {
          calls++;
          throw new TypeError('bug');
        },
      } as unknown as ObjectStore,
      { sleep: async () => {} },
    );
    await expect(store.head('k')).rejects.toThrow('bug');
    expect(calls).toBe(1);
  });

  it('resumes a listing that fails mid-way after the last key it yielded', async () => {
    const memory = new MemoryObjectStore();
    for (let index = 0; index < 10; index++) await memory.put(`k/${index}`, new Uint8Array(1));
    let listings = 0;
    const flaky: ObjectStore = {
      ...wrap(memory),
      async *list(prefix: string): AsyncIterable<ObjectInfo> {
        const failAt = [3, 7][listings++];
        let index = 0;
        for await (const info of memory.list(prefix)) {
          if (index++ === failAt)
            throw new ObjectStoreError('transient', 'reset', { op: 'list', key: prefix });
          yield info;
        }
      },
    };
    const { waits, sleep } = fakeSleep();
    const keys = (await collect(withRetry(flaky, { sleep, random: () => 0 }).list('k/'))).map((i) => i.key);
    expect(keys).toEqual(Array.from({ length: 10 }, (_, index) => `k/${index}`));
    expect(listings).toBe(3);
    expect(waits).toEqual([0, 0]);
  });
});

function wrap(store: ObjectStore): ObjectStore {
  return {
    location: store.location,
    head: (key) => store.head(key),
    get: (key, range) => store.get(key, range),
    put: (key, body, options) => store.put(key, body, options),
    delete: (key) => store.delete(key),
    deleteMany: (keys) => store.deleteMany(keys),
    list: (prefix) => store.list(prefix),
  };
}
