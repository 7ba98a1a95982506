import { FASTCDC_WASM_BASE64 } from './fastcdc.wasm.js';

// The WebAssembly global is not declared by the Node types alone (it lives in lib.dom); this is the part used.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface KernelExports {
  readonly memory: WasmMemory;
  tablesOffset(): number;
  heapBase(): number;
  scan(p: number, norm: number, end: number, hash: bigint, maskS: bigint, maskL: bigint): number;
  hash(): bigint;
  skippedBytes(): number;
}

/** Bytes of input copied into wasm memory at a time: large enough to amortise calls, small enough for L2. */
export const WINDOW_SIZE = 1 << 20;

/**
 * One instance of the scan kernel per thread (module state is per thread, so worker_threads each get theirs).
 * It owns a fixed input window; callers copy at most WINDOW_SIZE bytes in, then scan them.
 */
export class ScanKernel {
  readonly #exports: KernelExports;
  readonly #bytes: Uint8Array;
  readonly #tables: BigUint64Array;
  /** Address of the input window in wasm memory (WINDOW_SIZE + 8 bytes: see `load`). */
  readonly input: number;
  #loadedGear: BigUint64Array | undefined;

  constructor(exports: KernelExports) {
    this.#exports = exports;
    const tables = exports.tablesOffset();
    if (exports.heapBase() > tables) throw new Error('chunker kernel: static data overlaps the gear tables');
    this.input = tables + 4096;
    const needed = this.input + WINDOW_SIZE + 8;
    const have = exports.memory.buffer.byteLength;
    if (needed > have) exports.memory.grow(Math.ceil((needed - have) / 65536));
    this.#bytes = new Uint8Array(exports.memory.buffer);
    this.#tables = new BigUint64Array(exports.memory.buffer, tables, 512);
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

  scan(p: number, norm: number, end: number, hash: bigint, maskS: bigint, maskL: bigint): number {
    return this.#exports.scan(p, norm, end, hash, maskS, maskL);
  }

  /** Size of the wasm memory: fixed once the kernel exists, whatever the push sizes. */
  get memoryBytes(): number {
    return this.#exports.memory.buffer.byteLength;
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
    const instance = new wasm.Instance(new wasm.Module(bytes), {});
    kernel = new ScanKernel(instance.exports as unknown as KernelExports);
  }
  return kernel;
}
