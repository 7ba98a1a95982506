// The kernel's zero-run fast path (assembly/index.ts, `scan`) against the pair-by-pair reference: zero runs of
// many lengths at controlled and at random positions in a chunk, under seeds for which zero pairs never cut and
// seeds for which they cut under one mask or both.
import { describe, expect, it } from 'vitest';
import {
  type Chunk,
  type ChunkerParams,
  chunkBuffer,
  type NormalizationLevel,
  StreamingChunker,
} from './index.js';
import { scanKernel } from './kernel.js';
import { cutSettings } from './params.js';
import { referenceChunks } from './reference.js';
import { feedInPieces, prng, randomBytes } from './testdata/helpers.js';

const U64 = (1n << 64n) - 1n;

/** The zero-pair fixed point (zh) and the value after its even step (za), for a seed's tables. */
function zeroFixedPoint(params: ChunkerParams): { zh: bigint; za: bigint } {
  const s = cutSettings(params);
  const c = (s.gearLs[0]! + s.gear[0]!) & U64;
  let zh = 0n;
  for (let i = 0; i < 32; i++) zh = ((zh << 2n) + c) & U64;
  return { zh, za: ((zh << 2n) + s.gearLs[0]!) & U64 };
}

/** Whether a pair of zero bytes cuts, once the hash is at the fixed point, under the small / large mask. */
function zeroPairsCut(params: ChunkerParams): { small: boolean; large: boolean } {
  const s = cutSettings(params);
  const { zh, za } = zeroFixedPoint(params);
  const cuts = (mask: bigint) => (za & (mask << 1n)) === 0n || (zh & mask) === 0n;
  return { small: cuts(s.maskS), large: cuts(s.maskL) };
}

/**
 * A seed under which zero pairs cut (or not) under each mask as asked, or undefined if the masks make it
 * impossible (at level 0 they are the same mask). Built, not searched: the fixed point is -GEAR[0] (see the
 * test below), so the seed sets GEAR[0] ^ seed = -t for a t with the wanted mask bits.
 */
function seedWhereZerosCut(base: Omit<ChunkerParams, 'seed'>, want: { small: boolean; large: boolean }) {
  const s = cutSettings({ ...base, seed: 0n });
  const lowestBit = (x: bigint) => x & -x;
  const onlyS = s.maskS & ~s.maskL;
  const onlyL = s.maskL & ~s.maskS;
  if ((!want.small && want.large && onlyS === 0n) || (want.small && !want.large && onlyL === 0n))
    return undefined;
  if (!want.small && !want.large) return 666n;
  const t = (want.small ? 0n : lowestBit(onlyS)) | (want.large ? 0n : lowestBit(onlyL));
  const seed = s.gear[0]! ^ (-t & U64);
  expect(zeroPairsCut({ ...base, seed })).toEqual(want);
  return seed;
}

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

function check(data: Uint8Array, params: ChunkerParams, label: string, rnd: () => number): void {
  const want = referenceChunks(data, params);
  expect(chunkBuffer(data, params), label).toEqual(want);
  const max = params.maxSize;
  expect(
    streamChunks(data, params, () => rnd() % (2 * max)),
    `${label}, random pushes`,
  ).toEqual(want);
}

const levels: NormalizationLevel[] = [0, 1, 2, 3];

describe('zero-pair fixed point', () => {
  it('is reached after 32 zero pairs from any hash and then stays', () => {
    for (const seed of [0n, 666n, U64]) {
      const params: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024, level: 1, seed };
      const s = cutSettings(params);
      const { zh } = zeroFixedPoint(params);
      const c = (s.gearLs[0]! + s.gear[0]!) & U64;
      const f = (h: bigint) => ((h << 2n) + c) & U64;
      expect(f(zh)).toBe(zh);
      // GEAR_LS[0] = GEAR[0] << 1 (seeded too), so c = 3·GEAR[0] and zh = c·(4^32 − 1)/3 = −GEAR[0].
      expect(zh).toBe(-s.gear[0]! & U64);
      for (const start of [0n, 1n, U64, 0x0123456789abcdefn]) {
        let h = start;
        for (let i = 0; i < 32; i++) h = f(h);
        expect(h).toBe(zh);
      }
    }
  });

  it('with the published table, zero pairs never cut at the default and the vector sizes', () => {
    for (const [minSize, avgSize, maxSize] of [
      [262144, 1048576, 4194304],
      [4096, 16384, 65535],
      [8192, 32768, 131072],
    ] as const) {
      for (const level of levels) {
        expect(zeroPairsCut({ minSize, avgSize, maxSize, level, seed: 0n })).toEqual({
          small: false,
          large: false,
        });
      }
    }
  });
});

interface SizeSet {
  sizes: [number, number, number];
  /** Levels to run (all by default). */
  levels?: NormalizationLevel[];
  /**
   * Whether chunks hash enough bytes for the fast path to run: the kernel checks for the fixed point every
   * 1024 hashed bytes (BLOCK in assembly/index.ts), so with maxSize ~1 KiB it hardly ever does, and those
   * sets check only that zero runs change nothing.
   */
  skips?: boolean;
}

const sizeSets: SizeSet[] = [
  { sizes: [64, 256, 1024] },
  { sizes: [65, 257, 1025], levels: [1, 2] },
  { sizes: [64, 3000, 6001], skips: true },
  { sizes: [1024, 1024, 4096], levels: [0, 3], skips: true },
  { sizes: [65, 4095, 4097], levels: [1], skips: true },
  { sizes: [999, 5000, 12345], levels: [1, 2], skips: true },
];

/** Seeds for one size set and level: fixed ones, plus found ones under which zero pairs cut. */
function seedsFor(base: Omit<ChunkerParams, 'seed'>): bigint[] {
  const seeds = [0n, U64];
  for (const want of [
    { small: false, large: true },
    { small: true, large: false },
    { small: true, large: true },
  ]) {
    const seed = seedWhereZerosCut(base, want);
    if (seed !== undefined) seeds.push(seed);
  }
  return seeds;
}

describe('zero runs: StreamingChunker and chunkBuffer agree with the reference', () => {
  it('covers seeds under which zero pairs cut under the small mask only, the large only, and both', () => {
    for (const level of [1, 2, 3] as const) {
      const base = { minSize: 64, avgSize: 256, maxSize: 1024, level };
      expect(seedsFor(base)).toHaveLength(5);
    }
    expect(seedsFor({ minSize: 64, avgSize: 256, maxSize: 1024, level: 0 })).toHaveLength(3);
  });

  let caseNo = 0;
  for (const { sizes, levels: only, skips } of sizeSets) {
    const [minSize, avgSize, maxSize] = sizes;
    const norm = avgSize - (avgSize % 2);
    it(`${minSize}/${avgSize}/${maxSize}: runs at controlled positions in a chunk`, () => {
      const skippedBefore = scanKernel().skippedBytes;
      for (const level of only ?? levels) {
        for (const seed of seedsFor({ minSize, avgSize, maxSize, level })) {
          const params: ChunkerParams = { minSize, avgSize, maxSize, level, seed };
          // Run starts q bytes into the first chunk (the stream's start is a chunk's start); the bytes
          // before it are random, so the run may also start in a later chunk when they cut.
          const starts = [0, 1, 2, 3, 63, 64, 65, minSize - 1, minSize, minSize + 1, minSize + 2];
          starts.push(norm - 2, norm - 1, norm, norm + 1, maxSize - 2, maxSize - 1, maxSize, maxSize + 1);
          const lengths = [0, 1, 2, 3, 62, 63, 64, 65, 66, 67, 127, 128, 129, 130, 131, 200];
          for (const x of [minSize, avgSize, norm, maxSize, 2 * maxSize, 3 * maxSize])
            lengths.push(x - 1, x, x + 1);
          const rnd = prng(++caseNo);
          for (const q of starts) {
            // All lengths for a few starts, a sample for the rest (the test stays a few seconds).
            const sample = q < 4 || q === norm ? lengths : lengths.filter(() => rnd() % 3 === 0);
            for (const len of sample) {
              for (const endsAt of [len, maxSize - q]) {
                if (endsAt < 0) continue;
                const tail = 2 + (rnd() % (2 * maxSize));
                const data = randomBytes(q + endsAt + tail, caseNo * 1000 + q);
                data.fill(0, q, q + endsAt);
                check(data, params, `level ${level} seed ${seed} zeros at ${q} length ${endsAt}`, rnd);
              }
            }
          }
        }
      }
      // The fast path was taken (not only the pair-by-pair loop).
      if (skips) expect(scanKernel().skippedBytes).toBeGreaterThan(skippedBefore);
    });

    it(`${minSize}/${avgSize}/${maxSize}: streams of zero runs 0 … 3 × maxSize long at random offsets`, () => {
      const skippedBefore = scanKernel().skippedBytes;
      for (const level of only ?? levels) {
        for (const seed of seedsFor({ minSize, avgSize, maxSize, level })) {
          const params: ChunkerParams = { minSize, avgSize, maxSize, level, seed };
          const rnd = prng(++caseNo);
          const size = 40 * maxSize;
          const data = randomBytes(size, caseNo);
          let off = rnd() % 7;
          while (off < size) {
            const len = rnd() % 4 === 0 ? 64 + (rnd() % 8) : rnd() % (3 * maxSize + 1);
            data.fill(0, off, off + len);
            // Short random gaps, odd and even, so that runs start anywhere in a pair and in a chunk.
            off += len + 1 + (rnd() % (rnd() % 2 === 0 ? 5 : maxSize));
          }
          check(data, params, `level ${level} seed ${seed}`, rnd);
          // Byte-sized and odd pushes: runs split across many pushes, pairs split across two.
          const want = referenceChunks(data, params);
          for (const push of [1, 3, 64, 1023]) {
            expect(
              streamChunks(data, params, () => push),
              `level ${level} seed ${seed}, ${push}-byte pushes`,
            ).toEqual(want);
          }
        }
      }
      if (skips) expect(scanKernel().skippedBytes).toBeGreaterThan(skippedBefore);
    });
  }

  it('a zero run ending, or one non-zero byte, at every offset shortly before the end of a push', () => {
    // The skip stops at the end of what the kernel was given (here the push), going 64, then 16, then 2
    // bytes at a time; the first non-zero byte just before that end must stop it at the right pair. Either
    // random bytes follow the run, or a single non-zero byte interrupts it: with a 5-bit mask (level 3
    // past avgSize = 256) that byte usually makes a cut within the 32 pairs before the hash is back at the
    // fixed point, so a skip over it changes the cuts.
    const cases: Array<[ChunkerParams, number, (k: number) => Uint8Array]> = [
      [
        { minSize: 64, avgSize: 3000, maxSize: 6001, level: 1, seed: 0n },
        1060,
        (k) => randomBytes(3 * 6001, k).fill(0, 0, k),
      ],
      [
        { minSize: 64, avgSize: 256, maxSize: 8192, level: 3, seed: 0n },
        1250,
        (k) => {
          const data = new Uint8Array(3 * 8192);
          data[k] = 1 + (k % 255);
          return data;
        },
      ],
    ];
    const skippedBefore = scanKernel().skippedBytes;
    for (const [params, from, make] of cases) {
      expect(zeroPairsCut(params)).toEqual({ small: false, large: false });
      for (let k = from; k < from + 140; k++) {
        const data = make(k);
        const want = referenceChunks(data, params).map(({ length, hash }) => ({ length, hash }));
        for (let d = 1; d <= 80; d++) {
          const chunker = new StreamingChunker(params);
          const cuts = [
            ...chunker.pushCuts(data.subarray(0, k + d)),
            ...chunker.pushCuts(data.subarray(k + d)),
          ];
          cuts.push(...chunker.finishCuts());
          expect(cuts, `level ${params.level}, k ${k}, push ends at ${k + d}`).toEqual(want);
        }
      }
    }
    expect(scanKernel().skippedBytes).toBeGreaterThan(skippedBefore);
  });

  it('default (volume) sizes: long zero runs across windows and pushes, all levels', () => {
    const MiB = 1024 * 1024;
    for (const level of levels) {
      const params: ChunkerParams = { minSize: 256 * 1024, avgSize: MiB, maxSize: 4 * MiB, level, seed: 0n };
      const data = randomBytes(24 * MiB, 50 + level);
      // Zero runs at odd and even offsets, from a few bytes to longer than maxSize.
      const runs: Array<[number, number]> = [
        [1_000_001, 70],
        [1_500_000, 300_000],
        [2_222_223, 5 * MiB],
        [9 * MiB + 1, MiB + 3],
        [12 * MiB, 9 * MiB],
      ];
      for (const [at, len] of runs) data.fill(0, at, at + len);
      const want = referenceChunks(data, params);
      expect(chunkBuffer(data, params), `level ${level}`).toEqual(want);
      const rnd = prng(level);
      expect(
        streamChunks(data, params, () => rnd() % (6 * MiB)),
        `level ${level}, random pushes`,
      ).toEqual(want);
    }
  });
});
