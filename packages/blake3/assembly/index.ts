// BLAKE3 kernel for @stowage/blake3, compiled by scripts/build-wasm.mjs (AssemblyScript, SIMD128).
//
// The module owns one hasher whose whole state lives in the STATE block of linear memory, so JS can save
// and restore it with a plain byte copy (that is how several incremental hashers share one instance).
// JS copies input into INPUT in slabs of at most INPUT_LEN bytes and calls update(); nothing here allocates.
//
// Speed comes from hash4(): four independent compressions in the four i32 lanes of v128 registers
// (the "hash_many" layout of the reference SSE4.1 code), used for four chunks at once and for four parent
// nodes at once. The scalar compress() only handles partial chunks, the CV-stack merges and the root.

const CHUNK_LEN: u32 = 1024;
const BLOCK_LEN: u32 = 64;
const CHUNK_START: u32 = 1;
const CHUNK_END: u32 = 2;
const PARENT: u32 = 4;
const ROOT: u32 = 8;

// Slab size: 64 chunks. Big enough that per-call overhead vanishes, small enough to stay in L2.
const INPUT_LEN: u32 = 65536;
const MAX_DEPTH: u32 = 54; // 2^54 chunks = 2^64 bytes

const IV: usize = memory.data<u32>([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);


// Input slab plus 3 KiB of slack: hash4() on a 1- or 2-chunk subtree at the end of the slab reads (and
// ignores) up to three chunks past it.
const INPUT: usize = memory.data(INPUT_LEN + 3 * CHUNK_LEN, 64);
// Chaining values of one subtree of up to 64 chunks, reduced in place level by level.
const CVS: usize = memory.data((INPUT_LEN / CHUNK_LEN) * 32, 64);
// The 16 transposed message vectors of the block hash4() is working on.
const MSG: usize = memory.data(256, 64);

// Hasher state, contiguous so JS can snapshot it.
const STATE_LEN: u32 = 160 + MAX_DEPTH * 32;
const STATE: usize = memory.data(STATE_LEN, 64);
const S_KEY: usize = STATE; // 8 key words (IV for plain hashing)
const S_CV: usize = STATE + 32; // chaining value of the current chunk
const S_BLOCK: usize = STATE + 64; // partial block of the current chunk
const S_COUNTER: usize = STATE + 128; // u64 index of the current chunk
const S_BLOCK_LEN: usize = STATE + 136;
const S_BLOCKS_DONE: usize = STATE + 140; // blocks of the current chunk already compressed
const S_FLAGS: usize = STATE + 144; // mode flags: keyed hash / derive key
const S_STACK_LEN: usize = STATE + 148;
const S_STACK: usize = STATE + 160; // CV stack, MAX_DEPTH entries

// The root "output" computed by finalize(); output() squeezes it (extendable output).
const O_CV: usize = memory.data(32, 16);
const O_BLOCK: usize = memory.data(64, 16);
const O_TMP: usize = memory.data(64, 16);
let oBlockLen: u32 = 0;
let oFlags: u32 = 0;

export function inputPtr(): usize {
  return INPUT;
}
export function inputLen(): u32 {
  return INPUT_LEN;
}
export function statePtr(): usize {
  return STATE;
}
export function stateLen(): u32 {
  return STATE_LEN;
}

// ---------------------------------------------------------------------------------------------------------
// Scalar compression: one block. Writes 8 words (chaining value) or, with xof, all 16 output words.

function compress(
  cv: usize,
  block: usize,
  counter: u64,
  blockLen: u32,
  flags: u32,
  out: usize,
  xof: bool,
): void {
  const h0 = load<u32>(cv, 0);
  const h1 = load<u32>(cv, 4);
  const h2 = load<u32>(cv, 8);
  const h3 = load<u32>(cv, 12);
  const h4 = load<u32>(cv, 16);
  const h5 = load<u32>(cv, 20);
  const h6 = load<u32>(cv, 24);
  const h7 = load<u32>(cv, 28);
  let v0 = h0;
  let v1 = h1;
  let v2 = h2;
  let v3 = h3;
  let v4 = h4;
  let v5 = h5;
  let v6 = h6;
  let v7 = h7;
  let v8 = load<u32>(IV, 0);
  let v9 = load<u32>(IV, 4);
  let v10 = load<u32>(IV, 8);
  let v11 = load<u32>(IV, 12);
  let v12 = <u32>counter;
  let v13 = <u32>(counter >> 32);
  let v14 = blockLen;
  let v15 = flags;
  // Message words are read straight from memory in each round's order, so only the 16 state words compete
  // for registers (the block is read in full before `out`, which may alias it, is written).
  // Round 0.
  v0 += v4 + load<u32>(block, 0); v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + load<u32>(block, 4); v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5 + load<u32>(block, 8); v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + load<u32>(block, 12); v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6 + load<u32>(block, 16); v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6 + load<u32>(block, 20); v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + load<u32>(block, 24); v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7 + load<u32>(block, 28); v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + load<u32>(block, 32); v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + load<u32>(block, 36); v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6 + load<u32>(block, 40); v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6 + load<u32>(block, 44); v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7 + load<u32>(block, 48); v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + load<u32>(block, 52); v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4 + load<u32>(block, 56); v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4 + load<u32>(block, 60); v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // Round 1.
  v0 += v4 + load<u32>(block, 8); v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + load<u32>(block, 24); v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5 + load<u32>(block, 12); v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + load<u32>(block, 40); v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6 + load<u32>(block, 28); v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6 + load<u32>(block, 0); v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + load<u32>(block, 16); v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7 + load<u32>(block, 52); v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + load<u32>(block, 4); v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + load<u32>(block, 44); v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6 + load<u32>(block, 48); v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6 + load<u32>(block, 20); v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7 + load<u32>(block, 36); v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + load<u32>(block, 56); v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4 + load<u32>(block, 60); v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4 + load<u32>(block, 32); v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // Round 2.
  v0 += v4 + load<u32>(block, 12); v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + load<u32>(block, 16); v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5 + load<u32>(block, 40); v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + load<u32>(block, 48); v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6 + load<u32>(block, 52); v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6 + load<u32>(block, 8); v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + load<u32>(block, 28); v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7 + load<u32>(block, 56); v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + load<u32>(block, 24); v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + load<u32>(block, 20); v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6 + load<u32>(block, 36); v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6 + load<u32>(block, 0); v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7 + load<u32>(block, 44); v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + load<u32>(block, 60); v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4 + load<u32>(block, 32); v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4 + load<u32>(block, 4); v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // Round 3.
  v0 += v4 + load<u32>(block, 40); v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + load<u32>(block, 28); v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5 + load<u32>(block, 48); v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + load<u32>(block, 36); v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6 + load<u32>(block, 56); v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6 + load<u32>(block, 12); v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + load<u32>(block, 52); v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7 + load<u32>(block, 60); v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + load<u32>(block, 16); v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + load<u32>(block, 0); v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6 + load<u32>(block, 44); v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6 + load<u32>(block, 8); v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7 + load<u32>(block, 20); v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + load<u32>(block, 32); v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4 + load<u32>(block, 4); v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4 + load<u32>(block, 24); v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // Round 4.
  v0 += v4 + load<u32>(block, 48); v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + load<u32>(block, 52); v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5 + load<u32>(block, 36); v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + load<u32>(block, 44); v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6 + load<u32>(block, 60); v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6 + load<u32>(block, 40); v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + load<u32>(block, 56); v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7 + load<u32>(block, 32); v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + load<u32>(block, 28); v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + load<u32>(block, 8); v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6 + load<u32>(block, 20); v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6 + load<u32>(block, 12); v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7 + load<u32>(block, 0); v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + load<u32>(block, 4); v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4 + load<u32>(block, 24); v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4 + load<u32>(block, 16); v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // Round 5.
  v0 += v4 + load<u32>(block, 36); v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + load<u32>(block, 56); v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5 + load<u32>(block, 44); v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + load<u32>(block, 20); v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6 + load<u32>(block, 32); v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6 + load<u32>(block, 48); v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + load<u32>(block, 60); v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7 + load<u32>(block, 4); v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + load<u32>(block, 52); v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + load<u32>(block, 12); v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6 + load<u32>(block, 0); v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6 + load<u32>(block, 40); v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7 + load<u32>(block, 8); v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + load<u32>(block, 24); v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4 + load<u32>(block, 16); v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4 + load<u32>(block, 28); v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  // Round 6.
  v0 += v4 + load<u32>(block, 44); v12 = rotr<u32>(v12 ^ v0, 16); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 12);
  v0 += v4 + load<u32>(block, 60); v12 = rotr<u32>(v12 ^ v0, 8); v8 += v12; v4 = rotr<u32>(v4 ^ v8, 7);
  v1 += v5 + load<u32>(block, 20); v13 = rotr<u32>(v13 ^ v1, 16); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 12);
  v1 += v5 + load<u32>(block, 0); v13 = rotr<u32>(v13 ^ v1, 8); v9 += v13; v5 = rotr<u32>(v5 ^ v9, 7);
  v2 += v6 + load<u32>(block, 4); v14 = rotr<u32>(v14 ^ v2, 16); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 12);
  v2 += v6 + load<u32>(block, 36); v14 = rotr<u32>(v14 ^ v2, 8); v10 += v14; v6 = rotr<u32>(v6 ^ v10, 7);
  v3 += v7 + load<u32>(block, 32); v15 = rotr<u32>(v15 ^ v3, 16); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 12);
  v3 += v7 + load<u32>(block, 24); v15 = rotr<u32>(v15 ^ v3, 8); v11 += v15; v7 = rotr<u32>(v7 ^ v11, 7);
  v0 += v5 + load<u32>(block, 56); v15 = rotr<u32>(v15 ^ v0, 16); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 12);
  v0 += v5 + load<u32>(block, 40); v15 = rotr<u32>(v15 ^ v0, 8); v10 += v15; v5 = rotr<u32>(v5 ^ v10, 7);
  v1 += v6 + load<u32>(block, 8); v12 = rotr<u32>(v12 ^ v1, 16); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 12);
  v1 += v6 + load<u32>(block, 48); v12 = rotr<u32>(v12 ^ v1, 8); v11 += v12; v6 = rotr<u32>(v6 ^ v11, 7);
  v2 += v7 + load<u32>(block, 12); v13 = rotr<u32>(v13 ^ v2, 16); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 12);
  v2 += v7 + load<u32>(block, 16); v13 = rotr<u32>(v13 ^ v2, 8); v8 += v13; v7 = rotr<u32>(v7 ^ v8, 7);
  v3 += v4 + load<u32>(block, 28); v14 = rotr<u32>(v14 ^ v3, 16); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 12);
  v3 += v4 + load<u32>(block, 52); v14 = rotr<u32>(v14 ^ v3, 8); v9 += v14; v4 = rotr<u32>(v4 ^ v9, 7);
  if (xof) {
    store<u32>(out, v8 ^ h0, 32);
    store<u32>(out, v9 ^ h1, 36);
    store<u32>(out, v10 ^ h2, 40);
    store<u32>(out, v11 ^ h3, 44);
    store<u32>(out, v12 ^ h4, 48);
    store<u32>(out, v13 ^ h5, 52);
    store<u32>(out, v14 ^ h6, 56);
    store<u32>(out, v15 ^ h7, 60);
  }
  store<u32>(out, v0 ^ v8, 0);
  store<u32>(out, v1 ^ v9, 4);
  store<u32>(out, v2 ^ v10, 8);
  store<u32>(out, v3 ^ v11, 12);
  store<u32>(out, v4 ^ v12, 16);
  store<u32>(out, v5 ^ v13, 20);
  store<u32>(out, v6 ^ v14, 24);
  store<u32>(out, v7 ^ v15, 28);
}

// ---------------------------------------------------------------------------------------------------------
// SIMD: four independent inputs, one per i32 lane.

// A 16-bit rotation is a word swap: V8 emits pshuflw + pshufhw, no constant needed.
// @ts-ignore: decorator
@inline
function rot16(x: v128): v128 {
  return i8x16.shuffle(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
}
// Shifts, not a byte shuffle: V8 rebuilds pshufb's mask constant on every use, which costs more.
// @ts-ignore: decorator
@inline
function rot8(x: v128): v128 {
  return v128.or(i32x4.shr_u(x, 8), i32x4.shl(x, 24));
}
// @ts-ignore: decorator
@inline
function add3(a: v128, b: v128, c: v128): v128 {
  return i32x4.add(i32x4.add(a, b), c);
}
// @ts-ignore: decorator
@inline
function rot12(x: v128): v128 {
  return v128.or(i32x4.shr_u(x, 12), i32x4.shl(x, 20));
}
// @ts-ignore: decorator
@inline
function rot7(x: v128): v128 {
  return v128.or(i32x4.shr_u(x, 7), i32x4.shl(x, 25));
}

// Transposes rows a..d (four words of each lane) into column vectors stored at dst.
// @ts-ignore: decorator
@inline
function transposeStore(a: v128, b: v128, c: v128, d: v128, dst: usize, stride: usize): void {
  const ab01 = v128.shuffle<i32>(a, b, 0, 4, 1, 5);
  const ab23 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
  const cd01 = v128.shuffle<i32>(c, d, 0, 4, 1, 5);
  const cd23 = v128.shuffle<i32>(c, d, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<i64>(ab01, cd01, 0, 2));
  v128.store(dst + stride, v128.shuffle<i64>(ab01, cd01, 1, 3));
  v128.store(dst + 2 * stride, v128.shuffle<i64>(ab23, cd23, 0, 2));
  v128.store(dst + 3 * stride, v128.shuffle<i64>(ab23, cd23, 1, 3));
}

/**
 * Hashes four inputs of `blocks` blocks each, lane i reading `input + i * stride`, with the key from STATE
 * and counters `counter + i * counterStep`. Writes four 32-byte chaining values contiguously at `out`.
 * Every message word is loaded before anything is stored, so `out` may overlap `input` (in-place reduction).
 */
function hash4(
  input: usize,
  stride: usize,
  blocks: u32,
  counter: u64,
  counterStep: u64,
  flags: u32,
  flagsStart: u32,
  flagsEnd: u32,
  out: usize,
): void {
  let h0 = i32x4.splat(load<u32>(S_KEY, 0));
  let h1 = i32x4.splat(load<u32>(S_KEY, 4));
  let h2 = i32x4.splat(load<u32>(S_KEY, 8));
  let h3 = i32x4.splat(load<u32>(S_KEY, 12));
  let h4 = i32x4.splat(load<u32>(S_KEY, 16));
  let h5 = i32x4.splat(load<u32>(S_KEY, 20));
  let h6 = i32x4.splat(load<u32>(S_KEY, 24));
  let h7 = i32x4.splat(load<u32>(S_KEY, 28));
  const c1 = counter + counterStep;
  const c2 = c1 + counterStep;
  const c3 = c2 + counterStep;
  const ctrLo = i32x4(<i32>counter, <i32>c1, <i32>c2, <i32>c3);
  const ctrHi = i32x4(<i32>(counter >> 32), <i32>(c1 >> 32), <i32>(c2 >> 32), <i32>(c3 >> 32));
  const blockLen = i32x4.splat(BLOCK_LEN);
  const iv0 = i32x4.splat(load<u32>(IV, 0));
  const iv1 = i32x4.splat(load<u32>(IV, 4));
  const iv2 = i32x4.splat(load<u32>(IV, 8));
  const iv3 = i32x4.splat(load<u32>(IV, 12));
  const in1 = input + stride;
  const in2 = in1 + stride;
  const in3 = in2 + stride;
  for (let b: u32 = 0; b < blocks; b++) {
    const off: usize = <usize>b * BLOCK_LEN;
    for (let q: usize = 0; q < 64; q += 16) {
      transposeStore(
        v128.load(input + off + q),
        v128.load(in1 + off + q),
        v128.load(in2 + off + q),
        v128.load(in3 + off + q),
        MSG + q * 4,
        16,
      );
    }
    let blockFlags = flags;
    if (b == 0) blockFlags |= flagsStart;
    if (b + 1 == blocks) blockFlags |= flagsEnd;
    let v0 = h0;
    let v1 = h1;
    let v2 = h2;
    let v3 = h3;
    let v4 = h4;
    let v5 = h5;
    let v6 = h6;
    let v7 = h7;
    let v8 = iv0;
    let v9 = iv1;
    let v10 = iv2;
    let v11 = iv3;
    let v12 = ctrLo;
    let v13 = ctrHi;
    let v14 = blockLen;
    let v15 = i32x4.splat(blockFlags);
    // Round 0: message words 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15.
    v0 = add3(v0, v4, v128.load(MSG, 0)); v12 = rot16(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot12(v128.xor(v4, v8));
    v0 = add3(v0, v4, v128.load(MSG, 16)); v12 = rot8(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot7(v128.xor(v4, v8));
    v1 = add3(v1, v5, v128.load(MSG, 32)); v13 = rot16(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot12(v128.xor(v5, v9));
    v1 = add3(v1, v5, v128.load(MSG, 48)); v13 = rot8(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot7(v128.xor(v5, v9));
    v2 = add3(v2, v6, v128.load(MSG, 64)); v14 = rot16(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot12(v128.xor(v6, v10));
    v2 = add3(v2, v6, v128.load(MSG, 80)); v14 = rot8(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot7(v128.xor(v6, v10));
    v3 = add3(v3, v7, v128.load(MSG, 96)); v15 = rot16(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot12(v128.xor(v7, v11));
    v3 = add3(v3, v7, v128.load(MSG, 112)); v15 = rot8(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot7(v128.xor(v7, v11));
    v0 = add3(v0, v5, v128.load(MSG, 128)); v15 = rot16(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot12(v128.xor(v5, v10));
    v0 = add3(v0, v5, v128.load(MSG, 144)); v15 = rot8(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot7(v128.xor(v5, v10));
    v1 = add3(v1, v6, v128.load(MSG, 160)); v12 = rot16(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot12(v128.xor(v6, v11));
    v1 = add3(v1, v6, v128.load(MSG, 176)); v12 = rot8(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot7(v128.xor(v6, v11));
    v2 = add3(v2, v7, v128.load(MSG, 192)); v13 = rot16(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot12(v128.xor(v7, v8));
    v2 = add3(v2, v7, v128.load(MSG, 208)); v13 = rot8(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot7(v128.xor(v7, v8));
    v3 = add3(v3, v4, v128.load(MSG, 224)); v14 = rot16(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot12(v128.xor(v4, v9));
    v3 = add3(v3, v4, v128.load(MSG, 240)); v14 = rot8(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot7(v128.xor(v4, v9));
    // Round 1: message words 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8.
    v0 = add3(v0, v4, v128.load(MSG, 32)); v12 = rot16(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot12(v128.xor(v4, v8));
    v0 = add3(v0, v4, v128.load(MSG, 96)); v12 = rot8(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot7(v128.xor(v4, v8));
    v1 = add3(v1, v5, v128.load(MSG, 48)); v13 = rot16(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot12(v128.xor(v5, v9));
    v1 = add3(v1, v5, v128.load(MSG, 160)); v13 = rot8(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot7(v128.xor(v5, v9));
    v2 = add3(v2, v6, v128.load(MSG, 112)); v14 = rot16(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot12(v128.xor(v6, v10));
    v2 = add3(v2, v6, v128.load(MSG, 0)); v14 = rot8(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot7(v128.xor(v6, v10));
    v3 = add3(v3, v7, v128.load(MSG, 64)); v15 = rot16(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot12(v128.xor(v7, v11));
    v3 = add3(v3, v7, v128.load(MSG, 208)); v15 = rot8(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot7(v128.xor(v7, v11));
    v0 = add3(v0, v5, v128.load(MSG, 16)); v15 = rot16(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot12(v128.xor(v5, v10));
    v0 = add3(v0, v5, v128.load(MSG, 176)); v15 = rot8(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot7(v128.xor(v5, v10));
    v1 = add3(v1, v6, v128.load(MSG, 192)); v12 = rot16(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot12(v128.xor(v6, v11));
    v1 = add3(v1, v6, v128.load(MSG, 80)); v12 = rot8(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot7(v128.xor(v6, v11));
    v2 = add3(v2, v7, v128.load(MSG, 144)); v13 = rot16(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot12(v128.xor(v7, v8));
    v2 = add3(v2, v7, v128.load(MSG, 224)); v13 = rot8(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot7(v128.xor(v7, v8));
    v3 = add3(v3, v4, v128.load(MSG, 240)); v14 = rot16(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot12(v128.xor(v4, v9));
    v3 = add3(v3, v4, v128.load(MSG, 128)); v14 = rot8(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot7(v128.xor(v4, v9));
    // Round 2: message words 3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1.
    v0 = add3(v0, v4, v128.load(MSG, 48)); v12 = rot16(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot12(v128.xor(v4, v8));
    v0 = add3(v0, v4, v128.load(MSG, 64)); v12 = rot8(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot7(v128.xor(v4, v8));
    v1 = add3(v1, v5, v128.load(MSG, 160)); v13 = rot16(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot12(v128.xor(v5, v9));
    v1 = add3(v1, v5, v128.load(MSG, 192)); v13 = rot8(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot7(v128.xor(v5, v9));
    v2 = add3(v2, v6, v128.load(MSG, 208)); v14 = rot16(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot12(v128.xor(v6, v10));
    v2 = add3(v2, v6, v128.load(MSG, 32)); v14 = rot8(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot7(v128.xor(v6, v10));
    v3 = add3(v3, v7, v128.load(MSG, 112)); v15 = rot16(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot12(v128.xor(v7, v11));
    v3 = add3(v3, v7, v128.load(MSG, 224)); v15 = rot8(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot7(v128.xor(v7, v11));
    v0 = add3(v0, v5, v128.load(MSG, 96)); v15 = rot16(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot12(v128.xor(v5, v10));
    v0 = add3(v0, v5, v128.load(MSG, 80)); v15 = rot8(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot7(v128.xor(v5, v10));
    v1 = add3(v1, v6, v128.load(MSG, 144)); v12 = rot16(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot12(v128.xor(v6, v11));
    v1 = add3(v1, v6, v128.load(MSG, 0)); v12 = rot8(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot7(v128.xor(v6, v11));
    v2 = add3(v2, v7, v128.load(MSG, 176)); v13 = rot16(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot12(v128.xor(v7, v8));
    v2 = add3(v2, v7, v128.load(MSG, 240)); v13 = rot8(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot7(v128.xor(v7, v8));
    v3 = add3(v3, v4, v128.load(MSG, 128)); v14 = rot16(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot12(v128.xor(v4, v9));
    v3 = add3(v3, v4, v128.load(MSG, 16)); v14 = rot8(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot7(v128.xor(v4, v9));
    // Round 3: message words 10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6.
    v0 = add3(v0, v4, v128.load(MSG, 160)); v12 = rot16(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot12(v128.xor(v4, v8));
    v0 = add3(v0, v4, v128.load(MSG, 112)); v12 = rot8(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot7(v128.xor(v4, v8));
    v1 = add3(v1, v5, v128.load(MSG, 192)); v13 = rot16(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot12(v128.xor(v5, v9));
    v1 = add3(v1, v5, v128.load(MSG, 144)); v13 = rot8(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot7(v128.xor(v5, v9));
    v2 = add3(v2, v6, v128.load(MSG, 224)); v14 = rot16(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot12(v128.xor(v6, v10));
    v2 = add3(v2, v6, v128.load(MSG, 48)); v14 = rot8(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot7(v128.xor(v6, v10));
    v3 = add3(v3, v7, v128.load(MSG, 208)); v15 = rot16(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot12(v128.xor(v7, v11));
    v3 = add3(v3, v7, v128.load(MSG, 240)); v15 = rot8(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot7(v128.xor(v7, v11));
    v0 = add3(v0, v5, v128.load(MSG, 64)); v15 = rot16(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot12(v128.xor(v5, v10));
    v0 = add3(v0, v5, v128.load(MSG, 0)); v15 = rot8(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot7(v128.xor(v5, v10));
    v1 = add3(v1, v6, v128.load(MSG, 176)); v12 = rot16(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot12(v128.xor(v6, v11));
    v1 = add3(v1, v6, v128.load(MSG, 32)); v12 = rot8(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot7(v128.xor(v6, v11));
    v2 = add3(v2, v7, v128.load(MSG, 80)); v13 = rot16(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot12(v128.xor(v7, v8));
    v2 = add3(v2, v7, v128.load(MSG, 128)); v13 = rot8(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot7(v128.xor(v7, v8));
    v3 = add3(v3, v4, v128.load(MSG, 16)); v14 = rot16(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot12(v128.xor(v4, v9));
    v3 = add3(v3, v4, v128.load(MSG, 96)); v14 = rot8(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot7(v128.xor(v4, v9));
    // Round 4: message words 12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4.
    v0 = add3(v0, v4, v128.load(MSG, 192)); v12 = rot16(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot12(v128.xor(v4, v8));
    v0 = add3(v0, v4, v128.load(MSG, 208)); v12 = rot8(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot7(v128.xor(v4, v8));
    v1 = add3(v1, v5, v128.load(MSG, 144)); v13 = rot16(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot12(v128.xor(v5, v9));
    v1 = add3(v1, v5, v128.load(MSG, 176)); v13 = rot8(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot7(v128.xor(v5, v9));
    v2 = add3(v2, v6, v128.load(MSG, 240)); v14 = rot16(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot12(v128.xor(v6, v10));
    v2 = add3(v2, v6, v128.load(MSG, 160)); v14 = rot8(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot7(v128.xor(v6, v10));
    v3 = add3(v3, v7, v128.load(MSG, 224)); v15 = rot16(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot12(v128.xor(v7, v11));
    v3 = add3(v3, v7, v128.load(MSG, 128)); v15 = rot8(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot7(v128.xor(v7, v11));
    v0 = add3(v0, v5, v128.load(MSG, 112)); v15 = rot16(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot12(v128.xor(v5, v10));
    v0 = add3(v0, v5, v128.load(MSG, 32)); v15 = rot8(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot7(v128.xor(v5, v10));
    v1 = add3(v1, v6, v128.load(MSG, 80)); v12 = rot16(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot12(v128.xor(v6, v11));
    v1 = add3(v1, v6, v128.load(MSG, 48)); v12 = rot8(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot7(v128.xor(v6, v11));
    v2 = add3(v2, v7, v128.load(MSG, 0)); v13 = rot16(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot12(v128.xor(v7, v8));
    v2 = add3(v2, v7, v128.load(MSG, 16)); v13 = rot8(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot7(v128.xor(v7, v8));
    v3 = add3(v3, v4, v128.load(MSG, 96)); v14 = rot16(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot12(v128.xor(v4, v9));
    v3 = add3(v3, v4, v128.load(MSG, 64)); v14 = rot8(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot7(v128.xor(v4, v9));
    // Round 5: message words 9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7.
    v0 = add3(v0, v4, v128.load(MSG, 144)); v12 = rot16(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot12(v128.xor(v4, v8));
    v0 = add3(v0, v4, v128.load(MSG, 224)); v12 = rot8(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot7(v128.xor(v4, v8));
    v1 = add3(v1, v5, v128.load(MSG, 176)); v13 = rot16(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot12(v128.xor(v5, v9));
    v1 = add3(v1, v5, v128.load(MSG, 80)); v13 = rot8(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot7(v128.xor(v5, v9));
    v2 = add3(v2, v6, v128.load(MSG, 128)); v14 = rot16(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot12(v128.xor(v6, v10));
    v2 = add3(v2, v6, v128.load(MSG, 192)); v14 = rot8(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot7(v128.xor(v6, v10));
    v3 = add3(v3, v7, v128.load(MSG, 240)); v15 = rot16(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot12(v128.xor(v7, v11));
    v3 = add3(v3, v7, v128.load(MSG, 16)); v15 = rot8(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot7(v128.xor(v7, v11));
    v0 = add3(v0, v5, v128.load(MSG, 208)); v15 = rot16(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot12(v128.xor(v5, v10));
    v0 = add3(v0, v5, v128.load(MSG, 48)); v15 = rot8(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot7(v128.xor(v5, v10));
    v1 = add3(v1, v6, v128.load(MSG, 0)); v12 = rot16(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot12(v128.xor(v6, v11));
    v1 = add3(v1, v6, v128.load(MSG, 160)); v12 = rot8(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot7(v128.xor(v6, v11));
    v2 = add3(v2, v7, v128.load(MSG, 32)); v13 = rot16(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot12(v128.xor(v7, v8));
    v2 = add3(v2, v7, v128.load(MSG, 96)); v13 = rot8(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot7(v128.xor(v7, v8));
    v3 = add3(v3, v4, v128.load(MSG, 64)); v14 = rot16(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot12(v128.xor(v4, v9));
    v3 = add3(v3, v4, v128.load(MSG, 112)); v14 = rot8(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot7(v128.xor(v4, v9));
    // Round 6: message words 11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13.
    v0 = add3(v0, v4, v128.load(MSG, 176)); v12 = rot16(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot12(v128.xor(v4, v8));
    v0 = add3(v0, v4, v128.load(MSG, 240)); v12 = rot8(v128.xor(v12, v0)); v8 = i32x4.add(v8, v12); v4 = rot7(v128.xor(v4, v8));
    v1 = add3(v1, v5, v128.load(MSG, 80)); v13 = rot16(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot12(v128.xor(v5, v9));
    v1 = add3(v1, v5, v128.load(MSG, 0)); v13 = rot8(v128.xor(v13, v1)); v9 = i32x4.add(v9, v13); v5 = rot7(v128.xor(v5, v9));
    v2 = add3(v2, v6, v128.load(MSG, 16)); v14 = rot16(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot12(v128.xor(v6, v10));
    v2 = add3(v2, v6, v128.load(MSG, 144)); v14 = rot8(v128.xor(v14, v2)); v10 = i32x4.add(v10, v14); v6 = rot7(v128.xor(v6, v10));
    v3 = add3(v3, v7, v128.load(MSG, 128)); v15 = rot16(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot12(v128.xor(v7, v11));
    v3 = add3(v3, v7, v128.load(MSG, 96)); v15 = rot8(v128.xor(v15, v3)); v11 = i32x4.add(v11, v15); v7 = rot7(v128.xor(v7, v11));
    v0 = add3(v0, v5, v128.load(MSG, 224)); v15 = rot16(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot12(v128.xor(v5, v10));
    v0 = add3(v0, v5, v128.load(MSG, 160)); v15 = rot8(v128.xor(v15, v0)); v10 = i32x4.add(v10, v15); v5 = rot7(v128.xor(v5, v10));
    v1 = add3(v1, v6, v128.load(MSG, 32)); v12 = rot16(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot12(v128.xor(v6, v11));
    v1 = add3(v1, v6, v128.load(MSG, 192)); v12 = rot8(v128.xor(v12, v1)); v11 = i32x4.add(v11, v12); v6 = rot7(v128.xor(v6, v11));
    v2 = add3(v2, v7, v128.load(MSG, 48)); v13 = rot16(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot12(v128.xor(v7, v8));
    v2 = add3(v2, v7, v128.load(MSG, 64)); v13 = rot8(v128.xor(v13, v2)); v8 = i32x4.add(v8, v13); v7 = rot7(v128.xor(v7, v8));
    v3 = add3(v3, v4, v128.load(MSG, 112)); v14 = rot16(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot12(v128.xor(v4, v9));
    v3 = add3(v3, v4, v128.load(MSG, 208)); v14 = rot8(v128.xor(v14, v3)); v9 = i32x4.add(v9, v14); v4 = rot7(v128.xor(v4, v9));
    h0 = v128.xor(v0, v8);
    h1 = v128.xor(v1, v9);
    h2 = v128.xor(v2, v10);
    h3 = v128.xor(v3, v11);
    h4 = v128.xor(v4, v12);
    h5 = v128.xor(v5, v13);
    h6 = v128.xor(v6, v14);
    h7 = v128.xor(v7, v15);
  }
  // Back from lanes to four contiguous 8-word chaining values.
  transposeStore(h0, h1, h2, h3, out, 32);
  transposeStore(h4, h5, h6, h7, out + 16, 32);
}

// Small fixed-size copies as v128 moves: memory.copy is a call into the engine, which dominates tiny hashes.
// @ts-ignore: decorator
@inline
function copy32(dst: usize, src: usize): void {
  const a = v128.load(src);
  const b = v128.load(src, 16);
  v128.store(dst, a);
  v128.store(dst, b, 16);
}

/** Copies `len` (≤ 64) bytes into a 64-byte block and zero-fills the rest. */
function copyPadded(dst: usize, src: usize, len: u32): void {
  v128.store(dst, v128.splat<i32>(0));
  v128.store(dst, v128.splat<i32>(0), 16);
  v128.store(dst, v128.splat<i32>(0), 32);
  v128.store(dst, v128.splat<i32>(0), 48);
  let i: u32 = 0;
  for (; i + 8 <= len; i += 8) store<u64>(dst + i, load<u64>(src + i));
  for (; i < len; i++) store<u8>(dst + i, load<u8>(src + i));
}

// ---------------------------------------------------------------------------------------------------------
// Hasher (the incremental tree logic of the BLAKE3 reference implementation).

// @ts-ignore: decorator
@inline
function chunkLen(): u32 {
  return load<u32>(S_BLOCKS_DONE) * BLOCK_LEN + load<u32>(S_BLOCK_LEN);
}

// @ts-ignore: decorator
@inline
function startFlag(): u32 {
  return load<u32>(S_BLOCKS_DONE) == 0 ? CHUNK_START : 0;
}

function resetChunk(counter: u64): void {
  copy32(S_CV, S_KEY);
  store<u64>(S_COUNTER, counter);
  store<u32>(S_BLOCK_LEN, 0);
  store<u32>(S_BLOCKS_DONE, 0);
}

/** Starts a new hash. With useIv the key words are the IV, else JS has written the key into STATE. */
export function init(flags: u32, useIv: bool): void {
  if (useIv) copy32(S_KEY, IV);
  store<u32>(S_FLAGS, flags);
  store<u32>(S_STACK_LEN, 0);
  resetChunk(0);
}

function chunkUpdate(ptr: usize, len: u32): void {
  const flags = load<u32>(S_FLAGS);
  while (len > 0) {
    let blockLen = load<u32>(S_BLOCK_LEN);
    // A full buffered block is compressed only once more input arrives: the last block needs CHUNK_END.
    if (blockLen == BLOCK_LEN) {
      compress(S_CV, S_BLOCK, load<u64>(S_COUNTER), BLOCK_LEN, flags | startFlag(), S_CV, false);
      store<u32>(S_BLOCKS_DONE, load<u32>(S_BLOCKS_DONE) + 1);
      blockLen = 0;
    }
    let take = BLOCK_LEN - blockLen;
    if (take > len) take = len;
    if (take == BLOCK_LEN) {
      copy32(S_BLOCK, ptr);
      copy32(S_BLOCK + 32, ptr + 32);
    } else {
      memory.copy(S_BLOCK + blockLen, ptr, take);
    }
    store<u32>(S_BLOCK_LEN, blockLen + take);
    ptr += take;
    len -= take;
  }
}

/** Sets the O_* output to the current chunk (zero-padded last block). */
function chunkOutput(): void {
  const blockLen = load<u32>(S_BLOCK_LEN);
  copy32(O_CV, S_CV);
  copyPadded(O_BLOCK, S_BLOCK, blockLen);
  oBlockLen = blockLen;
  oFlags = load<u32>(S_FLAGS) | startFlag() | CHUNK_END;
}

/** Sets the O_* output to the parent of two chaining values. */
function parentOutput(left: usize, right: usize): void {
  copy32(O_CV, S_KEY);
  copy32(O_BLOCK, left);
  copy32(O_BLOCK + 32, right);
  oBlockLen = BLOCK_LEN;
  oFlags = load<u32>(S_FLAGS) | PARENT;
}

/** Non-root chaining value of the O_* output. Chunk outputs use the chunk counter; parents use 0. */
function outputCv(counter: u64, dst: usize): void {
  compress(O_CV, O_BLOCK, counter, oBlockLen, oFlags, dst, false);
}

/** Merges completed subtrees: after `totalChunks` chunks the stack holds popcount(totalChunks) CVs. */
function mergeStack(totalChunks: u64): void {
  let len = load<u32>(S_STACK_LEN);
  const keep = <u32>popcnt<u64>(totalChunks);
  const flags = load<u32>(S_FLAGS) | PARENT;
  while (len > keep) {
    // The two top entries are adjacent: together they are the parent's 64-byte block.
    const left = S_STACK + (<usize>(len - 2) << 5);
    compress(S_KEY, left, 0, BLOCK_LEN, flags, left, false);
    len--;
  }
  store<u32>(S_STACK_LEN, len);
}

/** Pushes a completed subtree's CV. Merging is lazy (before a push) so the root is never merged early. */
function pushCv(cv: usize, chunkCounter: u64): void {
  mergeStack(chunkCounter);
  const len = load<u32>(S_STACK_LEN);
  copy32(S_STACK + (<usize>len << 5), cv);
  store<u32>(S_STACK_LEN, len + 1);
}

/**
 * Hashes `len` bytes at INPUT. `more` promises that more input follows this call, which lets a final
 * whole chunk go through hash4() instead of waiting in the chunk state (it cannot be the root).
 */
export function update(len: u32, more: bool): void {
  let ptr = INPUT;
  const flags = load<u32>(S_FLAGS);
  if (chunkLen() > 0) {
    let take = CHUNK_LEN - chunkLen();
    if (take > len) take = len;
    chunkUpdate(ptr, take);
    ptr += take;
    len -= take;
    if (len == 0) return;
    const counter = load<u64>(S_COUNTER);
    chunkOutput();
    outputCv(counter, O_TMP);
    pushCv(O_TMP, counter);
    resetChunk(counter + 1);
  }
  while (len > CHUNK_LEN || (more && len == CHUNK_LEN)) {
    const counter = load<u64>(S_COUNTER);
    // Largest power-of-two subtree that fits and starts at a multiple of its own size.
    let subtreeLen: u32 = (<u32>1) << (31 - clz<u32>(len));
    const doneLow = <u32>(counter * CHUNK_LEN);
    while (((subtreeLen - 1) & doneLow) != 0) subtreeLen >>= 1;
    const chunks = subtreeLen / CHUNK_LEN;
    for (let i: u32 = 0; i < chunks; i += 4) {
      hash4(
        ptr + i * CHUNK_LEN,
        CHUNK_LEN,
        CHUNK_LEN / BLOCK_LEN,
        counter + i,
        1,
        flags,
        CHUNK_START,
        CHUNK_END,
        CVS + (i << 5),
      );
    }
    if (chunks == 1) {
      pushCv(CVS, counter);
    } else {
      // Reduce to two CVs, never one: if this subtree is the whole input its root needs the ROOT flag.
      for (let n = chunks; n > 2; n >>= 1) {
        const parents = n >> 1;
        for (let j: u32 = 0; j < parents; j += 4) {
          hash4(CVS + (j << 6), 64, 1, 0, 0, flags | PARENT, 0, 0, CVS + (j << 5));
        }
      }
      pushCv(CVS, counter);
      pushCv(CVS + 32, counter + (chunks >> 1));
    }
    store<u64>(S_COUNTER, counter + chunks);
    ptr += subtreeLen;
    len -= subtreeLen;
  }
  if (len > 0) {
    chunkUpdate(ptr, len);
    // Bytes follow every CV on the stack now, so any pending merge is non-root: do it, as finalize()
    // only merges the current chunk's CV down the stack.
    mergeStack(load<u64>(S_COUNTER));
  }
}

/** Computes the root output into O_*; the hasher state is not changed, so hashing may continue. */
export function finalize(): void {
  let i = load<u32>(S_STACK_LEN);
  if (i == 0) {
    chunkOutput();
    return;
  }
  if (chunkLen() > 0) {
    chunkOutput();
    outputCv(load<u64>(S_COUNTER), O_TMP);
  } else {
    i -= 2;
    parentOutput(S_STACK + (<usize>i << 5), S_STACK + (<usize>(i + 1) << 5));
    outputCv(0, O_TMP);
  }
  while (i > 0) {
    i--;
    parentOutput(S_STACK + (<usize>i << 5), O_TMP);
    if (i > 0) outputCv(0, O_TMP);
  }
}

/** Writes `blocks` 64-byte root output blocks, numbered from `first`, to INPUT. */
export function output(first: u32, blocks: u32): void {
  for (let t: u32 = 0; t < blocks; t++) {
    compress(O_CV, O_BLOCK, <u64>(first + t), oBlockLen, oFlags | ROOT, INPUT + (<usize>t << 6), true);
  }
}

/** One call for a whole input that fits in INPUT: init, update, finalize and the first output block. */
export function hashOnce(len: u32, flags: u32, useIv: bool): void {
  if (useIv) copy32(S_KEY, IV);
  if (len > CHUNK_LEN) {
    init(flags, false);
    update(len, false);
    finalize();
  } else {
    // One chunk, which is the root: compress its blocks straight from INPUT, no hasher state.
    const lastLen = len == 0 ? 0 : len - ((len - 1) & ~(BLOCK_LEN - 1));
    const last = INPUT + len - lastLen;
    copy32(O_CV, S_KEY);
    let start = CHUNK_START;
    for (let block = INPUT; block < last; block += BLOCK_LEN) {
      compress(O_CV, block, 0, BLOCK_LEN, flags | start, O_CV, false);
      start = 0;
    }
    copyPadded(O_BLOCK, last, lastLen);
    oBlockLen = lastLen;
    oFlags = flags | start | CHUNK_END;
  }
  output(0, 1);
}
