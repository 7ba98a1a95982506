import {
  CHUNK_ID_LENGTH,
  ENTRY_RECORD_LENGTH,
  LOCATION_LENGTH,
  type ManifestEntries,
  PACK_ID_LENGTH,
  type PackLocation,
  readLocation,
  writeLocation,
} from '@stowage/format';

// The distinct chunk objects of one pass of a verify or a check — chunk id and where it is stored — over a
// slice of the pack-id space: bounded memory whatever the number of entries the manifests hold (see
// `CheckOptions.indexMemoryBytes`). Sliced by pack, not by chunk id, so that every chunk of a pack is in the
// same pass: a pass lists only its own packs, knows which of them no manifest names, and reads a pack's
// chunks in offset order (adjacent ones in one ranged GET).

/** Bytes of one record: pack id(32) ‖ offset(4) ‖ object length(4) ‖ chunk id(32) ‖ chunk length(4). */
export const INDEX_RECORD = LOCATION_LENGTH + CHUNK_ID_LENGTH + 4;
/** Bytes per distinct chunk object in one pass's index, the merge copy included. */
export const INDEX_BYTES_PER_CHUNK = 2 * INDEX_RECORD;

/** Where a manifest entry's record keeps its chunk id and its location. */
const ENTRY_ID_AT = 8;
const ENTRY_LOCATION_AT = ENTRY_ID_AT + CHUNK_ID_LENGTH;
const ID_AT = LOCATION_LENGTH;
const LENGTH_AT = LOCATION_LENGTH + CHUNK_ID_LENGTH;

/**
 * The distinct chunk objects of one pass, sorted by location (pack id, offset, object length, then chunk id
 * and length), packed as 76-byte records where a map of hex strings would take ~300 bytes. A chunk stored in
 * two places (a backup that stored it again after damage) is two records: each copy is checked on its own.
 * Records not yet in the index wait in an unsorted batch and are merged in once the batch is a quarter of the
 * index: most manifests of a volume name the chunks of the one before, so merging per manifest would copy the
 * whole index once per backup.
 */
export class ChunkIndex {
  static readonly RECORD = INDEX_RECORD;
  #records = new Uint8Array(0);
  #view = new DataView(this.#records.buffer);
  #pending = new Uint8Array(64 * INDEX_RECORD);
  #pendingCount = 0;
  /** Distinct chunk objects merged in. */
  count = 0;

  /** Records merged in plus records waiting in the batch (which may repeat one another). */
  get held(): number {
    return this.count + this.#pendingCount;
  }

  /** Adds the chunks of `entries` (a segment's) whose pack id's first byte is in [lo, hi). */
  add(entries: ManifestEntries, lo: number, hi: number): void {
    const R = INDEX_RECORD;
    const records = entries.records;
    for (let i = 0; i < entries.count; i++) {
      if (!entries.isChunkAt(i)) continue;
      const e = i * ENTRY_RECORD_LENGTH;
      const first = records[e + ENTRY_LOCATION_AT]!;
      if (first < lo || first >= hi) continue;
      if ((this.#pendingCount + 1) * R > this.#pending.length) {
        const grown = new Uint8Array(this.#pending.length * 2);
        grown.set(this.#pending);
        this.#pending = grown;
      }
      const at = this.#pendingCount * R;
      const pending = this.#pending;
      pending.set(records.subarray(e + ENTRY_LOCATION_AT, e + ENTRY_LOCATION_AT + LOCATION_LENGTH), at);
      pending.set(records.subarray(e + ENTRY_ID_AT, e + ENTRY_LOCATION_AT), at + ID_AT);
      new DataView(pending.buffer).setUint32(at + LENGTH_AT, entries.lengthAt(i));
      if (this.#find(pending.subarray(at, at + R)) >= 0) continue; // known: the slot is reused
      this.#pendingCount++;
    }
    if (this.#pendingCount > Math.max(1 << 16, this.count >>> 2)) this.flush();
  }

  /**
   * Adds one chunk object: `id` of plaintext length `length`, stored at `location` (a copy found through the
   * index objects, say). Like `add`, it waits in the batch until `flush`.
   */
  addChunk(id: Uint8Array, location: PackLocation, length: number): void {
    const R = INDEX_RECORD;
    if ((this.#pendingCount + 1) * R > this.#pending.length) {
      const grown = new Uint8Array(this.#pending.length * 2);
      grown.set(this.#pending);
      this.#pending = grown;
    }
    const at = this.#pendingCount * R;
    writeLocation(this.#pending, at, location);
    this.#pending.set(id.subarray(0, CHUNK_ID_LENGTH), at + ID_AT);
    new DataView(this.#pending.buffer).setUint32(at + LENGTH_AT, length);
    if (this.#find(this.#pending.subarray(at, at + R)) >= 0) return;
    this.#pendingCount++;
  }

  /** Merges the batch in (sorted, duplicates dropped). Every accessor sees only merged records. */
  flush(): void {
    if (this.#pendingCount === 0) return;
    const R = INDEX_RECORD;
    const pending = this.#pending;
    const order = new Uint32Array(this.#pendingCount);
    for (let i = 0; i < order.length; i++) order[i] = i;
    const rec = (k: number) => pending.subarray(k * R, (k + 1) * R);
    order.sort((a, b) => Buffer.compare(rec(a), rec(b)));
    const out = new Uint8Array((this.count + order.length) * R);
    let n = 0;
    let i = 0;
    let j = 0;
    while (i < this.count || j < order.length) {
      const a = i < this.count ? this.#recordAt(i) : undefined;
      const b = j < order.length ? rec(order[j]!) : undefined;
      const takeA = b === undefined || (a !== undefined && Buffer.compare(a, b) <= 0);
      const from = takeA ? a! : b!;
      if (n === 0 || Buffer.compare(out.subarray((n - 1) * R, n * R), from) !== 0) {
        out.set(from, n * R);
        n++;
      }
      if (takeA) i++;
      else j++;
    }
    this.#records = out.slice(0, n * R);
    this.#view = new DataView(this.#records.buffer);
    this.count = n;
    this.#pending = new Uint8Array(64 * R);
    this.#pendingCount = 0;
  }

  /** The first pack-id byte at the middle of the index (where to cut the slice in two). */
  firstByteAtMiddle(): number {
    return this.count === 0 ? 256 : this.#records[(this.count >>> 1) * INDEX_RECORD]!;
  }

  /** Forgets every merged record whose pack id's first byte is `hi` or more (call after `flush`). */
  dropFrom(hi: number): void {
    let lo = 0;
    let end = this.count;
    while (lo < end) {
      const mid = (lo + end) >>> 1;
      if (this.#records[mid * INDEX_RECORD]! < hi) lo = mid + 1;
      else end = mid;
    }
    this.#records = this.#records.slice(0, lo * INDEX_RECORD);
    this.#view = new DataView(this.#records.buffer);
    this.count = lo;
  }

  /** Pack id of record `i` (a view; do not modify). */
  packAt(i: number): Uint8Array {
    const at = i * INDEX_RECORD;
    return this.#records.subarray(at, at + PACK_ID_LENGTH);
  }

  /** Where record `i`'s chunk object is (the pack id a view; do not modify). */
  locationAt(i: number): PackLocation {
    return readLocation(this.#records, i * INDEX_RECORD);
  }

  /** Byte offset of record `i`'s chunk object in its pack. */
  offsetAt(i: number): number {
    return this.#view.getUint32(i * INDEX_RECORD + PACK_ID_LENGTH);
  }

  /** Length of record `i`'s chunk object (padded, sealed: what is read). */
  objectLengthAt(i: number): number {
    return this.#view.getUint32(i * INDEX_RECORD + PACK_ID_LENGTH + 4);
  }

  /** Chunk id of record `i` (a view; do not modify). */
  idAt(i: number): Uint8Array {
    const at = i * INDEX_RECORD + ID_AT;
    return this.#records.subarray(at, at + CHUNK_ID_LENGTH);
  }

  /** Plaintext length of record `i`'s chunk. */
  lengthAt(i: number): number {
    return this.#view.getUint32(i * INDEX_RECORD + LENGTH_AT);
  }

  /** Whether records `i` and `j` lie in the same pack. */
  samePack(i: number, j: number): boolean {
    return Buffer.compare(this.packAt(i), this.packAt(j)) === 0;
  }

  #recordAt(i: number): Uint8Array {
    return this.#records.subarray(i * INDEX_RECORD, (i + 1) * INDEX_RECORD);
  }

  #find(record: Uint8Array): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(this.#recordAt(mid), record);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }
}

/**
 * Keeps `index` within `budget` bytes: merges its batch, then cuts the slice [lo, hi) of the pack-id space (by
 * first byte) to its lower half until the index fits, dropping the records above; returns the new `hi`. A
 * slice of one first byte is not cut further, so an index of more than 256 × `budget` bytes' worth of chunks
 * exceeds it.
 */
export function fitIndex(index: ChunkIndex, lo: number, hi: number, budget: number): number {
  if (index.held * INDEX_BYTES_PER_CHUNK <= budget) return hi;
  index.flush(); // drops the duplicates it was holding, which may be enough
  let cut = hi;
  while (index.count * INDEX_BYTES_PER_CHUNK > budget && cut - lo > 1) {
    cut = Math.max(lo + 1, index.firstByteAtMiddle());
    index.dropFrom(cut);
  }
  return cut;
}
