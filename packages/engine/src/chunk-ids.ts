import { CHUNK_ID_LENGTH, type ManifestEntries } from '@stowage/format';

// The distinct chunk ids of one pass of a verify or a check, over a slice of the id space: bounded memory
// whatever the number of entries the manifests hold (see `CheckOptions.indexMemoryBytes`).

/** Bytes per distinct chunk in one pass's index, the merge copy included. */
export const INDEX_BYTES_PER_CHUNK = 72;

/**
 * Distinct chunk ids of one pass, sorted, packed as id(32) ‖ length(4, big-endian) — 36 bytes each, where a
 * map of hex strings would take ~200. Ids not yet in the index wait in an unsorted batch and are merged in
 * once the batch is a quarter of the index: most manifests of a volume name the chunks of the one before, so
 * merging per manifest would copy the whole index once per backup.
 */
export class ChunkIdIndex {
  static readonly RECORD = CHUNK_ID_LENGTH + 4;
  #records = new Uint8Array(0);
  #view = new DataView(this.#records.buffer);
  #pending = new Uint8Array(64 * ChunkIdIndex.RECORD);
  #pendingCount = 0;
  /** Distinct ids merged in. */
  count = 0;

  /** Ids merged in plus ids waiting in the batch (which may repeat one another). */
  get held(): number {
    return this.count + this.#pendingCount;
  }

  /** Adds the chunk ids of `entries` (a segment's) whose first byte is in [lo, hi). */
  add(entries: ManifestEntries, lo: number, hi: number): void {
    const R = ChunkIdIndex.RECORD;
    for (let i = 0; i < entries.count; i++) {
      if (!entries.isChunkAt(i)) continue;
      const id = entries.idAt(i);
      const first = id[0]!;
      if (first < lo || first >= hi || this.find(id) >= 0) continue;
      if ((this.#pendingCount + 1) * R > this.#pending.length) {
        const grown = new Uint8Array(this.#pending.length * 2);
        grown.set(this.#pending);
        this.#pending = grown;
      }
      const at = this.#pendingCount * R;
      this.#pending.set(id, at);
      new DataView(this.#pending.buffer).setUint32(at + CHUNK_ID_LENGTH, entries.lengthAt(i));
      this.#pendingCount++;
    }
    if (this.#pendingCount > Math.max(1 << 16, this.count >>> 2)) this.flush();
  }

  /** Merges the batch in (sorted, duplicates dropped). `find`, `idAt` and the rest see only merged ids. */
  flush(): void {
    if (this.#pendingCount === 0) return;
    const R = ChunkIdIndex.RECORD;
    const pending = this.#pending;
    const order = new Uint32Array(this.#pendingCount);
    for (let i = 0; i < order.length; i++) order[i] = i;
    const pid = (k: number) => pending.subarray(k * R, k * R + CHUNK_ID_LENGTH);
    order.sort((a, b) => Buffer.compare(pid(a), pid(b)));
    const out = new Uint8Array((this.count + order.length) * R);
    let n = 0;
    let i = 0;
    let j = 0;
    while (i < this.count || j < order.length) {
      const a = i < this.count ? this.idAt(i) : undefined;
      const b = j < order.length ? pid(order[j]!) : undefined;
      const takeA = b === undefined || (a !== undefined && Buffer.compare(a, b) <= 0);
      const from = takeA
        ? this.#records.subarray(i * R, (i + 1) * R)
        : pending.subarray(order[j]! * R, (order[j]! + 1) * R);
      if (
        n === 0 ||
        Buffer.compare(
          out.subarray((n - 1) * R, (n - 1) * R + CHUNK_ID_LENGTH),
          from.subarray(0, CHUNK_ID_LENGTH),
        ) !== 0
      ) {
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

  /** The first id byte at the middle of the index (where to cut the slice in two). */
  firstByteAtMiddle(): number {
    return this.count === 0 ? 256 : this.idAt(this.count >>> 1)[0]!;
  }

  /** Forgets every merged id whose first byte is `hi` or more (call after `flush`). */
  dropFrom(hi: number): void {
    let lo = 0;
    let end = this.count;
    while (lo < end) {
      const mid = (lo + end) >>> 1;
      if (this.idAt(mid)[0]! < hi) lo = mid + 1;
      else end = mid;
    }
    this.#records = this.#records.slice(0, lo * ChunkIdIndex.RECORD);
    this.#view = new DataView(this.#records.buffer);
    this.count = lo;
  }

  idAt(i: number): Uint8Array {
    const at = i * ChunkIdIndex.RECORD;
    return this.#records.subarray(at, at + CHUNK_ID_LENGTH);
  }

  lengthAt(i: number): number {
    return this.#view.getUint32(i * ChunkIdIndex.RECORD + CHUNK_ID_LENGTH);
  }

  find(id: Uint8Array): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(this.idAt(mid), id);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }
}

/**
 * Keeps `index` within `budget` bytes: merges its batch, then cuts the slice [lo, hi) of the id space (by first
 * id byte) to its lower half until the index fits, dropping the ids above; returns the new `hi`. A slice of
 * one first byte is not cut further, so an index of more than 256 × `budget` bytes' worth of ids exceeds it.
 */
export function fitIndex(index: ChunkIdIndex, lo: number, hi: number, budget: number): number {
  if (index.held * INDEX_BYTES_PER_CHUNK <= budget) return hi;
  index.flush(); // drops the duplicates it was holding, which may be enough
  let cut = hi;
  while (index.count * INDEX_BYTES_PER_CHUNK > budget && cut - lo > 1) {
    cut = Math.max(lo + 1, index.firstByteAtMiddle());
    index.dropFrom(cut);
  }
  return cut;
}
