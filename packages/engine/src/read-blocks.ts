import { allocateScanBuffer, type ScanBuffer } from '@stowage/chunker';
import type { ChunkWorkers } from './workers/chunk-workers.js';

/** A read buffer that chunks point into; reused once every chunk in it is done. */
export interface Block {
  /** The shared buffer all blocks lie in, as the workers hold it; this block starts at `base` in it. */
  readonly buffer: SharedArrayBuffer;
  readonly base: number;
  readonly view: Uint8Array;
  refs: number;
}

/** Blocks and the data in them start on 4 KiB, so reads into them can be direct (O_DIRECT, volume-io.ts). */
const READ_ALIGN = 4096;
const alignUp = (n: number) => Math.ceil(n / READ_ALIGN) * READ_ALIGN;

/**
 * A backup's read blocks, all in one region of the chunker's memory: the chunker scans them where they lie
 * (no copy into its window), and the workers are handed the region's buffer once (`ChunkWorkers.attach`),
 * so each request names it by number. Each block has room for the unfinished chunk of the block before it
 * (up to `maxSize`) and then, from `dataStart`, a read of `readSize` bytes. `close` gives both back; call it
 * once no request about a block is in flight.
 */
export class ReadBlocks {
  readonly #region: ScanBuffer;
  readonly #workers: ChunkWorkers;
  readonly #free: Block[] = [];
  readonly #waiting: Array<(b: Block) => void> = [];
  readonly #whole: Uint8Array;
  readonly count: number;
  /** Where in a block a read goes; the bytes before it take the previous block's unfinished chunk. */
  readonly dataStart: number;

  private constructor(workers: ChunkWorkers, count: number, maxSize: number, readSize: number) {
    this.#workers = workers;
    this.count = count;
    this.dataStart = alignUp(maxSize);
    const size = alignUp(this.dataStart + readSize);
    this.#region = allocateScanBuffer(count * size);
    const region = this.#region.bytes;
    const buffer = region.buffer as SharedArrayBuffer;
    this.#whole = new Uint8Array(buffer);
    for (let i = 0; i < count; i++) {
      const view = region.subarray(i * size, (i + 1) * size);
      this.#free.push({ buffer, base: view.byteOffset, view, refs: 0 });
    }
  }

  /** `count` blocks for chunks of up to `maxSize` bytes and reads of `readSize`. */
  static async open(
    workers: ChunkWorkers,
    count: number,
    maxSize: number,
    readSize: number,
  ): Promise<ReadBlocks> {
    const blocks = new ReadBlocks(workers, count, maxSize, readSize);
    try {
      await workers.attach(blocks.#whole.buffer as SharedArrayBuffer);
    } catch (error) {
      blocks.#region.release();
      throw error;
    }
    return blocks;
  }

  acquire(): Promise<Block> {
    const b = this.#free.pop();
    return b ? Promise.resolve(b) : new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Drops one reference; the block is free (or handed to a waiting reader) at none. */
  release(b: Block): void {
    if (--b.refs > 0) return;
    const waiter = this.#waiting.shift();
    if (waiter) waiter(b);
    else this.#free.push(b);
  }

  /** Copies `length` bytes at `offset` in `from` to `at` in `to` (a memmove within the one buffer). */
  copy(from: Block, offset: number, length: number, to: Block, at: number): void {
    const src = from.base + offset;
    this.#whole.copyWithin(to.base + at, src, src + length);
  }

  async close(): Promise<void> {
    try {
      await this.#workers.detach(this.#whole.buffer as SharedArrayBuffer);
    } catch {
      // A pool that failed has failed the backup already, and its threads are gone.
    } finally {
      this.#region.release();
    }
  }
}
