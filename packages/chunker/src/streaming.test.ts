import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  type Chunk,
  type ChunkerParams,
  chunkBuffer,
  DEFAULT_CHUNKER_PARAMS,
  type NormalizationLevel,
  StreamingChunker,
} from './index.js';
import { scanKernel, WINDOW_SIZE } from './kernel.js';
import { referenceChunks } from './reference.js';
import { feedInPieces, prng, randomBytes } from './testdata/helpers.js';

const MiB = 1024 * 1024;

/** Runs a whole stream through a StreamingChunker in pieces sized by `sizeOf`, as chunks with offsets. */
function streamChunks(data: Uint8Array, params: ChunkerParams, sizeOf: () => number): Chunk[] {
  const chunker = new StreamingChunker(params);
  const cuts = feedInPieces(data, sizeOf, (piece) => chunker.pushCuts(piece));
  cuts.push(...chunker.finishCuts());
  let offset = 0;
  return cuts.map(({ length, hash }) => {
    const c = { offset, length, hash };
    offset += length;
    return c;
  });
}

/** Data with long runs that never cut (zeros, a repeated short pattern) between random stretches. */
function lowEntropyBytes(length: number, seed: number): Uint8Array {
  const out = randomBytes(length, seed);
  const rnd = prng(seed ^ 0xabcdef);
  let off = 0;
  while (off < length) {
    const run = rnd() % 20000;
    const kind = rnd() % 3;
    const end = Math.min(length, off + run);
    if (kind === 0) out.fill(0, off, end);
    else if (kind === 1) for (let i = off; i < end; i++) out[i] = i % 7;
    off = end + (rnd() % 5000);
  }
  return out;
}

interface Case {
  sizes: [number, number, number];
  bytes: number;
}

// Small and odd sizes make many chunks and exercise every boundary rule (odd min/avg/max, min = avg = max).
const cases: Case[] = [
  { sizes: [64, 256, 1024], bytes: 300_000 },
  { sizes: [65, 257, 1025], bytes: 300_000 },
  { sizes: [101, 300, 1031], bytes: 300_000 },
  { sizes: [64, 1024, 1024], bytes: 300_000 },
  { sizes: [1024, 1024, 1024], bytes: 100_000 },
  { sizes: [1025, 1025, 1025], bytes: 100_000 },
  { sizes: [999, 5000, 12345], bytes: 600_000 },
  { sizes: [4095, 16383, 65535], bytes: 2 * MiB },
  { sizes: [8192, 16384, 32768], bytes: 2 * MiB },
];
const levels: NormalizationLevel[] = [0, 1, 2, 3];
const seeds = [0n, 666n, (1n << 64n) - 1n, 0x9e3779b97f4a7c15n];

describe('StreamingChunker and chunkBuffer agree with the reference implementation', () => {
  let caseNo = 0;
  for (const { sizes, bytes } of cases) {
    const [minSize, avgSize, maxSize] = sizes;
    it(`${minSize}/${avgSize}/${maxSize}, every level and seed, random and low-entropy data`, () => {
      for (const level of levels) {
        for (const seed of seeds) {
          caseNo++;
          const params: ChunkerParams = { minSize, avgSize, maxSize, level, seed };
          for (const data of [randomBytes(bytes, caseNo), lowEntropyBytes(bytes, caseNo)]) {
            const label = `level ${level} seed ${seed} data #${caseNo}`;
            const want = referenceChunks(data, params);
            expect(chunkBuffer(data, params), label).toEqual(want);
            const rnd = prng(caseNo);
            expect(
              streamChunks(data, params, () => rnd() % (3 * maxSize)),
              `${label} random pushes`,
            ).toEqual(want);
          }
        }
      }
    });
  }

  it('every stream length around minSize, avgSize and maxSize (odd tails, tails not above minSize)', () => {
    for (const level of levels) {
      const params: ChunkerParams = { minSize: 65, avgSize: 256, maxSize: 1025, level, seed: 0n };
      const data = randomBytes(2200, level + 100);
      for (let n = 0; n <= data.length; n++) {
        const slice = data.subarray(0, n);
        const want = referenceChunks(slice, params);
        expect(chunkBuffer(slice, params), `level ${level}, ${n} bytes`).toEqual(want);
        const rnd = prng(n);
        expect(
          streamChunks(slice, params, () => 1 + (rnd() % 100)),
          `level ${level}, ${n} bytes`,
        ).toEqual(want);
      }
    }
  });

  it('byte-at-a-time, two-byte and odd-sized pushes', () => {
    const params: ChunkerParams = { minSize: 65, avgSize: 300, maxSize: 1025, level: 2, seed: 5n };
    const data = randomBytes(100_000, 7);
    const want = referenceChunks(data, params);
    for (const size of [1, 2, 3, 63, 64, 65, 1024, 1025, 1026]) {
      expect(
        streamChunks(data, params, () => size),
        `${size}-byte pushes`,
      ).toEqual(want);
    }
  });

  it('default (volume) parameters with pushes from 0 bytes to several MiB', () => {
    const data = randomBytes(40 * MiB, 42);
    const want = referenceChunks(data, DEFAULT_CHUNKER_PARAMS);
    expect(want.length).toBeGreaterThan(20);
    expect(chunkBuffer(data, DEFAULT_CHUNKER_PARAMS)).toEqual(want);
    const rnd = prng(43);
    const patterns: Array<[string, () => number]> = [
      ['random up to 9 MiB, a quarter empty', () => (rnd() % 4 === 0 ? 0 : rnd() % (9 * MiB))],
      ['random up to 64 KiB', () => rnd() % (64 * 1024)],
      ['window-sized', () => WINDOW_SIZE],
      ['window + 1', () => WINDOW_SIZE + 1],
      ['odd 4 MiB + 3', () => 4 * MiB + 3],
    ];
    for (const [label, sizeOf] of patterns) {
      expect(streamChunks(data, DEFAULT_CHUNKER_PARAMS, sizeOf), label).toEqual(want);
    }
  });

  it('largest sizes: 1 MiB / 4 MiB / 16 MiB at levels 0 and 3', () => {
    const data = lowEntropyBytes(48 * MiB, 99);
    for (const level of [0, 3] as const) {
      const params: ChunkerParams = { minSize: MiB, avgSize: 4 * MiB, maxSize: 16 * MiB, level, seed: 0n };
      const want = referenceChunks(data, params);
      const rnd = prng(level);
      expect(
        streamChunks(data, params, () => rnd() % (6 * MiB)),
        `level ${level}`,
      ).toEqual(want);
    }
  });
});

describe('StreamingChunker behaviour', () => {
  const params: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024, level: 1, seed: 0n };

  it('returns plain lengths from push and finish that add up to the stream', () => {
    const data = randomBytes(50_000, 3);
    const chunker = new StreamingChunker(params);
    const lengths = [...chunker.push(data.subarray(0, 20_000)), ...chunker.push(data.subarray(20_000))];
    lengths.push(...chunker.finish());
    expect(lengths.every((l) => typeof l === 'number' && l > 0)).toBe(true);
    expect(lengths.reduce((a, b) => a + b, 0)).toBe(data.length);
    expect(lengths).toEqual(referenceChunks(data, params).map((c) => c.length));
  });

  it('an empty stream has no chunks; empty pushes change nothing', () => {
    const chunker = new StreamingChunker(params);
    expect(chunker.push(new Uint8Array(0))).toEqual([]);
    expect(chunker.finish()).toEqual([]);
    expect(chunkBuffer(new Uint8Array(0), params)).toEqual([]);
  });

  it('a stream shorter than minSize is one chunk with hash 0', () => {
    const chunker = new StreamingChunker(params);
    expect(chunker.pushCuts(new Uint8Array(40).fill(9))).toEqual([]);
    expect(chunker.finishCuts()).toEqual([{ length: 40, hash: 0n }]);
  });

  it('starts a new stream after finish', () => {
    const a = randomBytes(10_000, 11);
    const b = randomBytes(7_777, 12);
    const chunker = new StreamingChunker(params);
    const first = [...chunker.push(a), ...chunker.finish()];
    expect(chunker.finish()).toEqual([]);
    const second = [...chunker.push(b), ...chunker.finish()];
    expect(first).toEqual(referenceChunks(a, params).map((c) => c.length));
    expect(second).toEqual(referenceChunks(b, params).map((c) => c.length));
  });

  it('interleaved chunkers with different seeds in one thread do not disturb each other', () => {
    const p1 = { ...params, seed: 1n };
    const p2 = { ...params, seed: 2n, level: 3 as const };
    const d1 = randomBytes(200_000, 21);
    const d2 = randomBytes(200_000, 22);
    const c1 = new StreamingChunker(p1);
    const c2 = new StreamingChunker(p2);
    const out1: number[] = [];
    const out2: number[] = [];
    for (let off = 0; off < d1.length; off += 999) {
      out1.push(...c1.push(d1.subarray(off, off + 999)));
      out2.push(...c2.push(d2.subarray(off, off + 999)));
    }
    out1.push(...c1.finish());
    out2.push(...c2.finish());
    expect(out1).toEqual(referenceChunks(d1, p1).map((c) => c.length));
    expect(out2).toEqual(referenceChunks(d2, p2).map((c) => c.length));
  });

  it('keeps wasm memory fixed whatever the push size', () => {
    const chunker = new StreamingChunker(DEFAULT_CHUNKER_PARAMS);
    chunker.push(randomBytes(1000, 1));
    const before = scanKernel().memoryBytes;
    expect(before).toBeLessThan(WINDOW_SIZE + 128 * 1024);
    chunker.push(randomBytes(24 * MiB, 2));
    chunker.finish();
    expect(scanKernel().memoryBytes).toBe(before);
  });

  it('takes input from SharedArrayBuffer views at any byte offset', () => {
    // The copy into wasm memory is aligned to the source (kernel.ts `load`); check every offset mod 8.
    const data = randomBytes(300_000, 31);
    data.fill(0, 100_000, 180_001);
    const want = referenceChunks(data, params);
    for (let shift = 0; shift < 8; shift++) {
      const shared = new Uint8Array(new SharedArrayBuffer(data.length + 8), shift, data.length);
      shared.set(data);
      expect(chunkBuffer(shared, params), `offset ${shift}`).toEqual(want);
      const rnd = prng(shift);
      expect(
        streamChunks(shared, params, () => rnd() % 5000),
        `offset ${shift}, random pushes`,
      ).toEqual(want);
    }
  });

  it('rejects invalid params at construction', () => {
    expect(() => new StreamingChunker({ ...params, minSize: 2048 })).toThrow(/minSize <= avgSize <= maxSize/);
  });
});

describe('worker threads', () => {
  it('chunks inside a worker exactly as on the main thread', async () => {
    const data = randomBytes(3 * MiB, 77);
    const params: ChunkerParams = { minSize: 16384, avgSize: 65536, maxSize: 262144, level: 2, seed: 3n };
    const script = new URL('./testdata/worker.ts', import.meta.url).href;
    const worker = new Worker(new URL('./testdata/worker-bootstrap.mjs', import.meta.url), {
      workerData: { script, data, params },
      execArgv: ['--conditions=source'],
    });
    const result = await new Promise<Chunk[]>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(result.length).toBeGreaterThan(10);
    expect(result).toEqual(chunkBuffer(data, params));
  });
});
