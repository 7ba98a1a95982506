import type { ChunkerParams } from '@stowage/chunker';
import { MAX_CHUNK_LENGTH } from './compression.js';
import { FormatError } from './errors.js';

// FastCDC 2020 parameters of a target, recorded in its `config` and in every manifest: the chunker's own type.
// The format validates them by its own, looser rules (any sizes up to MAX_CHUNK_LENGTH a reader may meet);
// the chunker's validator enforces the fastcdc crate's limits for chunking.
export type { ChunkerParams };

export const MAX_UINT64 = (1n << 64n) - 1n;

/** Throws `FormatError` unless `value` is a well-formed `ChunkerParams`; returns a normalized frozen copy. */
export function validateChunkerParams(value: unknown, objectKey?: string): ChunkerParams {
  const fail = (why: string): never => {
    throw new FormatError(`invalid chunker parameters: ${why}`, objectKey);
  };
  if (typeof value !== 'object' || value === null) return fail('not an object');
  const v = value as Record<string, unknown>;
  const size = (name: string): number => {
    const n = asUint(v[name]);
    if (n === undefined || n < 1 || n > MAX_CHUNK_LENGTH) {
      return fail(`${name} must be an integer in 1..${MAX_CHUNK_LENGTH}`);
    }
    return n;
  };
  const minSize = size('minSize');
  const avgSize = size('avgSize');
  const maxSize = size('maxSize');
  if (!(minSize <= avgSize && avgSize <= maxSize)) fail('need minSize ≤ avgSize ≤ maxSize');
  const level = asUint(v.level);
  if (level === undefined || level > 3) fail('level must be 0, 1, 2 or 3');
  // Version 2 keys the gear table from the target key instead: a seed in the bucket would be public.
  const rawSeed = v.seed;
  if (rawSeed !== undefined && rawSeed !== 0 && rawSeed !== 0n) {
    fail('seed is not part of version 2 (the gear table is derived from the target key)');
  }
  return Object.freeze({ minSize, avgSize, maxSize, level: level as 0 | 1 | 2 | 3, seed: 0n });
}

/** The chunker parameters as the CBOR map `config` and manifests record them (no seed: §7.2). */
export function chunkerParamsDocument(c: ChunkerParams): Record<string, number> {
  return { minSize: c.minSize, avgSize: c.avgSize, maxSize: c.maxSize, level: c.level };
}

/** A non-negative safe integer from a number or bigint (CBOR decoders return either), else undefined. */
export function asUint(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value === 'bigint') {
    return value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
  }
  return undefined;
}
