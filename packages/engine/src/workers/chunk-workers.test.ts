import { randomBytes } from 'node:crypto';
import { chunkId, deriveTargetKeys } from '@stowage/format';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ChunkWorkers } from './chunk-workers.js';
import { WorkerPool } from './pool.js';

const targetKey = new Uint8Array(randomBytes(32));
const keys = deriveTargetKeys(targetKey);
const workers = new ChunkWorkers(targetKey, { threads: 2 });
afterAll(() => workers.close());

const BLOCK = 256 << 10;

/** Three blocks of random bytes in one shared buffer, with a zero stretch in the second. */
function blocks(): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(3 * BLOCK));
  view.set(randomBytes(3 * BLOCK));
  view.fill(0, BLOCK + 1000, BLOCK + 50_000);
  return view;
}

/** Slices of one block, [offset, length] in the whole buffer, covering it from `from` on. */
function slicesOf(block: number, lengths: number[], from = 0) {
  const out: Array<{ offset: number; length: number }> = [];
  let at = block * BLOCK + from;
  for (const length of lengths) {
    out.push({ offset: at, length });
    at += length;
  }
  return out;
}

/** What the main thread computes for a slice: its keyed id, or none when it is all zeros. */
function expected(view: Uint8Array, slice: { offset: number; length: number }): string {
  const data = view.subarray(slice.offset, slice.offset + slice.length);
  return data.every((b) => b === 0) ? 'hole' : Buffer.from(chunkId(keys, data)).toString('hex');
}

async function answers(promises: Array<Promise<{ id?: Uint8Array }>>): Promise<string[]> {
  return (await Promise.all(promises)).map((r) => (r.id ? Buffer.from(r.id).toString('hex') : 'hole'));
}

describe('ChunkWorkers.identifyAll', () => {
  it('identifies the chunks of several blocks of an attached buffer as the main thread does', async () => {
    const view = blocks();
    await workers.attach(view.buffer as SharedArrayBuffer);
    expect(workers.attachedBuffers).toBe(1);
    try {
      // Odd offsets and lengths, one chunk alone, many small ones, a zero chunk (a hole) among them.
      const perBlock = [
        slicesOf(0, [1, 4095, 100_000, 3, 60_000], 7),
        slicesOf(1, [1000, 49_000, 80_000]),
        slicesOf(2, [BLOCK]),
      ];
      const pending = perBlock.map((slices) => workers.identifyAll(view.buffer as SharedArrayBuffer, slices));
      for (const [i, slices] of perBlock.entries()) {
        expect(await answers(pending[i]!), `block ${i}`).toEqual(slices.map((s) => expected(view, s)));
      }
      expect(await answers(pending[1]!)).toContain('hole');
    } finally {
      await workers.detach(view.buffer as SharedArrayBuffer);
    }
    expect(workers.attachedBuffers).toBe(0);
  });

  it('sends a buffer that is not attached (or no longer is) with each request, to the same answers', async () => {
    const view = blocks();
    const slices = slicesOf(1, [500, 70_000, 2, 90_000]);
    const want = slices.map((s) => expected(view, s));
    expect(await answers(workers.identifyAll(view.buffer as SharedArrayBuffer, slices))).toEqual(want);
    await workers.attach(view.buffer as SharedArrayBuffer);
    await workers.attach(view.buffer as SharedArrayBuffer); // attaching twice is one attachment
    expect(workers.attachedBuffers).toBe(1);
    expect(await answers(workers.identifyAll(view.buffer as SharedArrayBuffer, slices))).toEqual(want);
    await workers.detach(view.buffer as SharedArrayBuffer);
    expect(await answers(workers.identifyAll(view.buffer as SharedArrayBuffer, slices))).toEqual(want);
  });

  it('splits a block into one request per thread of about equal bytes', async () => {
    const view = blocks();
    const run = vi.spyOn(WorkerPool.prototype, 'run');
    try {
      const even = slicesOf(0, [40_000, 40_000, 40_000, 40_000, 40_000, 40_000]);
      const results = workers.identifyAll(view.buffer as SharedArrayBuffer, even);
      expect(await answers(results)).toEqual(even.map((s) => expected(view, s)));
      expect(run.mock.calls.map(([, payload]) => (payload.slices as number[]).length / 2)).toEqual([3, 3]);
      run.mockClear();
      // One large chunk is a run of its own; the small ones after it make the other.
      const uneven = slicesOf(1, [150_000, 10_000, 10_000]);
      expect(await answers(workers.identifyAll(view.buffer as SharedArrayBuffer, uneven))).toEqual(
        uneven.map((s) => expected(view, s)),
      );
      expect(run.mock.calls.map(([, payload]) => (payload.slices as number[]).length / 2)).toEqual([1, 2]);
    } finally {
      run.mockRestore();
    }
  });

  it('rejects every slice of a run whose request fails; other runs and later requests still answer', async () => {
    const view = blocks();
    const buffer = view.buffer as SharedArrayBuffer;
    await workers.attach(buffer);
    try {
      // Two runs of one slice each (each about half the bytes); the second lies past the buffer's end.
      const slices = [
        { offset: 0, length: 100_000 },
        { offset: 3 * BLOCK - 50_000, length: 100_000 },
      ];
      const [good, bad] = workers.identifyAll(buffer, slices);
      expect((await good!).id).toEqual(chunkId(keys, view.subarray(0, 100_000)));
      await expect(bad!).rejects.toMatchObject({ name: 'RangeError' });
      expect(await answers(workers.identifyAll(buffer, slicesOf(2, [1000])))).toEqual([
        expected(view, slicesOf(2, [1000])[0]!),
      ]);
    } finally {
      await workers.detach(buffer);
    }
  });

  it('fails with the worker error when the key is not there yet', async () => {
    const keyless = new ChunkWorkers(undefined, { threads: 1 });
    try {
      const view = blocks();
      const [only] = keyless.identifyAll(view.buffer as SharedArrayBuffer, slicesOf(0, [1000]));
      await expect(only!).rejects.toThrow(/no key yet/);
    } finally {
      await keyless.close();
    }
  });
});
