import { CHUNK_ID_LENGTH, PACK_ID_LENGTH, type PackLocation } from '@stowage/format';

/**
 * Where known chunks are stored: chunk id → pack location, for a backup's dedup (the chunks of the volume's
 * latest manifest, those of the repository's index objects, and those this backup stored). Packed in typed
 * arrays — about 52 bytes a chunk plus 36 per distinct pack, where a Map of hex strings takes ~200 — growing
 * by doubling up to `capacity`, so memory has a known bound: `add` answers false once it is full.
 */
export class ChunkLocations {
  readonly capacity: number;
  #count = 0;
  #room: number;
  #ids: Uint8Array;
  /** Per chunk: pack number, offset, object length. */
  #where: Uint32Array;
  /** Open addressing over the first 4 id bytes; slot value = chunk number + 1, 0 = empty. */
  #slots: Uint32Array;
  #mask: number;
  #packs = new Uint8Array(64 * PACK_ID_LENGTH);
  #packCount = 0;
  readonly #packNumbers = new Map<string, number>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 2 ** 26)
      throw new RangeError(`capacity ${capacity} outside 1..2^26`);
    this.capacity = capacity;
    this.#room = Math.min(capacity, 1024);
    this.#ids = new Uint8Array(this.#room * CHUNK_ID_LENGTH);
    this.#where = new Uint32Array(this.#room * 3);
    this.#slots = new Uint32Array(slotsFor(this.#room));
    this.#mask = this.#slots.length - 1;
  }

  /** Most bytes one of this capacity holds (the pack table apart: 36 bytes per distinct pack). */
  static bytesFor(capacity: number): number {
    return capacity * (CHUNK_ID_LENGTH + 12) + slotsFor(capacity) * 4;
  }

  get size(): number {
    return this.#count;
  }

  get full(): boolean {
    return this.#count >= this.capacity;
  }

  /** Where `id` is stored, or undefined. The pack id is a view of the table (do not modify). */
  get(id: Uint8Array): PackLocation | undefined {
    const n = this.#find(id);
    if (n < 0) return undefined;
    const pack = this.#where[n * 3]!;
    return {
      pack: this.#packs.subarray(pack * PACK_ID_LENGTH, (pack + 1) * PACK_ID_LENGTH),
      offset: this.#where[n * 3 + 1]!,
      length: this.#where[n * 3 + 2]!,
    };
  }

  has(id: Uint8Array): boolean {
    return this.#find(id) >= 0;
  }

  /**
   * Records where `id` is; a chunk already known keeps its first location (any stored copy will do). False
   * when full (the chunk is then simply not known).
   */
  add(id: Uint8Array, location: PackLocation): boolean {
    if (this.#find(id) >= 0) return true;
    if (this.full) return false;
    if (this.#count === this.#room) this.#grow();
    const n = this.#count++;
    this.#ids.set(id, n * CHUNK_ID_LENGTH);
    this.#where[n * 3] = this.#packNumber(location.pack);
    this.#where[n * 3 + 1] = location.offset;
    this.#where[n * 3 + 2] = location.length;
    let slot = this.#hash(id);
    while (this.#slots[slot] !== 0) slot = (slot + 1) & this.#mask;
    this.#slots[slot] = n + 1;
    return true;
  }

  #grow(): void {
    this.#room = Math.min(this.capacity, this.#room * 2);
    const ids = new Uint8Array(this.#room * CHUNK_ID_LENGTH);
    ids.set(this.#ids);
    this.#ids = ids;
    const where = new Uint32Array(this.#room * 3);
    where.set(this.#where);
    this.#where = where;
    this.#slots = new Uint32Array(slotsFor(this.#room));
    this.#mask = this.#slots.length - 1;
    for (let n = 0; n < this.#count; n++) {
      let slot = this.#hash(this.#ids.subarray(n * CHUNK_ID_LENGTH));
      while (this.#slots[slot] !== 0) slot = (slot + 1) & this.#mask;
      this.#slots[slot] = n + 1;
    }
  }

  #packNumber(pack: Uint8Array): number {
    const hex = Buffer.from(pack.buffer, pack.byteOffset, PACK_ID_LENGTH).toString('hex');
    let n = this.#packNumbers.get(hex);
    if (n === undefined) {
      n = this.#packCount++;
      if (n * PACK_ID_LENGTH >= this.#packs.length) {
        const grown = new Uint8Array(this.#packs.length * 2);
        grown.set(this.#packs);
        this.#packs = grown;
      }
      this.#packs.set(pack, n * PACK_ID_LENGTH);
      this.#packNumbers.set(hex, n);
    }
    return n;
  }

  #hash(id: Uint8Array): number {
    // Chunk ids are keyed hashes: their bytes are uniform already.
    return ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) & this.#mask;
  }

  #find(id: Uint8Array): number {
    let slot = this.#hash(id);
    for (;;) {
      const v = this.#slots[slot]!;
      if (v === 0) return -1;
      const at = (v - 1) * CHUNK_ID_LENGTH;
      let same = true;
      for (let i = 0; i < CHUNK_ID_LENGTH; i++) {
        if (this.#ids[at + i] !== id[i]) {
          same = false;
          break;
        }
      }
      if (same) return v - 1;
      slot = (slot + 1) & this.#mask;
    }
  }
}

/** Hash slots for `n` chunks: a power of two at least twice as many, so probes stay short. */
function slotsFor(n: number): number {
  let size = 2;
  while (size < n * 2) size *= 2;
  return size;
}
