import { FASTCDC_WASM_BASE64 } from './fastcdc.wasm.js';

// The WebAssembly global is not declared by the Node types alone (it lives in lib.dom); this is the part used.
interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}

interface KernelExports {
  tablesOffset(): number;
  heapBase(): number;
  scan(p: number, norm: number, end: number, hash: bigint, maskS: bigint, maskL: bigint): number;
  hash(): bigint;
  skippedBytes(): number;
}

/** Bytes of input copied into wasm memory at a time: large enough to amortise calls, small enough for L2. */
export const WINDOW_SIZE = 1 << 20;

const PAGE = 65536;
/** The module's declared maximum (scripts/build-wasm.mjs); a shared memory reserves it up front, unbacked. */
const MAX_PAGES = 65536;
/** Scan buffers start and end on 4 KiB, so a buffer's address keeps the alignment its caller gives offsets. */
const SCAN_BUFFER_ALIGN = 4096;

const alignUp = (n: number, to: number) => Math.ceil(n / to) * to;

/**
 * One instance of the scan kernel per thread (module state is per thread, so worker_threads each get theirs).
 * Its memory is a shared WebAssembly memory holding the gear tables, a fixed input window that pushes from
 * elsewhere are copied into (at most WINDOW_SIZE bytes at a time), and the scan buffers handed out by
 * `reserve`: data there is scanned where it lies, and the memory's SharedArrayBuffer can go to other threads.
 */
export class ScanKernel {
  readonly #exports: KernelExports;
  readonly #memory: WasmMemory;
  readonly #bytes: Uint8Array;
  readonly #tables: BigUint64Array;
  /** Address of the input window in wasm memory (WINDOW_SIZE + 8 bytes: see `load`). */
  readonly input: number;
  #loadedGear: BigUint64Array | undefined;
  /** Every SharedArrayBuffer of the memory handed out in a scan buffer (one per size the memory had). */
  readonly #exposed = new WeakSet<ArrayBufferLike>();
  /** Scan buffers in use, address → reserved bytes; free ranges below `#top`, by address. */
  readonly #reserved = new Map<number, number>();
  #free: Array<{ start: number; end: number }> = [];
  #top: number;

  constructor(exports: KernelExports, memory: WasmMemory) {
    this.#exports = exports;
    this.#memory = memory;
    const tables = exports.tablesOffset();
    if (exports.heapBase() > tables) throw new Error('chunker kernel: static data overlaps the gear tables');
    this.input = tables + 4096;
    this.#top = alignUp(this.input + WINDOW_SIZE + 8, SCAN_BUFFER_ALIGN);
    this.#growTo(this.#top);
    this.#bytes = new Uint8Array(memory.buffer);
    this.#tables = new BigUint64Array(memory.buffer, tables, 512);
  }

  /** Makes these (seeded) gear tables the ones the kernel uses; a no-op when they already are. */
  useTables(gear: BigUint64Array, gearLs: BigUint64Array): void {
    if (this.#loadedGear === gear) return;
    this.#tables.set(gear, 0);
    this.#tables.set(gearLs, 256);
    this.#loadedGear = gear;
  }

  /**
   * Copies data[start, end) (at most WINDOW_SIZE bytes) into the input window; returns the address of
   * data[start] there. The copy starts 0–7 bytes into the window so that source and destination have the
   * same address modulo 8: V8 copies out of a SharedArrayBuffer with relaxed atomic word accesses, and when
   * the two addresses are not equally aligned it falls back to copying byte by byte (~4x slower, measured).
   * ArrayBuffer sources are copied with memmove either way.
   */
  load(data: Uint8Array, start: number, end: number): number {
    const at = this.input + ((data.byteOffset + start) & 7);
    this.#bytes.set(data.subarray(start, end), at);
    return at;
  }

  /** The address of data[0] when `data` lies in one of this kernel's scan buffers, else -1. */
  addressOf(data: Uint8Array): number {
    return this.#exposed.has(data.buffer) ? data.byteOffset : -1;
  }

  /**
   * `size` bytes of this kernel's memory for the caller alone until `release` (first fit among released
   * ones, else the memory grows; it never shrinks, so a long-lived process keeps its peak).
   */
  reserve(size: number): Uint8Array {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`scan buffer size ${size}`);
    const bytes = alignUp(size, SCAN_BUFFER_ALIGN);
    let start = -1;
    const fit = this.#free.findIndex((f) => f.end - f.start >= bytes);
    if (fit >= 0) {
      const range = this.#free[fit]!;
      start = range.start;
      range.start += bytes;
      if (range.start === range.end) this.#free.splice(fit, 1);
    } else {
      start = this.#top;
      this.#growTo(start + bytes);
      this.#top = start + bytes;
    }
    this.#reserved.set(start, bytes);
    const buffer = this.#memory.buffer;
    this.#exposed.add(buffer);
    return new Uint8Array(buffer, start, size);
  }

  /** Gives back a buffer from `reserve`; its bytes may be handed out again at once. */
  release(view: Uint8Array): void {
    const start = view.byteOffset;
    const bytes = this.#reserved.get(start);
    if (bytes === undefined || !this.#exposed.has(view.buffer)) {
      throw new Error('chunker kernel: release of a buffer that is not a reserved scan buffer');
    }
    this.#reserved.delete(start);
    const free = [...this.#free, { start, end: start + bytes }].sort((a, b) => a.start - b.start);
    const merged: Array<{ start: number; end: number }> = [];
    for (const f of free) {
      const last = merged.at(-1);
      if (last && last.end === f.start) last.end = f.end;
      else merged.push({ ...f });
    }
    if (merged.at(-1)?.end === this.#top) this.#top = merged.pop()!.start;
    this.#free = merged;
  }

  #growTo(bytes: number): void {
    const have = this.#memory.buffer.byteLength;
    if (bytes > MAX_PAGES * PAGE) throw new RangeError('chunker kernel: scan buffers exceed 4 GiB');
    if (bytes > have) this.#memory.grow(Math.ceil((bytes - have) / PAGE));
  }

  scan(p: number, norm: number, end: number, hash: bigint, maskS: bigint, maskL: bigint): number {
    return this.#exports.scan(p, norm, end, hash, maskS, maskL);
  }

  /** Size of the wasm memory: fixed once the kernel exists, except for scan buffers reserved. */
  get memoryBytes(): number {
    return this.#memory.buffer.byteLength;
  }

  /** Bytes the zero-run fast path has skipped in this thread so far (for tests). */
  get skippedBytes(): number {
    return this.#exports.skippedBytes();
  }

  lastHash(): bigint {
    return BigInt.asUintN(64, this.#exports.hash());
  }
}

let kernel: ScanKernel | undefined;

/** The thread's kernel, compiled and instantiated on first use (synchronously: the module is tiny). */
export function scanKernel(): ScanKernel {
  if (!kernel) {
    const bytes = Buffer.from(FASTCDC_WASM_BASE64, 'base64');
    const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    const memory = new wasm.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    const instance = new wasm.Instance(new wasm.Module(bytes), { env: { memory } });
    kernel = new ScanKernel(instance.exports as unknown as KernelExports, memory);
  }
  return kernel;
}

/** A region of this thread's chunker memory (see `allocateScanBuffer`). */
export interface ScanBuffer {
  /** A view of a SharedArrayBuffer: pushes of its subarrays are scanned in place. */
  readonly bytes: Uint8Array;
  /** Returns the region; neither `bytes` nor views of it may be used after this. */
  release(): void;
}

/**
 * `size` bytes inside this thread's chunker memory. A StreamingChunker scans a push that lies in one where it
 * is, instead of copying it into its window first; `bytes.buffer` is a SharedArrayBuffer that worker threads
 * can read. The memory never shrinks: release a buffer to have it reused.
 */
export function allocateScanBuffer(size: number): ScanBuffer {
  const k = scanKernel();
  const bytes = k.reserve(size);
  let released = false;
  return {
    bytes,
    release() {
      if (released) return;
      released = true;
      k.release(bytes);
    },
  };
}
