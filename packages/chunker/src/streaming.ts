import { type ScanKernel, scanKernel, WINDOW_SIZE } from './kernel.js';
import {
  type ChunkerParams,
  type CutSettings,
  cutSettings,
  type GearTable,
  validateChunkerParams,
} from './params.js';
import type { Chunk } from './reference.js';

/** A chunk as the streaming chunker reports it: its length and the gear hash at its cut point. */
export interface ChunkCut {
  length: number;
  hash: bigint;
}

/**
 * FastCDC 2020 over a stream fed in pieces of any size, with the fastcdc crate's (v2020) cut points.
 *
 * Why streaming can match the crate's whole-buffer `cut()` exactly: for every byte pair that is complete in
 * the data seen so far, the crate's choice of mask depends only on the pair's position (small-chunk mask
 * below avgSize, rounded down to even, large-chunk mask from there) and never on how much input is left;
 * how much is left only decides where the chunk ends when no pair cuts (at maxSize, or at end of stream).
 * So the scan is resumable: the state between pushes is the current chunk's length so far, its rolling hash
 * and, when a pair straddles two pushes, that pair's first byte. The first minSize bytes of a chunk are
 * never hashed, so they are counted, not copied.
 *
 * Memory: the bytes to scan are copied into a fixed wasm window (1 MiB) at most once each, unless the push
 * lies in a scan buffer (`allocateScanBuffer`), which is scanned in place; no input is retained between
 * pushes, so memory does not grow with push size or chunk size.
 *
 * Not thread-safe across threads by construction (each thread has its own kernel); within a thread any
 * number of chunkers may be interleaved.
 */
export class StreamingChunker {
  readonly #s: CutSettings;
  /** Position of the first hashed byte: the crate starts at pair floor(minSize / 2). */
  readonly #scanStart: number;
  /** Pairs at positions below this use the small-chunk mask. */
  readonly #normEnd: number;
  /** Pairs at positions below this are hashed; a chunk that gets there without a cut ends at maxSize. */
  readonly #pairsEnd: number;
  #kernel: ScanKernel | undefined;

  /** Bytes of the current chunk seen so far. */
  #length = 0;
  /** Rolling hash over the complete pairs of the current chunk. */
  #hash = 0n;
  /** First byte of a pair whose second byte has not arrived yet (when #length - #scanStart is odd). */
  #pending = 0;

  /** `options.gear` replaces the published gear table (see `gearTableFromBytes`); cut points then follow it. */
  constructor(params: ChunkerParams, options: { gear?: GearTable } = {}) {
    this.#s = cutSettings(validateChunkerParams(params), options.gear);
    this.#scanStart = this.#s.minSize - (this.#s.minSize % 2);
    this.#normEnd = this.#s.avgSize - (this.#s.avgSize % 2);
    this.#pairsEnd = this.#s.maxSize - (this.#s.maxSize % 2);
  }

  /** Feed the next bytes of the stream; returns the lengths of the chunks completed by them, in order. */
  push(data: Uint8Array): number[] {
    const lengths: number[] = [];
    this.#feed(data, (length) => lengths.push(length));
    return lengths;
  }

  /** End of stream; returns the lengths of the remaining chunk(s). The chunker can then start a new stream. */
  finish(): number[] {
    const lengths: number[] = [];
    this.#end((length) => lengths.push(length));
    return lengths;
  }

  /** As `push`, with the gear hash of each chunk (the crate's `Chunk::hash`). */
  pushCuts(data: Uint8Array): ChunkCut[] {
    const cuts: ChunkCut[] = [];
    this.#feed(data, (length, hash) => cuts.push({ length, hash }));
    return cuts;
  }

  /** As `finish`, with the gear hash of each chunk (0n for a last chunk not longer than minSize). */
  finishCuts(): ChunkCut[] {
    const cuts: ChunkCut[] = [];
    this.#end((length, hash) => cuts.push({ length, hash }));
    return cuts;
  }

  #end(emit: (length: number, hash: bigint) => void): void {
    if (this.#length > 0) emit(this.#length, this.#length <= this.#s.minSize ? 0n : this.#hash);
    this.#length = 0;
    this.#hash = 0n;
  }

  #feed(data: Uint8Array, emit: (length: number, hash: bigint) => void): void {
    const s = this.#s;
    const n = data.length;
    let off = 0;
    // data[winStart, winEnd) is what the kernel's input window holds during this call, from address winAt.
    let winStart = 0;
    let winEnd = 0;
    let winAt = 0;
    while (off < n) {
      const len = this.#length;
      if (len < this.#scanStart) {
        // Not hashed: count, don't copy.
        const step = Math.min(this.#scanStart - len, n - off);
        this.#length += step;
        off += step;
      } else if (len >= this.#pairsEnd) {
        // No cut among all pairs; only an odd maxSize's last byte is missing.
        const step = Math.min(s.maxSize - len, n - off);
        this.#length += step;
        off += step;
      } else if ((len - this.#scanStart) % 2 === 1) {
        // The pair straddling the previous push and this one.
        const pos = len - 1;
        const small = pos < this.#normEnd;
        const mask = small ? s.maskS : s.maskL;
        const h1 = BigInt.asUintN(64, (this.#hash << 2n) + s.gearLs[this.#pending]!);
        if ((h1 & (mask << 1n)) === 0n) {
          // The chunk ends before the pending byte, which opens the next chunk.
          emit(pos, h1);
          this.#length = 1;
          this.#hash = 0n;
          continue;
        }
        const h2 = BigInt.asUintN(64, h1 + s.gear[data[off]!]!);
        if ((h2 & mask) === 0n) {
          emit(len, h2);
          this.#length = 0;
          this.#hash = 0n;
          continue;
        }
        this.#hash = h2;
        this.#length += 1;
        off += 1;
      } else {
        const pairBytes = Math.min(n - off, this.#pairsEnd - len) & ~1;
        if (pairBytes === 0) {
          this.#pending = data[off]!;
          this.#length += 1;
          off += 1;
          continue;
        }
        const k = this.#kernel ?? this.#loadKernel();
        k.useTables(s.gear, s.gearLs);
        if (off + 2 > winEnd) {
          // A push from a scan buffer is scanned where it lies: the whole of it is the window.
          const inPlace = k.addressOf(data);
          if (inPlace >= 0) {
            winStart = 0;
            winEnd = n;
            winAt = inPlace;
          } else {
            winStart = off;
            winEnd = off + Math.min(n - off, WINDOW_SIZE);
            winAt = k.load(data, winStart, winEnd);
          }
        }
        const avail = Math.min(pairBytes, (winEnd - off) & ~1);
        const p = winAt + (off - winStart);
        const end = p + avail;
        const norm = p + Math.max(0, Math.min(avail, this.#normEnd - len));
        const r = k.scan(p, norm, end, this.#hash, s.maskS, s.maskL);
        if (r < end) {
          emit(len + (r - p), k.lastHash());
          this.#length = 0;
          this.#hash = 0n;
          off += r - p;
          continue;
        }
        this.#hash = k.lastHash();
        this.#length += avail;
        off += avail;
      }
      if (this.#length === s.maxSize) {
        emit(s.maxSize, this.#hash);
        this.#length = 0;
        this.#hash = 0n;
      }
    }
  }

  #loadKernel(): ScanKernel {
    this.#kernel = scanKernel();
    return this.#kernel;
  }
}

/** Convenience for small inputs and the CLI: all chunks of a whole buffer. */
export function chunkBuffer(
  data: Uint8Array,
  params: ChunkerParams,
  options: { gear?: GearTable } = {},
): Chunk[] {
  const chunker = new StreamingChunker(params, options);
  const chunks: Chunk[] = [];
  let offset = 0;
  for (const cut of [...chunker.pushCuts(data), ...chunker.finishCuts()]) {
    chunks.push({ offset, length: cut.length, hash: cut.hash });
    offset += cut.length;
  }
  return chunks;
}
