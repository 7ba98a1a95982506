import zstd from 'zstd-napi/binding.js';
import { IntegrityError } from './errors.js';

/**
 * Largest chunk plaintext the format allows (16 MiB). Chunker `maxSize` must not exceed it, and readers refuse
 * to decompress past it whatever an object claims: the bound of the decompression-bomb guard.
 */
export const MAX_CHUNK_LENGTH = 16 * 1024 * 1024;

/** How chunk bodies are compressed. Changing these values is not a format change: any zstd frame reads. */
export interface CompressionPolicy {
  /** zstd level for whole chunks (see docs/compression.md for why). */
  readonly level: number;
  /** Bytes sampled (in 4 evenly spaced slices) before compressing a chunk larger than twice this; 0 = off. */
  readonly sampleSize: number;
  /** Skip compression when the level-1 sample shrinks to more than this fraction of its size. */
  readonly sampleMaxRatio: number;
  /** Keep the compressed body only if it saves at least `length / minSavingDivisor` bytes (and ≥ 1). */
  readonly minSavingDivisor: number;
}

export const DEFAULT_COMPRESSION_POLICY: CompressionPolicy = Object.freeze({
  level: 1,
  sampleSize: 64 * 1024,
  sampleMaxRatio: 0.98,
  minSavingDivisor: 32,
});

const SAMPLE_SLICES = 4;
/** Chunks in a row (in this thread) that compressed to at most CLEARLY_COMPRESSIBLE of their size… */
const TRUST_AFTER = 2;
const CLEARLY_COMPRESSIBLE = 0.9;
/** …after which the next chunk is compressed without sampling first. */
let compressibleStreak = 0;

// Contexts and scratch buffers are created on first use (nothing happens at import) and reused: one per
// thread, which is how the engine's workers call us.
let cctx: zstd.CCtx | undefined;
let dctx: zstd.DCtx | undefined;
let scratch: Uint8Array = new Uint8Array(0);
let sampleScratch: Uint8Array = new Uint8Array(0);

function compressContext(): zstd.CCtx {
  cctx ??= new zstd.CCtx();
  return cctx;
}

function scratchOf(length: number): Uint8Array {
  if (scratch.length < length) scratch = new Uint8Array(Math.max(length, 1 << 20));
  return scratch;
}

/**
 * True when a quick level-1 pass over a sample says the data is worth compressing. Cheap (≤ sampleSize bytes
 * at the fastest level) and deterministic: the decision depends only on the bytes.
 */
export function sampleLooksCompressible(data: Uint8Array, policy: CompressionPolicy): boolean {
  const { sampleSize } = policy;
  if (sampleSize <= 0 || data.length <= 2 * sampleSize) return true;
  const slice = Math.floor(sampleSize / SAMPLE_SLICES);
  const sampleLength = slice * SAMPLE_SLICES;
  if (sampleScratch.length < sampleLength) sampleScratch = new Uint8Array(sampleLength);
  const step = Math.floor((data.length - slice) / (SAMPLE_SLICES - 1));
  for (let i = 0; i < SAMPLE_SLICES; i++) {
    sampleScratch.set(data.subarray(i * step, i * step + slice), i * slice);
  }
  const limit = Math.floor(sampleLength * policy.sampleMaxRatio);
  const out = scratchOf(zstd.compressBound(sampleLength));
  const written = compressContext().compress(out, sampleScratch.subarray(0, sampleLength), 1);
  return written <= limit;
}

/**
 * Compresses a chunk body when that pays (whether it was sampled first depends on the chunks this thread
 * compressed before, so the same chunk may be stored compressed once and raw another time — both read the
 * same). Returns the compressed bytes as a view of a per-thread scratch
 * buffer, valid only until the next call in this thread (callers encrypt it straight away), or undefined when
 * the chunk must be stored raw.
 */
export function compressChunkBody(
  plaintext: Uint8Array,
  policy: CompressionPolicy = DEFAULT_COMPRESSION_POLICY,
): Uint8Array | undefined {
  if (plaintext.length === 0) return undefined;
  // While the chunks before compressed clearly, the sample is skipped: on compressible data it would only add
  // its own cost (≈ 6 % of compressing a 1 MiB chunk), and the full attempt below still stores a chunk raw
  // when compression does not pay. Data that stops compressing brings sampling back at once.
  const trusted = compressibleStreak >= TRUST_AFTER;
  if (!trusted && !sampleLooksCompressible(plaintext, policy)) {
    compressibleStreak = 0;
    return undefined;
  }
  const out = scratchOf(zstd.compressBound(plaintext.length));
  const written = compressContext().compress(out, plaintext, policy.level);
  const minSaving = Math.max(1, Math.floor(plaintext.length / policy.minSavingDivisor));
  compressibleStreak = written <= plaintext.length * CLEARLY_COMPRESSIBLE ? compressibleStreak + 1 : 0;
  if (written > plaintext.length - minSaving) return undefined;
  return out.subarray(0, written);
}

/** zstd-compresses `data` into a fresh buffer (manifests: always compressed, never sampled). */
export function zstdCompress(data: Uint8Array, level: number): Uint8Array {
  const out = new Uint8Array(zstd.compressBound(data.length));
  const written = compressContext().compress(out, data, level);
  return out.slice(0, written);
}

/**
 * Decompresses exactly one zstd frame that MUST declare its content size, refusing anything larger than
 * `maxLength` before allocating, and (when given) anything whose size differs from `expectedLength`.
 */
export function zstdDecompressExact(
  frame: Uint8Array,
  options: { expectedLength?: number | undefined; maxLength: number; objectKey?: string | undefined },
): Uint8Array {
  const { expectedLength, maxLength, objectKey } = options;
  let declared: number | null;
  let frameLength: number;
  try {
    frameLength = zstd.findFrameCompressedSize(frame);
    declared = zstd.getFrameContentSize(frame);
  } catch (cause) {
    throw new IntegrityError(objectKey, 'body is not a valid zstd frame', { cause });
  }
  if (frameLength !== frame.length)
    throw new IntegrityError(objectKey, 'trailing bytes after the zstd frame');
  if (declared === null) throw new IntegrityError(objectKey, 'zstd frame does not declare its content size');
  if (declared > maxLength) {
    throw new IntegrityError(
      objectKey,
      `zstd frame declares ${declared} bytes, more than the ${maxLength} allowed`,
    );
  }
  if (expectedLength !== undefined && declared !== expectedLength) {
    throw new IntegrityError(objectKey, `zstd frame declares ${declared} bytes, expected ${expectedLength}`);
  }
  dctx ??= new zstd.DCtx();
  const out = new Uint8Array(declared);
  let written: number;
  try {
    written = dctx.decompress(out, frame);
  } catch (cause) {
    throw new IntegrityError(objectKey, 'zstd decompression failed', { cause });
  }
  if (written !== declared) {
    throw new IntegrityError(objectKey, `zstd frame produced ${written} bytes, declared ${declared}`);
  }
  return out;
}
