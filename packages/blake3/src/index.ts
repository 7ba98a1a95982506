// BLAKE3 over a WebAssembly SIMD128 kernel (assembly/index.ts, embedded by scripts/build-wasm.mjs).
//
// The kernel is instantiated on first use, once per thread (module state is per isolate, so every worker
// thread gets its own instance). Its memory is fixed (~74 KiB, it never grows): input is streamed through
// a 64 KiB slab, which also keeps the data the SIMD code reads in cache right after the copy.
import { BLAKE3_WASM_BASE64 } from './blake3.wasm.js';

export type HashInput = Uint8Array | readonly Uint8Array[];

const KEYED_HASH = 16;
const DERIVE_KEY_CONTEXT = 32;
const DERIVE_KEY_MATERIAL = 64;
const BLOCK_LEN = 64;

// The WebAssembly global is declared by lib.dom, not by the Node types: this is the part used here.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface KernelExports {
  memory: { readonly buffer: ArrayBuffer };
  inputPtr(): number;
  inputLen(): number;
  statePtr(): number;
  stateLen(): number;
  init(flags: number, useIv: number): void;
  update(len: number, more: number): void;
  finalize(): void;
  output(first: number, blocks: number): void;
  hashOnce(len: number, flags: number, useIv: number): void;
}

interface Kernel {
  k: KernelExports;
  mem: Uint8Array;
  input: number;
  inputLen: number;
  state: number;
  stateLen: number;
}

let kernel: Kernel | undefined;

function getKernel(): Kernel {
  if (kernel) return kernel;
  const bin = atob(BLAKE3_WASM_BASE64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  // Synchronous compile is fine for a ~5 KB module and keeps the API synchronous.
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
  const k = new wasm.Instance(new wasm.Module(bytes), {}).exports as KernelExports;
  kernel = {
    k,
    // The memory never grows, so this view stays valid.
    mem: new Uint8Array(k.memory.buffer),
    input: k.inputPtr(),
    inputLen: k.inputLen(),
    state: k.statePtr(),
    stateLen: k.stateLen(),
  };
  return kernel;
}

// The kernel holds one hasher state. Incremental hashers take turns: whoever uses the kernel next saves the
// previous owner's state into it first. One-shot calls own nothing (owner = undefined).
let owner: Blake3Hasher | undefined;
const SAVED = Symbol('saved');

function claim(kn: Kernel, next: Blake3Hasher | undefined): void {
  if (owner === next) return;
  if (owner) owner[SAVED] = kn.mem.slice(kn.state, kn.state + kn.stateLen);
  if (next) kn.mem.set(next[SAVED]!, kn.state);
  owner = next;
}

function checkOutLength(outLength: number): void {
  if (!Number.isSafeInteger(outLength) || outLength < 0) {
    throw new RangeError(`BLAKE3 output length must be a non-negative integer, got ${outLength}`);
  }
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== 32) {
    throw new RangeError(`BLAKE3 key must be a 32-byte Uint8Array, got ${key?.length} bytes`);
  }
}

/** Starts a hash in the kernel: key undefined means the IV (plain hash and derive-key context). */
function start(kn: Kernel, flags: number, key: Uint8Array | undefined): void {
  if (key) kn.mem.set(key, kn.state);
  kn.k.init(flags, key ? 0 : 1);
}

// V8 copies out of a SharedArrayBuffer an order of magnitude slower (≈ 3.6 against ≈ 27 GB/s here) when source
// and destination differ in alignment mod 8, and chunks start anywhere in the backup's shared read blocks. Such
// copies go through an aligned bounce buffer instead: two fast copies beat one slow one.
const SharedBuffer = globalThis.SharedArrayBuffer;
let bounce = new Uint8Array(0);

function copyIn(kn: Kernel, src: Uint8Array, at: number): void {
  const skew = src.byteOffset & 7;
  if (
    SharedBuffer === undefined ||
    !(src.buffer instanceof SharedBuffer) ||
    ((src.byteOffset - at) & 7) === 0
  ) {
    kn.mem.set(src, at);
    return;
  }
  if (bounce.length < src.length + 8) bounce = new Uint8Array(Math.max(src.length + 8, 64 * 1024 + 8));
  bounce.set(new Uint8Array(src.buffer, src.byteOffset - skew, src.length + skew), 0);
  kn.mem.set(bounce.subarray(skew, skew + src.length), at);
}

/** Streams `parts` through the input slab. The last slab is hashed with `more` = 0: nothing follows it yet. */
function feed(kn: Kernel, parts: readonly Uint8Array[]): void {
  const { k, input, inputLen } = kn;
  let fill = 0;
  for (const part of parts) {
    let at = 0;
    while (at < part.length) {
      // A full slab is hashed only once we know more bytes follow: `more` lets its last chunk go wide.
      if (fill === inputLen) {
        k.update(fill, 1);
        fill = 0;
      }
      const n = Math.min(inputLen - fill, part.length - at);
      copyIn(kn, n === part.length ? part : part.subarray(at, at + n), input + fill);
      fill += n;
      at += n;
    }
  }
  k.update(fill, 0);
}

/** Squeezes `outLength` bytes of root output (after finalize()). */
function squeeze(kn: Kernel, outLength: number): Uint8Array {
  const { k, mem, input, inputLen } = kn;
  const out = new Uint8Array(outLength);
  const maxBlocks = inputLen / BLOCK_LEN;
  for (let done = 0; done < outLength; ) {
    const blocks = Math.min(maxBlocks, Math.ceil((outLength - done) / BLOCK_LEN));
    k.output(done / BLOCK_LEN, blocks);
    const n = Math.min(blocks * BLOCK_LEN, outLength - done);
    out.set(mem.subarray(input, input + n), done);
    done += n;
  }
  return out;
}

function hash(input: HashInput, flags: number, key: Uint8Array | undefined, outLength: number): Uint8Array {
  checkOutLength(outLength);
  const kn = getKernel();
  claim(kn, undefined);
  // Fast path for one buffer that fits the slab and a standard-size output: a single call into WASM.
  if (input instanceof Uint8Array && input.length <= kn.inputLen && outLength <= BLOCK_LEN) {
    if (key) kn.mem.set(key, kn.state);
    kn.mem.set(input, kn.input);
    kn.k.hashOnce(input.length, flags, key ? 0 : 1);
    return kn.mem.slice(kn.input, kn.input + outLength);
  }
  start(kn, flags, key);
  feed(kn, input instanceof Uint8Array ? [input] : input);
  kn.k.finalize();
  return squeeze(kn, outLength);
}

/** BLAKE3 hash of `input` (parts are hashed as their concatenation). */
export function blake3(input: HashInput, outLength = 32): Uint8Array {
  return hash(input, 0, undefined, outLength);
}

/** BLAKE3 keyed hash; `key` must be 32 bytes. */
export function blake3Keyed(key: Uint8Array, input: HashInput, outLength = 32): Uint8Array {
  checkKey(key);
  return hash(input, KEYED_HASH, key, outLength);
}

function contextKey(context: string): Uint8Array {
  return hash(new TextEncoder().encode(context), DERIVE_KEY_CONTEXT, undefined, 32);
}

/** BLAKE3 derive_key mode: `context` is a hard-coded, globally unique, application-specific string. */
export function blake3DeriveKey(context: string, material: Uint8Array, outLength = 32): Uint8Array {
  return hash(material, DERIVE_KEY_MATERIAL, contextKey(context), outLength);
}

/**
 * Incremental BLAKE3: `update()` any number of times, `digest()` at any point (it does not end the hash).
 * Many hashers may be live at once; switching between them costs a ~2 KB state copy.
 */
export class Blake3Hasher {
  /** Kernel state while another hasher (or a one-shot call) is using the kernel. */
  [SAVED]: Uint8Array | undefined;

  private constructor(flags: number, key: Uint8Array | undefined) {
    const kn = getKernel();
    claim(kn, undefined);
    start(kn, flags, key);
    this[SAVED] = kn.mem.slice(kn.state, kn.state + kn.stateLen);
  }

  /** A plain BLAKE3 hasher. */
  static create(): Blake3Hasher {
    return new Blake3Hasher(0, undefined);
  }

  /** A keyed-hash hasher; `key` must be 32 bytes. */
  static keyed(key: Uint8Array): Blake3Hasher {
    checkKey(key);
    return new Blake3Hasher(KEYED_HASH, key);
  }

  /** A derive_key hasher for key material fed through `update()`. */
  static deriveKey(context: string): Blake3Hasher {
    return new Blake3Hasher(DERIVE_KEY_MATERIAL, contextKey(context));
  }

  update(input: HashInput): this {
    const kn = getKernel();
    claim(kn, this);
    feed(kn, input instanceof Uint8Array ? [input] : input);
    return this;
  }

  /** The hash of everything so far; the hasher stays usable. */
  digest(outLength = 32): Uint8Array {
    checkOutLength(outLength);
    const kn = getKernel();
    claim(kn, this);
    kn.k.finalize();
    return squeeze(kn, outLength);
  }
}
