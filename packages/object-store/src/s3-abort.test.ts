// An aborted S3 call gives its request up: the socket is destroyed (the server side sees the connection
// close), not merely raced and left to the request timeout. Shown against s3rver behind a proxy that stalls
// on demand, as a dead server or a black-holed network does.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isObjectStoreError } from './errors.js';
import { S3ObjectStore } from './s3.js';
import { bytes, collect } from './testing/index.js';
import { startS3rver, type TestS3Server } from './testing/s3-server.js';
import { type StallingProxy, type StallOptions, startStallingProxy } from './testing/stalling-proxy.js';
import { type StoreEvent, withMetrics } from './wrappers/metrics.js';
import { createDefaultStoreStack } from './wrappers/stack.js';

/** How soon after the abort the call must have rejected and its socket closed. */
const PROMPTLY_MS = 1_000;

let server: TestS3Server;
let proxy: StallingProxy;
let store: S3ObjectStore;
const stores: S3ObjectStore[] = [];
const present = bytes(4 << 20, 3);

function storeThroughProxy(options: { maxSockets?: number } = {}): S3ObjectStore {
  const opened = new S3ObjectStore({
    bucket: 'stowage',
    prefix: 'abort',
    endpoint: proxy.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    ...options,
  });
  stores.push(opened);
  return opened;
}

beforeAll(async () => {
  server = await startS3rver({ buckets: ['stowage'] });
  proxy = await startStallingProxy(server.endpoint);
  store = storeThroughProxy();
  await store.put('k/present', present);
  await store.put('k/other', bytes(10, 4));
});
afterEach(() => {
  proxy.resume();
});
afterAll(async () => {
  for (const opened of stores) opened.destroy();
  await proxy?.close();
  await server?.stop();
});

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

/**
 * Starts `run` with a signal, stalls it as `stall` says, aborts it once its connection stalled, and checks
 * that it rejects with `aborted` and that every stalled connection is closed, both within PROMPTLY_MS.
 */
async function expectAbortedAndClosed(
  run: (signal: AbortSignal) => Promise<unknown>,
  stall: StallOptions = {},
): Promise<void> {
  proxy.stall(stall);
  const controller = new AbortController();
  const settled = run(controller.signal).then(
    () => 'resolved',
    (error: unknown) => error,
  );
  await proxy.waitForStalled(1);
  const abortedAt = performance.now();
  controller.abort(new Error('job cancelled'));
  const error = await settled;
  expect(performance.now() - abortedAt).toBeLessThan(PROMPTLY_MS);
  expect(isObjectStoreError(error, 'aborted'), String(error)).toBe(true);
  const closed = await waitUntil(
    () => proxy.stalled.every((connection) => connection.clientClosedAt !== undefined),
    PROMPTLY_MS,
  );
  expect(closed, 'every stalled connection closed by the client').toBe(true);
}

describe('S3ObjectStore aborts its requests (s3rver behind a stalling proxy)', () => {
  const cases: Array<[string, (signal: AbortSignal) => Promise<unknown>, StallOptions?]> = [
    ['a small put', (signal) => store.put('k/small', bytes(1000, 1), { signal })],
    // Over 2 MiB the SDK sends `Expect: 100-continue` and waits for the server before the body.
    ['a 5 MiB put', (signal) => store.put('k/large', bytes(5 << 20, 2), { signal })],
    [
      'a put the server took but never answers',
      (signal) => store.put('k/unanswered', bytes(1000, 5), { signal }),
      { passRequests: true },
    ],
    ['a get', (signal) => store.get('k/present', undefined, { signal })],
    ['a ranged get', (signal) => store.get('k/present', { offset: 10, length: 100 }, { signal })],
    [
      'a get whose body stops coming',
      (signal) => store.get('k/present', undefined, { signal }),
      { passRequests: true, passResponseBytes: 64 << 10 },
    ],
    ['a head', (signal) => store.head('k/present', { signal })],
    ['a listing', (signal) => collect(store.list('k/', { signal }))],
    ['a delete', (signal) => store.delete('k/none', { signal })],
    ['a deleteMany', (signal) => store.deleteMany(['k/none', 'k/nothing'], { signal })],
  ];
  it.each(cases)('%s: rejects with aborted at once, and its socket is closed', async (_name, run, stall) => {
    await expectAbortedAndClosed(run, stall);
    // The store goes on working once the network does.
    proxy.resume();
    expect(await store.head('k/other')).toMatchObject({ size: 10 });
  });

  it('through the default stack: not retried, a queued call leaves the queue, no slot is lost', async () => {
    const events: StoreEvent[] = [];
    const retries: unknown[] = [];
    const bare = storeThroughProxy();
    await bare.head('k/other'); // the SDK loaded and a socket made before the stall
    const stack = createDefaultStoreStack(bare, {
      concurrency: 1,
      retry: { attempts: 5, baseDelayMs: 1, onRetry: (event) => retries.push(event) },
      onEvent: (event) => events.push(event),
    });
    proxy.stall();
    const first = new AbortController();
    const second = new AbortController();
    const running = stack.get('k/present', undefined, { signal: first.signal }).catch((e: unknown) => e);
    const queued = stack.get('k/other', undefined, { signal: second.signal }).catch((e: unknown) => e);
    await proxy.waitForStalled(1);
    second.abort();
    expect(await queued).toMatchObject({ kind: 'aborted', key: 'k/other' });
    expect(proxy.stalled).toHaveLength(1); // the queued call never reached the network
    const abortedAt = performance.now();
    first.abort();
    expect(await running).toMatchObject({ kind: 'aborted', key: 'k/present' });
    expect(performance.now() - abortedAt).toBeLessThan(PROMPTLY_MS);
    expect(await waitUntil(() => proxy.stalled[0]!.clientClosedAt !== undefined, PROMPTLY_MS)).toBe(true);
    expect(retries).toEqual([]);
    expect(events.map((event) => [event.op, event.key, event.outcome])).toEqual([
      ['get', 'k/other', 'aborted'],
      ['get', 'k/present', 'aborted'],
    ]);
    proxy.resume();
    // The one slot came back.
    expect(await stack.get('k/other')).toEqual(bytes(10, 4));
  });

  it('a request waiting for a pooled socket rejects at once, and the pool is whole afterwards', async () => {
    const pooled = storeThroughProxy({ maxSockets: 1 });
    await pooled.head('k/other');
    proxy.stall();
    const first = new AbortController();
    const second = new AbortController();
    const onTheWire = pooled.get('k/present', undefined, { signal: first.signal }).catch((e: unknown) => e);
    const waiting = pooled.get('k/other', undefined, { signal: second.signal }).catch((e: unknown) => e);
    await proxy.waitForStalled(1);
    let abortedAt = performance.now();
    second.abort();
    expect(await waiting).toMatchObject({ kind: 'aborted' });
    expect(performance.now() - abortedAt).toBeLessThan(PROMPTLY_MS);
    abortedAt = performance.now();
    first.abort();
    expect(await onTheWire).toMatchObject({ kind: 'aborted' });
    expect(performance.now() - abortedAt).toBeLessThan(PROMPTLY_MS);
    expect(proxy.stalled).toHaveLength(1); // the waiting one never got a socket
    expect(await waitUntil(() => proxy.stalled[0]!.clientClosedAt !== undefined, PROMPTLY_MS)).toBe(true);
    proxy.resume();
    // Neither aborted request holds the one socket: the next ones get through, one after the other.
    expect(await pooled.get('k/other')).toEqual(bytes(10, 4));
    expect(await pooled.head('k/present')).toMatchObject({ size: present.length });
  });

  // The control: what the checks above tell apart. A request raced against the signal instead of given it
  // (as the engine did before stores took signals) is abandoned, but its socket stays open, still waiting.
  it('(control) a request merely raced against the signal leaves its socket open', async () => {
    const raced = storeThroughProxy();
    await raced.head('k/other');
    proxy.stall();
    const controller = new AbortController();
    const abandoned = raced.get('k/present');
    abandoned.catch(() => {});
    const race = Promise.race([
      abandoned,
      new Promise((_, reject) =>
        controller.signal.addEventListener('abort', () => reject(new Error('raced'))),
      ),
    ]).catch((e: unknown) => e);
    await proxy.waitForStalled(1);
    controller.abort();
    expect(await race).toMatchObject({ message: 'raced' });
    expect(await waitUntil(() => proxy.stalled[0]!.clientClosedAt !== undefined, PROMPTLY_MS)).toBe(false);
    raced.destroy();
  });

  it('a signal already aborted sends nothing', async () => {
    const metered: StoreEvent[] = [];
    const quiet = withMetrics(store, (event) => metered.push(event));
    proxy.stall();
    await expect(quiet.put('k/never', bytes(10, 1), { signal: AbortSignal.abort() })).rejects.toMatchObject({
      kind: 'aborted',
    });
    expect(proxy.stalled).toEqual([]);
    expect(metered.map((event) => event.outcome)).toEqual(['aborted']);
    proxy.resume();
    expect(await store.head('k/never')).toBeUndefined();
  });
});
