import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GEAR } from './gear-table.js';
import {
  CHUNKER_LIMITS,
  type ChunkerParams,
  ChunkerParamsError,
  cutSettings,
  DEFAULT_CHUNKER_PARAMS,
  logarithm2,
  MASKS,
  validateChunkerParams,
} from './params.js';

const base: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024, level: 1, seed: 0n };

describe('gear table', () => {
  it('is MD5 of 64 bytes of value i, first 8 bytes big-endian (the crate examples/table64.rs recipe)', () => {
    expect(GEAR).toHaveLength(256);
    for (let i = 0; i < 256; i++) {
      const digest = createHash('md5').update(new Uint8Array(64).fill(i)).digest();
      expect(GEAR[i]).toBe(digest.readBigUInt64BE(0));
    }
  });

  it('matches entries of the crate GEAR and GEAR_LS tables', () => {
    const s = cutSettings(base);
    expect([s.gear[0], s.gear[1], s.gear[255]]).toEqual([
      0x3b5d3c7d207e37dcn,
      0x784d68ba91123086n,
      0xaabd2b2a451504e1n,
    ]);
    expect([s.gearLs[0], s.gearLs[2], s.gearLs[255]]).toEqual([
      0x76ba78fa40fc6fb8n,
      0x9aa5101f105ce530n,
      0x557a56548a2a09c2n,
    ]);
  });

  it('XORs a non-zero seed into GEAR and seed << 1 into GEAR_LS', () => {
    const seed = 0x8000_0000_0000_0001n;
    const s = cutSettings({ ...base, seed });
    expect(s.gear[7]).toBe(GEAR[7]! ^ seed);
    expect(s.gearLs[7]).toBe(BigInt.asUintN(64, GEAR[7]! << 1n) ^ 2n);
  });
});

describe('masks', () => {
  it('picks MASKS[bits ± level] like the crate (test_masks)', () => {
    const masksOf = (minSize: number, avgSize: number, maxSize: number) =>
      cutSettings({ minSize, avgSize, maxSize, level: 1, seed: 0n });
    expect(masksOf(64, 256, 1024)).toMatchObject({ maskL: MASKS[7], maskS: MASKS[9] });
    expect(masksOf(8192, 16384, 32768)).toMatchObject({ maskL: MASKS[13], maskS: MASKS[15] });
    expect(masksOf(1_048_576, 4_194_304, 16_777_216)).toMatchObject({ maskL: MASKS[21], maskS: MASKS[23] });
  });

  it('reaches both ends of the table at level 3', () => {
    expect(cutSettings({ ...base, level: 3 })).toMatchObject({ maskS: MASKS[11], maskL: MASKS[5] });
    const big = { minSize: 1024, avgSize: 4_194_304, maxSize: 16_777_216, level: 3 as const, seed: 0n };
    expect(cutSettings(big)).toMatchObject({ maskS: MASKS[25], maskL: MASKS[19] });
  });

  it('level 0 uses one mask throughout', () => {
    const s = cutSettings({ ...base, level: 0 });
    expect(s.maskS).toBe(s.maskL);
  });

  it('logarithm2 rounds like the crate (test_logarithm2)', () => {
    const cases: Array<[number, number]> = [
      [0, 0],
      [1, 0],
      [2, 1],
      [3, 2],
      [5, 2],
      [6, 3],
      [11, 3],
      [12, 4],
      [19, 4],
      [64, 6],
      [128, 7],
      [256, 8],
      [512, 9],
      [1024, 10],
      [16383, 14],
      [16384, 14],
      [16385, 14],
      [32767, 15],
      [32768, 15],
      [32769, 15],
      [65535, 16],
      [65536, 16],
      [65537, 16],
      [1_048_575, 20],
      [1_048_576, 20],
      [1_048_577, 20],
      [4_194_303, 22],
      [4_194_304, 22],
      [4_194_305, 22],
      [16_777_215, 24],
      [16_777_216, 24],
      [16_777_217, 24],
    ];
    for (const [value, log] of cases) expect(logarithm2(value), String(value)).toBe(log);
  });
});

describe('validateChunkerParams', () => {
  it('accepts the defaults and the limits', () => {
    expect(validateChunkerParams(DEFAULT_CHUNKER_PARAMS)).toEqual({
      minSize: 131072,
      avgSize: 524288,
      maxSize: 2097152,
      level: 1,
      seed: 0n,
    });
    expect(
      validateChunkerParams({ minSize: 64, avgSize: 256, maxSize: 1024, level: 0, seed: (1n << 64n) - 1n }),
    ).toBeTruthy();
    expect(
      validateChunkerParams({
        minSize: 1_048_576,
        avgSize: 4_194_304,
        maxSize: 16_777_216,
        level: 3,
        seed: 0n,
      }),
    ).toBeTruthy();
  });

  it('returns a frozen copy and accepts a safe-integer seed', () => {
    const p = validateChunkerParams({ ...base, seed: 666, extra: 'ignored' });
    expect(p).toEqual({ ...base, seed: 666n });
    expect(Object.isFrozen(p)).toBe(true);
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', 42, /must be an object/],
    ['null', null, /must be an object/],
    [
      'min too low (test_minimum_too_low)',
      { ...base, minSize: 63 },
      /minSize must be between 64 and 1048576/,
    ],
    ['min too high', { ...base, minSize: 1_048_577, avgSize: 4_194_304, maxSize: 4_194_304 }, /minSize/],
    [
      'avg too low (test_average_too_low)',
      { ...base, avgSize: 255 },
      /avgSize must be between 256 and 4194304/,
    ],
    ['avg too high', { ...base, avgSize: 4_194_305, maxSize: 16_777_216 }, /avgSize/],
    [
      'max too low (test_maximum_too_low)',
      { ...base, maxSize: 1023 },
      /maxSize must be between 1024 and 16777216/,
    ],
    ['max too high', { ...base, maxSize: 16_777_217 }, /maxSize/],
    ['min > avg', { ...base, minSize: 512 }, /minSize <= avgSize <= maxSize, got 512 \/ 256 \/ 1024/],
    ['avg > max', { ...base, avgSize: 2048 }, /minSize <= avgSize <= maxSize/],
    ['fractional size', { ...base, avgSize: 256.5 }, /avgSize must be an integer, got 256.5/],
    ['string size', { ...base, maxSize: '1024' }, /maxSize must be an integer, got "1024"/],
    [
      'missing size',
      { avgSize: 256, maxSize: 1024, level: 1, seed: 0n },
      /minSize must be an integer, got undefined/,
    ],
    ['level 4', { ...base, level: 4 }, /level must be 0, 1, 2 or 3, got 4/],
    ['level as string', { ...base, level: '1' }, /level must be 0, 1, 2 or 3/],
    ['negative seed', { ...base, seed: -1n }, /seed must be an unsigned 64-bit integer \(bigint\), got -1n/],
    ['seed above u64', { ...base, seed: 1n << 64n }, /seed must be an unsigned 64-bit integer/],
    ['unsafe number seed', { ...base, seed: 2 ** 60 }, /seed must be an unsigned 64-bit integer/],
    ['missing seed', { minSize: 64, avgSize: 256, maxSize: 1024, level: 1 }, /seed/],
  ];
  for (const [name, params, message] of bad) {
    it(`rejects ${name}`, () => {
      expect(() => validateChunkerParams(params)).toThrow(ChunkerParamsError);
      expect(() => validateChunkerParams(params)).toThrow(message);
    });
  }

  it('states the crate limits', () => {
    expect(CHUNKER_LIMITS).toEqual({
      minSize: { min: 64, max: 1_048_576 },
      avgSize: { min: 256, max: 4_194_304 },
      maxSize: { min: 1024, max: 16_777_216 },
    });
  });
});
