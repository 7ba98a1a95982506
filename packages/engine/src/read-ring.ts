import { allocateScanBuffer, type ScanBuffer } from '@stowage/chunker';
import type { ChunkWorkers } from './workers/chunk-workers.js';

/** One read's place in the ring: `readSize` bytes from `dataAt` (an offset in `ReadRing.buffer`). */
export interface Slot {
  readonly index: number;
  readonly dataAt: number;
  /** Held by the reader and by every chunk with bytes in it; reused once none holds it. */
  refs: number;
}

/** A run of bytes in the ring and the slots it lies in (each holding one reference for it). */
export interface RingRange {
  readonly at: number;
  readonly length: number;
  readonly slots: readonly Slot[];
}

/** Slots and reads start on 4 KiB, so reads into them can be direct (O_DIRECT, volume-io.ts). */
const READ_ALIGN = 4096;
const alignUp = (n: number) => Math.ceil(n / READ_ALIGN) * READ_ALIGN;

/**
 * A backup's read buffers: a ring of `readSize` slots, back to back in one region of the chunker's memory,
 * read into in order, with a prefix of `maxSize` bytes before the first. The chunker scans each slot where it
 * lies (no copy into its window), and the workers are handed the region's buffer once
 * (`ChunkWorkers.attach`), so each request names it by number. A chunk that runs from one slot into the next
 * is whole in memory as it is; only at the wrap is the unfinished chunk at the end of the last slot copied,
 * into the prefix just before the first. `close` gives both back; call it once no request about the ring is
 * in flight.
 */
export class ReadRing {
  readonly #region: ScanBuffer;
  readonly #workers: ChunkWorkers;
  readonly #slots: Slot[] = [];
  readonly #waiting = new Map<Slot, () => void>();
  readonly #whole: Uint8Array;
  readonly #readSize: number;
  #next = 0;
  /** The buffer the slots lie in (all of the chunker's memory, as the workers hold it). */
  readonly buffer: SharedArrayBuffer;
  /** Reads that may be in flight while the reader holds the slots of one unfinished chunk. */
  readonly readAhead: number;

  private constructor(workers: ChunkWorkers, maxSize: number, readSize: number, readAhead: number) {
    this.#workers = workers;
    this.#readSize = readSize;
    this.readAhead = readAhead;
    // The unfinished chunk (shorter than maxSize) may lie in this many slots, the one being chunked included;
    // with one more than that and the reads ahead, a read never waits for a slot only the reader can free.
    const chunkSlots = Math.ceil(maxSize / readSize) + 1;
    const count = chunkSlots + readAhead + 1;
    const prefix = alignUp(maxSize);
    this.#region = allocateScanBuffer(prefix + count * readSize);
    const region = this.#region.bytes;
    this.buffer = region.buffer as SharedArrayBuffer;
    this.#whole = new Uint8Array(this.buffer);
    for (let i = 0; i < count; i++) {
      this.#slots.push({ index: i, dataAt: region.byteOffset + prefix + i * readSize, refs: 0 });
    }
  }

  /** A ring for chunks of up to `maxSize` bytes, reads of `readSize` and `readAhead` reads in flight. */
  static async open(
    workers: ChunkWorkers,
    options: { maxSize: number; readSize: number; readAhead: number },
  ): Promise<ReadRing> {
    const ring = new ReadRing(workers, options.maxSize, options.readSize, Math.max(1, options.readAhead));
    try {
      await workers.attach(ring.buffer);
    } catch (error) {
      ring.#region.release();
      throw error;
    }
    return ring;
  }

  get slotCount(): number {
    return this.#slots.length;
  }

  /** The slot for the next read, in ring order (taken now, so reads started together stay in order), once free. */
  acquireNext(): Promise<Slot> {
    const slot = this.#slots[this.#next]!;
    this.#next = (this.#next + 1) % this.#slots.length;
    if (slot.refs === 0 && !this.#waiting.has(slot)) {
      slot.refs = 1;
      return Promise.resolve(slot);
    }
    return new Promise((resolve) => {
      this.#waiting.set(slot, () => {
        slot.refs = 1;
        resolve(slot);
      });
    });
  }

  /** The view of a slot's `length` bytes of data. */
  dataOf(slot: Slot, length: number): Uint8Array {
    return this.#whole.subarray(slot.dataAt, slot.dataAt + length);
  }

  /**
   * [at, at + length), whole in memory (it never wraps), and the slots it lies in, one reference taken on
   * each. The prefix counts as part of the first slot.
   */
  hold(at: number, length: number): RingRange {
    const first = this.#slots[0]!.dataAt;
    const slotOf = (x: number) => (x < first ? 0 : Math.floor((x - first) / this.#readSize));
    const slots: Slot[] = [];
    const last = length > 0 ? slotOf(at + length - 1) : slotOf(at);
    for (let i = slotOf(at); i <= last; i++) {
      const slot = this.#slots[i]!;
      slot.refs++;
      slots.push(slot);
    }
    return { at, length, slots };
  }

  /** Drops the references `hold` took. */
  release(range: RingRange): void {
    for (const slot of range.slots) this.#unref(slot);
  }

  /** Drops the reader's reference on a slot (the one `acquireNext` gave it). */
  releaseSlot(slot: Slot): void {
    this.#unref(slot);
  }

  /**
   * At the wrap: copies the unfinished chunk at the end of the ring to just before the first slot's data
   * (the prefix, free once the first slot is) and returns where it now starts.
   */
  moveToPrefix(at: number, length: number): number {
    const to = this.#slots[0]!.dataAt - length;
    this.#whole.copyWithin(to, at, at + length);
    return to;
  }

  #unref(slot: Slot): void {
    if (--slot.refs > 0) return;
    const waiter = this.#waiting.get(slot);
    if (waiter) {
      this.#waiting.delete(slot);
      waiter();
    }
  }

  async close(): Promise<void> {
    try {
      await this.#workers.detach(this.buffer);
    } catch {
      // A pool that failed has failed the backup already, and its threads are gone.
    } finally {
      this.#region.release();
    }
  }
}
