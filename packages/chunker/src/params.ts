import { GEAR } from './gear-table.js';

export const NORMALIZATION_LEVELS = [0, 1, 2, 3] as const;
/** How strongly chunk sizes are pulled towards the average: 0 not at all, 3 the most. */
export type NormalizationLevel = (typeof NORMALIZATION_LEVELS)[number];

export interface ChunkerParams {
  /** No chunk is shorter, except the last one of a stream. */
  readonly minSize: number;
  /** Target chunk size; only its base-2 logarithm (rounded) matters, through the masks. */
  readonly avgSize: number;
  /** No chunk is longer. */
  readonly maxSize: number;
  readonly level: NormalizationLevel;
  /** XOR'd into the gear table (the crate's `with_level_and_seed`); 0n = the published table. */
  readonly seed: bigint;
}

/** The limits of the fastcdc crate's v2020 module (MINIMUM_MIN … MAXIMUM_MAX). */
export const CHUNKER_LIMITS = {
  minSize: { min: 64, max: 1_048_576 },
  avgSize: { min: 256, max: 4_194_304 },
  maxSize: { min: 1024, max: 16_777_216 },
} as const;

/**
 * Sized for block volumes: 512 KiB on average (128 KiB … 2 MiB, avg/4 and avg×4). Chunks go into ~8 MiB packs,
 * so requests do not depend on chunk size; smaller chunks store less of a changed volume again, and 512 KiB
 * keeps that within 1.2× restic's bytes where 1 MiB did not (docs/benchmarks.md, 2026-12-03).
 */
export const DEFAULT_CHUNKER_PARAMS: ChunkerParams = Object.freeze({
  minSize: 128 * 1024,
  avgSize: 512 * 1024,
  maxSize: 2 * 1024 * 1024,
  level: 1,
  seed: 0n,
});

export class ChunkerParamsError extends Error {
  override name = 'ChunkerParamsError';
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * Checks untrusted chunker parameters (for example read back from a bucket's config) and returns a frozen,
 * normalised copy. `seed` may be a bigint or a non-negative safe integer.
 */
export function validateChunkerParams(p: unknown): ChunkerParams {
  if (typeof p !== 'object' || p === null) throw new ChunkerParamsError('chunker params must be an object');
  const o = p as Record<string, unknown>;
  const size = (key: keyof typeof CHUNKER_LIMITS): number => {
    const v = o[key];
    const { min, max } = CHUNKER_LIMITS[key];
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new ChunkerParamsError(`chunker ${key} must be an integer, got ${describe(v)}`);
    }
    if (v < min || v > max) {
      throw new ChunkerParamsError(`chunker ${key} must be between ${min} and ${max} bytes, got ${v}`);
    }
    return v;
  };
  const minSize = size('minSize');
  const avgSize = size('avgSize');
  const maxSize = size('maxSize');
  if (minSize > avgSize || avgSize > maxSize) {
    throw new ChunkerParamsError(
      `chunker sizes must satisfy minSize <= avgSize <= maxSize, got ${minSize} / ${avgSize} / ${maxSize}`,
    );
  }
  const level = o.level;
  if (!NORMALIZATION_LEVELS.includes(level as NormalizationLevel)) {
    throw new ChunkerParamsError(`chunker level must be 0, 1, 2 or 3, got ${describe(level)}`);
  }
  let seed = o.seed;
  if (typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0) seed = BigInt(seed);
  if (typeof seed !== 'bigint' || seed < 0n || seed > U64_MAX) {
    throw new ChunkerParamsError(
      `chunker seed must be an unsigned 64-bit integer (bigint), got ${describe(o.seed)}`,
    );
  }
  return Object.freeze({ minSize, avgSize, maxSize, level: level as NormalizationLevel, seed });
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/**
 * Cut masks per number of bits, from the crate: spread bits (destor's C implementation, restic's FastCDC for
 * the larger sizes). Indexes 0–4 are padding; 5 and 25 are reached only at level 3.
 */
export const MASKS: readonly bigint[] = [
  0n,
  0n,
  0n,
  0n,
  0n,
  0x0000000001804110n,
  0x0000000001803110n, // 64 B
  0x0000000018035100n,
  0x0000001800035300n,
  0x0000019000353000n,
  0x0000590003530000n, // 1 KiB
  0x0000d90003530000n,
  0x0000d90103530000n,
  0x0000d90303530000n,
  0x0000d90313530000n, // 16 KiB
  0x0000d90f03530000n,
  0x0000d90303537000n,
  0x0000d90703537000n,
  0x0000d90707537000n, // 256 KiB
  0x0000d91707537000n,
  0x0000d91747537000n, // 1 MiB
  0x0000d91767537000n,
  0x0000d93767537000n, // 4 MiB
  0x0000d93777537000n,
  0x0000d93777577000n, // 16 MiB
  0x0000db3777577000n,
];

/** The crate's `logarithm2`: log2 rounded to the nearest integer (halves away from zero). */
export function logarithm2(value: number): number {
  return value <= 0 ? 0 : Math.round(Math.log2(value));
}

/** Everything the scan needs, derived once from validated params. */
export interface CutSettings {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
  /** Mask while the chunk is shorter than the average (harder to satisfy: more bits). */
  readonly maskS: bigint;
  /** Mask once the chunk has reached the average (easier: fewer bits). */
  readonly maskL: bigint;
  /** The gear tables: GEAR ^ seed and (GEAR << 1) ^ (seed << 1), or a keyed table and each entry << 1. */
  readonly gear: BigUint64Array;
  readonly gearLs: BigUint64Array;
}

/** Entries of a gear table: one 64-bit value per byte value. */
export const GEAR_ENTRIES = 256;
/** Bytes of a gear table as `gearTableFromBytes` reads it: 256 big-endian 64-bit entries. */
export const GEAR_TABLE_BYTES = GEAR_ENTRIES * 8;

/**
 * A gear table in place of the published one (FastCDC is otherwise unchanged), for example one derived from
 * a secret key so that nobody without it can compute where known content is cut. Entry i of `bytes` is the
 * big-endian 64-bit integer at bytes[8i .. 8i + 8]. Frozen by being a fresh copy the caller never sees.
 */
export function gearTableFromBytes(bytes: Uint8Array): GearTable {
  if (!(bytes instanceof Uint8Array) || bytes.length !== GEAR_TABLE_BYTES) {
    throw new ChunkerParamsError(`a gear table is ${GEAR_TABLE_BYTES} bytes, got ${describe(bytes)}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const gear = new BigUint64Array(GEAR_ENTRIES);
  const gearLs = new BigUint64Array(GEAR_ENTRIES);
  for (let i = 0; i < GEAR_ENTRIES; i++) {
    gear[i] = view.getBigUint64(i * 8, false);
    gearLs[i] = BigInt.asUintN(64, gear[i]! << 1n);
  }
  return new GearTable(gear, gearLs);
}

/** An opaque gear table made by `gearTableFromBytes`; the chunkers take it beside their parameters. */
export class GearTable {
  /** @internal */
  constructor(
    readonly gear: BigUint64Array,
    readonly gearLs: BigUint64Array,
  ) {}
}

const gearCache = new Map<bigint, { gear: BigUint64Array; gearLs: BigUint64Array }>();

function gearTables(seed: bigint): { gear: BigUint64Array; gearLs: BigUint64Array } {
  let t = gearCache.get(seed);
  if (!t) {
    const gear = new BigUint64Array(256);
    const gearLs = new BigUint64Array(256);
    const seedLs = BigInt.asUintN(64, seed << 1n);
    for (let i = 0; i < 256; i++) {
      gear[i] = GEAR[i]! ^ seed;
      gearLs[i] = BigInt.asUintN(64, GEAR[i]! << 1n) ^ seedLs;
    }
    t = { gear, gearLs };
    if (gearCache.size < 16) gearCache.set(seed, t);
  }
  return t;
}

/**
 * `table` replaces the published table; params.seed must then be 0 (a seed is the reference crate's own way
 * of varying its table, and mixing the two would be a third algorithm nobody can check).
 */
export function cutSettings(params: ChunkerParams, table?: GearTable): CutSettings {
  if (table !== undefined && !(table instanceof GearTable)) {
    throw new ChunkerParamsError('a gear table must come from gearTableFromBytes');
  }
  if (table !== undefined && params.seed !== 0n) {
    throw new ChunkerParamsError('a keyed gear table takes no seed (seed must be 0)');
  }
  const bits = logarithm2(params.avgSize);
  return {
    minSize: params.minSize,
    avgSize: params.avgSize,
    maxSize: params.maxSize,
    maskS: MASKS[bits + params.level]!,
    maskL: MASKS[bits - params.level]!,
    ...(table === undefined ? gearTables(params.seed) : { gear: table.gear, gearLs: table.gearLs }),
  };
}
