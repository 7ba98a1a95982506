import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  allocateScanBuffer,
  type ChunkerParams,
  DEFAULT_CHUNKER_PARAMS,
  type ScanBuffer,
  StreamingChunker,
} from './index.js';
import { scanKernel } from './kernel.js';
import { referenceChunks } from './reference.js';
import { prng, randomBytes } from './testdata/helpers.js';

const params: ChunkerParams = { minSize: 1024, avgSize: 4096, maxSize: 16384, level: 2, seed: 5n };

/** Cut lengths of `data` pushed in pieces of random size (from `seed`), then finished. */
function cutsOf(data: Uint8Array, seed: number, gearParams: ChunkerParams = params): number[] {
  const chunker = new StreamingChunker(gearParams);
  const rnd = prng(seed);
  const lengths: number[] = [];
  for (let off = 0; off < data.length; ) {
    const n = 1 + (rnd() % 70_000);
    lengths.push(...chunker.push(data.subarray(off, off + n)));
    off += n;
  }
  lengths.push(...chunker.finish());
  return lengths;
}

const held: ScanBuffer[] = [];
afterEach(() => {
  for (const b of held.splice(0)) b.release();
  vi.restoreAllMocks();
});

function allocate(size: number): ScanBuffer {
  const b = allocateScanBuffer(size);
  held.push(b);
  return b;
}

describe('scan buffers', () => {
  it('are scanned in place, with the same cuts as a copied push, at every offset mod 8', () => {
    const data = randomBytes(500_000, 41);
    data.fill(0, 120_000, 260_001); // a zero run: the kernel's fast path, in place too
    const want = referenceChunks(data, params).map((c) => c.length);
    const buffer = allocate(data.length + 8);
    const load = vi.spyOn(scanKernel(), 'load');
    for (let shift = 0; shift < 8; shift++) {
      const view = buffer.bytes.subarray(shift, shift + data.length);
      view.set(data);
      expect(cutsOf(view, shift), `offset ${shift}`).toEqual(want);
    }
    expect(load).not.toHaveBeenCalled();
    // A push from anywhere else is still copied into the window.
    expect(cutsOf(data.slice(), 99)).toEqual(want);
    expect(load).toHaveBeenCalled();
  });

  it('are SharedArrayBuffer views that a chunker with the default sizes cuts like the reference', () => {
    const data = randomBytes(9 << 20, 42);
    const buffer = allocate(data.length);
    buffer.bytes.set(data);
    expect(buffer.bytes.buffer).toBeInstanceOf(SharedArrayBuffer);
    const want = referenceChunks(data, DEFAULT_CHUNKER_PARAMS).map((c) => c.length);
    expect(cutsOf(buffer.bytes, 7, DEFAULT_CHUNKER_PARAMS)).toEqual(want);
  });

  it('are reused once released, so the memory grows only to the most held at once', () => {
    const first = allocateScanBuffer(3 << 20);
    const second = allocateScanBuffer(1 << 20);
    const peak = scanKernel().memoryBytes;
    const at = first.bytes.byteOffset;
    expect(second.bytes.byteOffset).toBeGreaterThanOrEqual(at + (3 << 20));
    expect(at % 4096).toBe(0);
    first.release();
    first.release(); // a second release is a no-op
    const again = allocateScanBuffer(2 << 20);
    expect(again.bytes.byteOffset).toBe(at);
    const more = allocateScanBuffer(1 << 20);
    expect(more.bytes.byteOffset).toBe(at + (2 << 20));
    expect(scanKernel().memoryBytes).toBe(peak);
    for (const b of [second, again, more]) b.release();
    // All released: the same space serves one buffer of the whole size.
    const whole = allocateScanBuffer(4 << 20);
    expect(whole.bytes.byteOffset).toBe(at);
    whole.release();
    expect(scanKernel().memoryBytes).toBe(peak);
  });

  it('refuses to release what it did not hand out', () => {
    expect(() => scanKernel().release(new Uint8Array(new SharedArrayBuffer(64)))).toThrow(/not a reserved/);
    expect(() => allocateScanBuffer(0)).toThrow(RangeError);
  });
});
