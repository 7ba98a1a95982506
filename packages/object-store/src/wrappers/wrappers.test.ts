import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../memory.js';
import type { ObjectStore } from '../object-store.js';
import { createSeededRandom } from '../random.js';
import { collect, describeObjectStoreConformance } from '../testing/index.js';
import { withConcurrencyLimit } from './concurrency-limit.js';
import { type InjectedFault, withFaults } from './faults.js';
import { type StoreEvent, withMetrics } from './metrics.js';
import { withRetry } from './retry.js';
import { createDefaultStoreStack } from './stack.js';

// The whole stack over a store that fails a third of its requests still keeps the contract.
describeObjectStoreConformance('memory behind faults (rate 0.3, before the operation) and retry', () => ({
  store: createDefaultStoreStack(
    withFaults(new MemoryObjectStore(), {
      rate: 0.3,
      random: createSeededRandom(42),
      kinds: ['error-before', 'reset-before'],
    }),
    { retry: { attempts: 30, sleep: async () => {} }, onEvent: () => {} },
  ),
}));

describe('withFaults', () => {
  async function run(seed: number) {
    const faults: InjectedFault[] = [];
    const memory = new MemoryObjectStore();
    const store = withFaults(memory, {
      rate: 0.4,
      random: createSeededRandom(seed),
      onFault: (f) => faults.push(f),
    });
    const outcomes: string[] = [];
    for (let index = 0; index < 50; index++) {
      const key = `k/${index}`;
      await store.put(key, new Uint8Array([index])).then(
        () => outcomes.push('ok'),
        (error: { kind: string }) => outcomes.push(error.kind),
      );
    }
    const landed = (await collect(memory.list(''))).length;
    return { faults, outcomes, landed };
  }

  it('is deterministic for a seed', async () => {
    const first = await run(7);
    expect(await run(7)).toEqual(first);
    expect(await run(8)).not.toEqual(first);
    expect(first.faults.length).toBeGreaterThan(10);
    expect(first.outcomes.filter((outcome) => outcome === 'transient').length).toBe(first.faults.length);
  });

  it('lets "after" faults land the write while reporting failure, and "before" faults not', async () => {
    const { faults, landed } = await run(7);
    const before = faults.filter((fault) => fault.fault.endsWith('-before')).length;
    const after = faults.filter((fault) => fault.fault.endsWith('-after')).length;
    expect(before).toBeGreaterThan(0);
    expect(after).toBeGreaterThan(0);
    expect(landed).toBe(50 - before);
  });

  it('a PUT that lands but reports a reset is healed by retry', async () => {
    const memory = new MemoryObjectStore();
    const store = withRetry(
      withFaults(memory, { rate: 0.5, random: createSeededRandom(3), kinds: ['reset-after'] }),
      { attempts: 20, sleep: async () => {} },
    );
    for (let index = 0; index < 20; index++) await store.put(`k/${index}`, new Uint8Array([index]));
    for (let index = 0; index < 20; index++)
      expect(await memory.get(`k/${index}`)).toEqual(new Uint8Array([index]));
  });

  it('passes signals through, and draws no fault for a call already aborted', async () => {
    const memory = new MemoryObjectStore();
    await memory.put('k', new Uint8Array(1));
    const faults: InjectedFault[] = [];
    const store = withFaults(memory, {
      rate: 1,
      random: createSeededRandom(5),
      onFault: (fault) => faults.push(fault),
    });
    const signal = AbortSignal.abort();
    await expect(store.get('k', undefined, { signal })).rejects.toMatchObject({ kind: 'aborted' });
    await expect(store.put('k', new Uint8Array(2), { signal })).rejects.toMatchObject({ kind: 'aborted' });
    await expect(collect(store.list('', { signal }))).rejects.toMatchObject({ kind: 'aborted' });
    expect(faults).toEqual([]);
    expect(await memory.get('k')).toEqual(new Uint8Array(1));
  });

  it('fails listings part-way and only on the chosen ops', async () => {
    const memory = new MemoryObjectStore();
    for (let index = 0; index < 100; index++) await memory.put(`k/${index}`, new Uint8Array(1));
    const store = withFaults(memory, {
      rate: 0.3,
      random: createSeededRandom(1),
      ops: ['list'],
      listPageSize: 10,
    });
    await expect(collect(store.list('k/'))).rejects.toMatchObject({ kind: 'transient', op: 'list' });
    await store.put('other', new Uint8Array(1));
    expect(() => withFaults(memory, { rate: 2, random: Math.random })).toThrow(RangeError);
  });
});

describe('withConcurrencyLimit', () => {
  it('never lets more than n operations through at once, and serves them in order', async () => {
    let active = 0;
    let peak = 0;
    const order: string[] = [];
    const memory = new MemoryObjectStore();
    const slow: ObjectStore = {
      location: memory.location,
      head: async (key) => {
        active++;
        peak = Math.max(peak, active);
        order.push(key);
        await new Promise((resolve) => setTimeout(resolve, 2));
        active--;
        return undefined;
      },
      get: (key) => memory.get(key),
      put: (key, body) => memory.put(key, body),
      delete: (key) => memory.delete(key),
      deleteMany: (keys) => memory.deleteMany(keys),
      list: (prefix) => memory.list(prefix),
    };
    const store = withConcurrencyLimit(slow, 3);
    const keys = Array.from({ length: 20 }, (_, index) => `k${index}`);
    await Promise.all(keys.map((key) => store.head(key)));
    expect(peak).toBe(3);
    expect(order).toEqual(keys);
    expect(() => withConcurrencyLimit(memory, 0)).toThrow(RangeError);
  });

  it('drops a waiter whose signal aborts, in order for the others, and never loses a slot', async () => {
    const memory = new MemoryObjectStore();
    const gates: Array<() => void> = [];
    const started: string[] = [];
    const gated: ObjectStore = {
      location: memory.location,
      head: async (key, options) => {
        started.push(key);
        await new Promise<void>((resolve) => gates.push(resolve));
        return memory.head(key, options);
      },
      get: (key, range, options) => memory.get(key, range, options),
      put: (key, body, options) => memory.put(key, body, options),
      delete: (key, options) => memory.delete(key, options),
      deleteMany: (keys, options) => memory.deleteMany(keys, options),
      list: (prefix, options) => memory.list(prefix, options),
    };
    const store = withConcurrencyLimit(gated, 1);
    const controllers = [0, 1, 2, 3].map(() => new AbortController());
    const calls = ['a', 'b', 'c', 'd'].map((key, index) =>
      store.head(key, { signal: controllers[index]!.signal }).then(
        () => 'done',
        (error: { kind: string }) => error.kind,
      ),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(['a']);
    controllers[1]!.abort(); // queued: leaves the queue at once
    controllers[2]!.abort();
    expect(await calls[1]).toBe('aborted');
    expect(await calls[2]).toBe('aborted');
    gates.shift()!();
    expect(await calls[0]).toBe('done');
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(['a', 'd']); // the slot went to the next live waiter
    gates.shift()!();
    expect(await calls[3]).toBe('done');
    // An already aborted call does not queue at all.
    await expect(store.head('e', { signal: AbortSignal.abort() })).rejects.toMatchObject({ kind: 'aborted' });
    // The one slot is free: a call goes straight through.
    const last = store.head('f');
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(['a', 'd', 'f']);
    gates.shift()!();
    await last;
  });

  it('releases its slot when a listing is abandoned', async () => {
    const memory = new MemoryObjectStore();
    for (let index = 0; index < 5; index++) await memory.put(`k/${index}`, new Uint8Array(1));
    const store = withConcurrencyLimit(memory, 1);
    for await (const _ of store.list('k/')) break;
    expect((await collect(store.list('k/'))).length).toBe(5);
    expect(await store.head('k/0')).toBeDefined();
  });
});

describe('withMetrics', () => {
  it('reports op, key, bytes, duration and error kind', async () => {
    const events: StoreEvent[] = [];
    let clock = 0;
    const store = withMetrics(new MemoryObjectStore(), (event) => events.push(event), {
      now: () => (clock += 5),
    });
    await store.put('a', new Uint8Array(10));
    await store.get('a', { offset: 2, length: 4 });
    await store.get('missing').catch(() => {});
    await collect(store.list(''));
    await store.deleteMany(['a', 'b']);
    expect(events).toEqual([
      { op: 'put', key: 'a', bytes: 10, count: 1, durationMs: 5, outcome: 'ok' },
      { op: 'get', key: 'a', bytes: 4, count: 1, durationMs: 5, outcome: 'ok' },
      {
        op: 'get',
        key: 'missing',
        bytes: 0,
        count: 1,
        durationMs: 5,
        outcome: 'error',
        errorKind: 'not-found',
      },
      { op: 'list', key: '', bytes: 0, count: 1, durationMs: 5, outcome: 'ok' },
      { op: 'deleteMany', key: 'a', bytes: 0, count: 2, durationMs: 5, outcome: 'ok' },
    ]);
  });

  it('reports an aborted call as aborted, not as an error, with no bytes', async () => {
    const events: StoreEvent[] = [];
    const store = withMetrics(new MemoryObjectStore(), (event) => events.push(event), { now: () => 0 });
    const signal = AbortSignal.abort();
    await store.put('a', new Uint8Array(10), { signal }).catch(() => {});
    await collect(store.list('', { signal })).catch(() => {});
    expect(events).toEqual([
      { op: 'put', key: 'a', bytes: 0, count: 1, durationMs: 0, outcome: 'aborted' },
      { op: 'list', key: '', bytes: 0, count: 0, durationMs: 0, outcome: 'aborted' },
    ]);
  });

  it('ignores a throwing listener', async () => {
    const store = withMetrics(new MemoryObjectStore(), () => {
      throw new Error('listener bug');
    });
    await store.put('a', new Uint8Array(1));
    expect(await store.get('a')).toEqual(new Uint8Array(1));
  });
});

describe('flush through the wrappers', () => {
  it('is forwarded by every wrapper where the store has one, and absent where it has none', async () => {
    let flushes = 0;
    const memory = new MemoryObjectStore();
    const flushing: ObjectStore = {
      location: memory.location,
      head: (key) => memory.head(key),
      get: (key, range) => memory.get(key, range),
      put: (key, body, options) => memory.put(key, body, options),
      delete: (key) => memory.delete(key),
      deleteMany: (keys) => memory.deleteMany(keys),
      list: (prefix) => memory.list(prefix),
      flush: async () => {
        flushes++;
      },
    };
    const wrapped = withFaults(createDefaultStoreStack(flushing, { onEvent: () => {} }), {
      rate: 0,
      random: createSeededRandom(1),
    });
    await wrapped.flush?.();
    expect(flushes).toBe(1);
    expect(createDefaultStoreStack(memory, { onEvent: () => {} }).flush).toBeUndefined();
  });
});
