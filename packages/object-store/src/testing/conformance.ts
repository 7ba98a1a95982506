import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isObjectStoreError, type ObjectStoreErrorKind } from '../errors.js';
import { compareKeys, type ObjectInfo, type ObjectStore } from '../object-store.js';

export interface ConformanceSubject {
  /** An empty store, used by one test only. */
  readonly store: ObjectStore;
  /** Called after the test, pass or fail. */
  readonly dispose?: () => Promise<void> | void;
}

export type ConformanceFactory = () => Promise<ConformanceSubject> | ConformanceSubject;

export interface ConformanceOptions {
  /**
   * Set when the backend is known to ignore `ifNoneMatch`; the reason is printed in the skipped test's
   * name. Backends that honour it must leave this unset: the suite then checks it.
   */
  readonly ifNoneMatchUnsupported?: string;
  /**
   * Set when the backend is known to list keys in some other order than UTF-8 byte order; the reason is
   * printed in the skipped test's name, and the other listing tests then compare sorted results.
   */
  readonly listOrderUnfaithful?: string;
  /** Why concurrent puts to one key may leave a mix of their bodies (a server writing objects in place). */
  readonly samekeyPutsInterleave?: string;
  /**
   * Why a put aborted mid-body may leave part of its body under the key (a server writing objects in place);
   * the abort tests then check only that the calls settle promptly, as `aborted` or done.
   */
  readonly abortedPutsLeaveParts?: string;
  /** How many keys the pagination test writes; must stay past 2 × 1,000 to cross two page boundaries. */
  readonly manyKeys?: number;
}

/**
 * The one test body every ObjectStore runs: memory, filesystem, S3 against an in-process server and
 * against Ceph RGW. Everything the `ObjectStore` doc comment promises is checked here — an abort's prompt
 * end too; that the S3 store really gives its request up (the socket closes) is shown against a stalling
 * proxy in `s3-abort.test.ts`, which a generic store cannot be put behind.
 */
export function describeObjectStoreConformance(
  name: string,
  factory: ConformanceFactory,
  options: ConformanceOptions = {},
): void {
  const ordered = (keys: string[]): string[] =>
    options.listOrderUnfaithful === undefined ? keys : [...keys].sort(compareKeys);
  const orderedInfos = (infos: ObjectInfo[]): ObjectInfo[] =>
    options.listOrderUnfaithful === undefined ? infos : [...infos].sort((a, b) => compareKeys(a.key, b.key));

  describe(`ObjectStore conformance: ${name}`, () => {
    let subject: ConformanceSubject | undefined;
    const store = (): ObjectStore => {
      if (subject === undefined) throw new Error('conformance store not created');
      return subject.store;
    };

    beforeEach(async () => {
      subject = await factory();
    });
    afterEach(async () => {
      await subject?.dispose?.();
      subject = undefined;
    });

    it('puts, heads, gets and deletes an object', async () => {
      const key = `chunks/ab/${'ab'.padEnd(64, '0')}`;
      const body = bytes(1000, 1);
      const before = Date.now();
      await store().put(key, body);
      const info = await store().head(key);
      expect(info?.key).toBe(key);
      expect(info?.size).toBe(1000);
      expect(info?.lastModified).toBeInstanceOf(Date);
      // Servers keep whole seconds and clocks drift a little: only check it is roughly now.
      expect(Math.abs(info!.lastModified.getTime() - before)).toBeLessThan(10 * 60_000);
      expect(await store().get(key)).toEqual(body);
      await store().delete(key);
      expect(await store().head(key)).toBeUndefined();
      await expectKind(store().get(key), 'not-found');
    });

    it('reports missing objects: head undefined, get not-found, deletes succeed', async () => {
      expect(await store().head('missing/key')).toBeUndefined();
      await expectKind(store().get('missing/key'), 'not-found');
      await expectKind(store().get('missing/key', { offset: 0, length: 1 }), 'not-found');
      await store().delete('missing/key');
      await store().deleteMany(['missing/a', 'missing/b']);
      await store().deleteMany([]);
      expect(await collect(store().list('missing/'))).toEqual([]);
    });

    it('overwrites an object whole', async () => {
      await store().put('config', bytes(5000, 2));
      await store().put('config', bytes(10, 3));
      expect(await store().get('config')).toEqual(bytes(10, 3));
      expect((await store().head('config'))?.size).toBe(10);
    });

    it('stores an empty body', async () => {
      await store().put('empty', new Uint8Array(0));
      expect((await store().head('empty'))?.size).toBe(0);
      expect(await store().get('empty')).toEqual(new Uint8Array(0));
      expect(await store().get('empty', { offset: 0, length: 0 })).toEqual(new Uint8Array(0));
      expect((await collect(store().list('empty'))).map(sizeOf)).toEqual([['empty', 0]]);
    });

    it('stores an 8 MiB body and reads ranges of it, at the end too', async () => {
      const size = 8 * 1024 * 1024;
      const body = bytes(size, 4);
      await store().put('big/object', body);
      expect((await store().head('big/object'))?.size).toBe(size);
      const whole = await store().get('big/object');
      expect(whole.length).toBe(size);
      expect(Buffer.compare(whole, body)).toBe(0);
      const tail = await store().get('big/object', { offset: size - 4096, length: 4096 });
      expect(Buffer.compare(tail, body.subarray(size - 4096))).toBe(0);
    });

    it('gets byte ranges: start, middle, end, empty, and refuses ranges past the end', async () => {
      const body = bytes(1000, 5);
      await store().put('ranged', body);
      expect(await store().get('ranged', { offset: 0, length: 1 })).toEqual(body.slice(0, 1));
      expect(await store().get('ranged', { offset: 100, length: 250 })).toEqual(body.slice(100, 350));
      expect(await store().get('ranged', { offset: 990, length: 10 })).toEqual(body.slice(990));
      expect(await store().get('ranged', { offset: 999, length: 1 })).toEqual(body.slice(999));
      expect(await store().get('ranged', { offset: 0, length: 1000 })).toEqual(body);
      expect(await store().get('ranged', { offset: 1000, length: 0 })).toEqual(new Uint8Array(0));
      await expectKind(store().get('ranged', { offset: 990, length: 11 }), 'invalid-range');
      await expectKind(store().get('ranged', { offset: 1000, length: 1 }), 'invalid-range');
      await expectKind(store().get('ranged', { offset: 5000, length: 10 }), 'invalid-range');
      await expectKind(store().get('ranged', { offset: -1, length: 10 }), 'invalid-range');
      await expectKind(store().get('ranged', { offset: 0.5, length: 10 }), 'invalid-range');
    });

    const listingKeys = ['a/1', 'a/2', 'a-b', 'ab', 'b/x/y', 'a/sub/deeper/k', 'é/1', 'z'];

    it('lists by plain string prefix, with sizes', async () => {
      await Promise.all(listingKeys.map((key, index) => store().put(key, bytes(index + 1, index))));
      const sizes = new Map(listingKeys.map((key, index) => [key, index + 1]));
      const expected = (prefix: string) =>
        listingKeys
          .filter((key) => key.startsWith(prefix))
          .sort(compareKeys)
          .map((key) => [key, sizes.get(key)]);
      for (const prefix of ['', 'a', 'a/', 'a/s', 'b/', 'b/x/', 'é', 'nothing']) {
        const listed = orderedInfos(await collect(store().list(prefix))).map(sizeOf);
        expect(listed, `prefix ${prefix}`).toEqual(expected(prefix));
      }
    });

    it.skipIf(options.listOrderUnfaithful !== undefined)(
      `lists keys in UTF-8 byte order${skipReason(options.listOrderUnfaithful)}`,
      async () => {
        await Promise.all(listingKeys.map((key) => store().put(key, bytes(1, 1))));
        // Byte order puts '-' (0x2d) before '/' (0x2f) and 'é' (0xc3 0xa9) after 'z'.
        expect((await collect(store().list(''))).map((info) => info.key)).toEqual([
          'a-b',
          'a/1',
          'a/2',
          'a/sub/deeper/k',
          'ab',
          'b/x/y',
          'z',
          'é/1',
        ]);
        expect((await collect(store().list('a'))).map((info) => info.key)).toEqual([
          'a-b',
          'a/1',
          'a/2',
          'a/sub/deeper/k',
          'ab',
        ]);
      },
    );

    it('handles keys with nested slashes and characters that need escaping', async () => {
      const keys = ['x/y/z/w/deep', 'manifests/vol 1/b+c=d', 'odd/%20~!$&()*,;:@', 'unicode/é/ü'];
      for (const [index, key] of keys.entries()) await store().put(key, bytes(10 + index, index));
      for (const [index, key] of keys.entries()) {
        expect(await store().get(key)).toEqual(bytes(10 + index, index));
        expect((await store().head(key))?.size).toBe(10 + index);
      }
      expect((await collect(store().list('x/y/'))).map((info) => info.key)).toEqual(['x/y/z/w/deep']);
      expect((await collect(store().list('manifests/vol 1/'))).map((info) => info.key)).toEqual([
        'manifests/vol 1/b+c=d',
      ]);
      await store().deleteMany(keys);
      expect(await collect(store().list(''))).toEqual([]);
    });

    it(`lists past page boundaries and deletes more than 1,000 keys at once`, async () => {
      const count = options.manyKeys ?? 2100;
      const keys = Array.from({ length: count }, (_, index) => `many/${index.toString(36).padStart(4, '0')}`);
      const body = new Uint8Array([7]);
      await runLimited(keys, 32, (key) => store().put(key, body));
      await store().put('manz', body); // just past the prefix
      await store().put('man', body); // just before it

      const listed = await collect(store().list('many/'));
      expect(listed.length).toBe(count);
      expect(ordered(listed.map((info) => info.key))).toEqual([...keys].sort(compareKeys));
      expect(listed.every((info) => info.size === 1)).toBe(true);

      // An early return must stop the listing cleanly.
      let seen = 0;
      for await (const _ of store().list('many/')) if (++seen === 1500) break;
      expect(seen).toBe(1500);

      await store().deleteMany(keys);
      expect(await collect(store().list('many/'))).toEqual([]);
      expect(ordered((await collect(store().list('man'))).map((info) => info.key))).toEqual(['man', 'manz']);
    });

    it('takes concurrent puts to different keys', async () => {
      const keys = Array.from({ length: 40 }, (_, index) => `concurrent/${index}`);
      await Promise.all(keys.map((key, index) => store().put(key, bytes(1000 + index, index))));
      for (const [index, key] of keys.entries())
        expect(await store().get(key)).toEqual(bytes(1000 + index, index));
    });

    it.skipIf(options.samekeyPutsInterleave !== undefined)(
      `concurrent puts to one key leave exactly one of the bodies, whole${skipReason(options.samekeyPutsInterleave)}`,
      async () => {
        const bodies = Array.from({ length: 8 }, (_, index) => bytes(64 * 1024 + index, 100 + index));
        await Promise.all(bodies.map((body) => store().put('contended', body)));
        const final = await store().get('contended');
        expect(bodies.some((body) => Buffer.compare(body, final) === 0)).toBe(true);
        expect((await collect(store().list('contended'))).length).toBe(1);
      },
    );

    it('deleteMany removes exactly the keys it is given', async () => {
      await Promise.all(['d/1', 'd/2', 'd/3', 'd/4'].map((key) => store().put(key, bytes(3, 1))));
      await store().deleteMany(['d/1', 'd/3', 'd/missing', 'd/1']);
      expect(ordered((await collect(store().list('d/'))).map((info) => info.key))).toEqual(['d/2', 'd/4']);
    });

    it.skipIf(options.ifNoneMatchUnsupported !== undefined)(
      `put with ifNoneMatch refuses to overwrite${skipReason(options.ifNoneMatchUnsupported)}`,
      async () => {
        await store().put('once', bytes(10, 1), { ifNoneMatch: true });
        await expectKind(store().put('once', bytes(20, 2), { ifNoneMatch: true }), 'precondition-failed');
        expect(await store().get('once')).toEqual(bytes(10, 1));
        await store().put('once', bytes(30, 3));
        expect(await store().get('once')).toEqual(bytes(30, 3));
      },
    );

    it('put with ifNoneMatch writes a missing object', async () => {
      await store().put('fresh', bytes(10, 9), { ifNoneMatch: true });
      expect(await store().get('fresh')).toEqual(bytes(10, 9));
    });

    it('does nothing and rejects with aborted at once when the signal has already aborted', async () => {
      await store().put('kept', bytes(100, 1));
      const signal = AbortSignal.abort(new Error('job cancelled'));
      const started = performance.now();
      await expectKind(store().head('kept', { signal }), 'aborted', 'head');
      await expectKind(store().get('kept', undefined, { signal }), 'aborted', 'get');
      await expectKind(store().get('kept', { offset: 0, length: 10 }, { signal }), 'aborted', 'ranged get');
      await expectKind(store().get('kept', { offset: 0, length: 0 }, { signal }), 'aborted', 'empty range');
      await expectKind(store().put('kept', bytes(50, 2), { signal }), 'aborted', 'overwrite');
      await expectKind(store().put('fresh', bytes(50, 2), { signal, ifNoneMatch: true }), 'aborted', 'put');
      await expectKind(store().delete('kept', { signal }), 'aborted', 'delete');
      await expectKind(store().deleteMany(['kept', 'fresh'], { signal }), 'aborted', 'deleteMany');
      await expectKind(collect(store().list('', { signal })), 'aborted', 'list');
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(await store().get('kept')).toEqual(bytes(100, 1));
      expect(await store().head('fresh')).toBeUndefined();
      expect((await collect(store().list(''))).map((info) => info.key)).toEqual(['kept']);
    });

    it('rejects the next step of a listing with aborted once its signal aborts', async () => {
      await Promise.all(['l/1', 'l/2', 'l/3'].map((key) => store().put(key, bytes(1, 1))));
      const controller = new AbortController();
      const iterator = store().list('l/', { signal: controller.signal })[Symbol.asyncIterator]();
      expect((await iterator.next()).done).toBe(false);
      controller.abort();
      await expectKind(iterator.next(), 'aborted', 'next step');
    });

    it(`settles a put and a get aborted mid-flight promptly: aborted, or done whole${skipReason(options.abortedPutsLeaveParts, 'whole')}`, async () => {
      const size = 8 * 1024 * 1024;
      const old = bytes(size, 6);
      const next = bytes(size, 7);
      await store().put('mid/object', old);
      // Aborted at several moments: before the request leaves, while the body goes, while it is answered.
      for (const delayMs of [0, 1, 5, 20]) {
        const controller = new AbortController();
        const put = store().put('mid/object', next, { signal: controller.signal });
        const outcome = await abortAfter(controller, delayMs, put);
        expect(outcome.ms, `put aborted after ${delayMs} ms settles promptly`).toBeLessThan(1_000);
        if (outcome.error !== undefined) expect(kindOf(outcome.error)).toBe('aborted');
        // All or nothing: the old body or the new one, whole.
        const now = await store().get('mid/object');
        if (options.abortedPutsLeaveParts === undefined) {
          expect(Buffer.compare(now, old) === 0 || Buffer.compare(now, next) === 0).toBe(true);
        }
        expect((await collect(store().list('mid/'))).map((info) => info.key)).toEqual(['mid/object']);

        const getting = new AbortController();
        const get = store().get('mid/object', undefined, { signal: getting.signal });
        const read = await abortAfter(getting, delayMs, get);
        expect(read.ms, `get aborted after ${delayMs} ms settles promptly`).toBeLessThan(1_000);
        if (read.error !== undefined) expect(kindOf(read.error)).toBe('aborted');
        // Where an aborted put leaves parts, the server may still be writing them in place after the client
        // gave up (s3rver: seen in CI), so the object can change between the two gets: not compared there.
        else if (options.abortedPutsLeaveParts === undefined)
          expect(Buffer.compare(read.value!, now)).toBe(0);
      }
    });

    it('refuses invalid keys with invalid-key before doing anything', async () => {
      const bad = [
        '',
        '/abs',
        'trailing/',
        'double//slash',
        'a/../b',
        './a',
        'a/.',
        'back\\slash',
        'nul\u0000',
      ];
      for (const key of bad) {
        await expectKind(store().put(key, bytes(1, 1)), 'invalid-key', key);
        await expectKind(store().get(key), 'invalid-key', key);
        await expectKind(store().head(key), 'invalid-key', key);
        await expectKind(store().delete(key), 'invalid-key', key);
        await expectKind(store().deleteMany(['fine', key]), 'invalid-key', key);
      }
      await expectKind(collect(store().list('ctl\u0001')), 'invalid-key');
      expect(await collect(store().list(''))).toEqual([]);
    });
  });
}

/** Deterministic bytes: `seed` selects the pattern, so bodies of equal length still differ. */
export function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = (seed * 2654435761 + 1) >>> 0;
  for (let index = 0; index < length; index += 4) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[index] = state;
    out[index + 1] = state >>> 8;
    out[index + 2] = state >>> 16;
    out[index + 3] = state >>> 24;
  }
  return out;
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function expectKind(promise: Promise<unknown>, kind: ObjectStoreErrorKind, label = ''): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, `${label}: expected an ObjectStoreError of kind ${kind}`).toBeDefined();
  expect(isObjectStoreError(error) ? error.kind : error, label).toBe(kind);
}

/**
 * Aborts `controller` after `delayMs` and waits for `call` to settle: its value or error, and how long it took
 * to settle after the abort (0 when it settled before).
 */
async function abortAfter<T>(
  controller: AbortController,
  delayMs: number,
  call: Promise<T>,
): Promise<{ value?: T; error?: unknown; ms: number }> {
  let abortedAt: number | undefined;
  const timer = setTimeout(() => {
    abortedAt = performance.now();
    controller.abort();
  }, delayMs);
  const outcome: { value?: T; error?: unknown } = await call.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  clearTimeout(timer);
  return { ...outcome, ms: abortedAt === undefined ? 0 : performance.now() - abortedAt };
}

function kindOf(error: unknown): unknown {
  return isObjectStoreError(error) ? error.kind : error;
}

async function runLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function skipReason(reason: string | undefined, what?: string): string {
  if (reason === undefined) return '';
  return what === undefined ? ` (skipped: ${reason})` : ` (${what} not checked: ${reason})`;
}

function sizeOf(info: ObjectInfo): [string, number] {
  return [info.key, info.size];
}
