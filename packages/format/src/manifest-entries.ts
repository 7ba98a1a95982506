import { readUint56After, toHex, writeUint56After } from './bytes.js';
import { MAX_CHUNK_LENGTH } from './compression.js';
import { FormatError } from './errors.js';
import { locationProblem, type PackLocation, readLocation } from './pack.js';

/**
 * Bytes of one packed entry record: kind(1) ‖ length(7, big-endian) ‖ chunk id(32) ‖ pack id(32) ‖
 * offset in the pack(4, big-endian) ‖ chunk object length(4, big-endian). A hole's last 72 bytes are zero.
 */
export const ENTRY_RECORD_LENGTH = 80;
/** Offset of the location (pack id, offset, object length) in a record. */
const LOCATION_AT = 40;
export const ENTRY_KIND_CHUNK = 0;
export const ENTRY_KIND_HOLE = 1;
/** Largest length one record can state, and the largest volume (2^53 − 1: a safe integer; 7 bytes hold it). */
export const MAX_ENTRY_LENGTH = Number.MAX_SAFE_INTEGER;

export type ManifestEntry =
  | {
      readonly kind: 'chunk';
      readonly id: Uint8Array;
      readonly length: number;
      readonly offset: number;
      /** Where the chunk's object is stored (docs/format.md §5.1). */
      readonly location: PackLocation;
    }
  | { readonly kind: 'hole'; readonly length: number; readonly offset: number };

/** A record's length field: 7 bytes, big-endian, after its kind byte. */
export function writeEntryLength(records: Uint8Array, at: number, length: number): void {
  writeUint56After(records, at, length);
}

export function readEntryLength(records: Uint8Array, at: number): number {
  return readUint56After(records, at);
}

export interface ManifestEntriesOptions {
  /** Named in errors: the segment object (and its manifest) the records came from. */
  readonly objectKey?: string | undefined;
  /** Volume offset of the first record (a segment's place in the volume); default 0. */
  readonly offset?: number | undefined;
  /** Index of the first record in the whole manifest, for error messages; default 0. */
  readonly firstIndex?: number | undefined;
  /** Also named in errors after `objectKey`, e.g. `segment 3 of manifests/<volume>/<backup>`. */
  readonly context?: string | undefined;
}

/**
 * A run of a manifest's entries — one segment's, or all of a small manifest's — kept as the packed 80-byte
 * records they travel in. Entries are materialized only when asked for.
 */
export class ManifestEntries implements Iterable<ManifestEntry> {
  /** Packed records, `count × ENTRY_RECORD_LENGTH` bytes. Do not modify. */
  readonly records: Uint8Array;
  readonly count: number;
  /** Volume offset of the first entry. */
  readonly offset: number;
  /** Sum of every entry's length. */
  readonly totalLength: number;
  readonly chunkCount: number;
  readonly chunkBytes: number;
  readonly holeBytes: number;

  /**
   * Validates `records` (kinds, lengths, chunk locations, holes' last 72 bytes zero; throws `FormatError`);
   * keeps a reference to them, no copy.
   */
  constructor(records: Uint8Array, options: ManifestEntriesOptions = {}) {
    const { objectKey, context } = options;
    const offset = options.offset ?? 0;
    const firstIndex = options.firstIndex ?? 0;
    const fail = (why: string): never => {
      throw new FormatError(context === undefined ? why : `${why} (${context})`, objectKey);
    };
    if (records.length % ENTRY_RECORD_LENGTH !== 0) {
      fail(`entries are ${records.length} bytes, not a multiple of ${ENTRY_RECORD_LENGTH}`);
    }
    let total = 0;
    let chunks = 0;
    let chunkBytes = 0;
    for (let at = 0; at < records.length; at += ENTRY_RECORD_LENGTH) {
      const kind = records[at]!;
      const length = readEntryLength(records, at);
      const index = firstIndex + at / ENTRY_RECORD_LENGTH;
      if (length < 1) fail(`entry ${index} has length 0`);
      if (kind === ENTRY_KIND_CHUNK) {
        if (length > MAX_CHUNK_LENGTH) fail(`entry ${index}: chunk longer than allowed`);
        const location = readLocation(records, at + LOCATION_AT);
        const problem = locationProblem(location.offset, location.length);
        if (problem) fail(`entry ${index}: ${problem}`);
        chunks++;
        chunkBytes += length;
      } else if (kind === ENTRY_KIND_HOLE) {
        for (let i = 8; i < ENTRY_RECORD_LENGTH; i++) {
          if (records[at + i] !== 0) fail(`entry ${index}: hole with a non-zero id or location`);
        }
      } else {
        fail(`entry ${index} has unknown kind ${kind}`);
      }
      total += length;
      if (offset + total > MAX_ENTRY_LENGTH) fail('entries add up to more than 2^53 − 1 bytes');
    }
    this.records = records;
    this.count = records.length / ENTRY_RECORD_LENGTH;
    this.offset = offset;
    this.totalLength = total;
    this.chunkCount = chunks;
    this.chunkBytes = chunkBytes;
    this.holeBytes = total - chunkBytes;
  }

  /** Entry `index` with its byte offset in the volume (O(index) for the offset: prefer iteration). */
  get(index: number): ManifestEntry {
    const at = this.#recordAt(index);
    let offset = this.offset;
    for (let r = 0; r < at; r += ENTRY_RECORD_LENGTH) offset += readEntryLength(this.records, r);
    return this.#entryAt(at, offset);
  }

  /** Length of entry `index`, in O(1). */
  lengthAt(index: number): number {
    return readEntryLength(this.records, this.#recordAt(index));
  }

  /** Whether entry `index` is a chunk (not a hole). */
  isChunkAt(index: number): boolean {
    return this.records[this.#recordAt(index)] === ENTRY_KIND_CHUNK;
  }

  /** Chunk id of entry `index` as a view of the records (do not modify), in O(1); throws for a hole. */
  idAt(index: number): Uint8Array {
    const at = this.#recordAt(index);
    if (this.records[at] !== ENTRY_KIND_CHUNK) throw new RangeError(`entry ${index} is a hole`);
    return this.records.subarray(at + 8, at + LOCATION_AT);
  }

  /** Where entry `index`'s chunk object is (the pack id a view of the records), in O(1); throws for a hole. */
  locationAt(index: number): PackLocation {
    const at = this.#recordAt(index);
    if (this.records[at] !== ENTRY_KIND_CHUNK) throw new RangeError(`entry ${index} is a hole`);
    return readLocation(this.records, at + LOCATION_AT);
  }

  #recordAt(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.count)
      throw new RangeError(`no entry ${index}`);
    return index * ENTRY_RECORD_LENGTH;
  }

  #entryAt(at: number, offset: number): ManifestEntry {
    const length = readEntryLength(this.records, at);
    if (this.records[at] === ENTRY_KIND_HOLE) return { kind: 'hole', length, offset };
    const location = readLocation(this.records, at + LOCATION_AT);
    return {
      kind: 'chunk',
      id: this.records.slice(at + 8, at + LOCATION_AT),
      length,
      offset,
      location: { ...location, pack: location.pack.slice() },
    };
  }

  *[Symbol.iterator](): Iterator<ManifestEntry> {
    let offset = this.offset;
    for (let at = 0; at < this.records.length; at += ENTRY_RECORD_LENGTH) {
      const entry = this.#entryAt(at, offset);
      offset += entry.length;
      yield entry;
    }
  }

  /** Chunk ids in order, as lower-case hex, duplicates included. */
  *chunkIdsHex(): Iterable<string> {
    for (let at = 0; at < this.records.length; at += ENTRY_RECORD_LENGTH) {
      if (this.records[at] === ENTRY_KIND_CHUNK) yield toHex(this.records.subarray(at + 8, at + LOCATION_AT));
    }
  }
}
