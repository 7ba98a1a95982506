import { type ChunkerParams, cutSettings, validateChunkerParams } from './params.js';

/** A chunk of a whole buffer, with the gear hash at its cut point (0 for a final chunk not above minSize). */
export interface Chunk {
  offset: number;
  length: number;
  hash: bigint;
}

/**
 * Pure-TypeScript FastCDC 2020 over a whole buffer, written to be checked by eye against the crate's `cut()`
 * rather than to be fast. The 64-bit hash is kept as two unsigned 32-bit halves. Tests use it as the oracle
 * for the WebAssembly kernel and the streaming logic.
 */
export function referenceChunks(data: Uint8Array, params: ChunkerParams): Chunk[] {
  const s = cutSettings(validateChunkerParams(params));
  const split = (t: BigUint64Array) => {
    const hi = new Uint32Array(256);
    const lo = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      hi[i] = Number(t[i]! >> 32n);
      lo[i] = Number(t[i]! & 0xffffffffn);
    }
    return { hi, lo };
  };
  const gear = split(s.gear);
  const gearLs = split(s.gearLs);
  const maskHalves = (m: bigint) => ({ hi: Number(m >> 32n), lo: Number(m & 0xffffffffn) });
  const mS = maskHalves(s.maskS);
  const mSls = maskHalves(s.maskS << 1n);
  const mL = maskHalves(s.maskL);
  const mLls = maskHalves(s.maskL << 1n);

  // Returns [hashHi, hashLo, length of the chunk starting at `start`].
  const cut = (start: number): [number, number, number] => {
    let remaining = data.length - start;
    if (remaining <= s.minSize) return [0, 0, remaining];
    let center = s.avgSize;
    if (remaining > s.maxSize) remaining = s.maxSize;
    else if (remaining < center) center = remaining;
    let hi = 0;
    let lo = 0;
    // hash = (hash << 2) + table[byte], modulo 2^64.
    const shiftAdd = (t: { hi: Uint32Array; lo: Uint32Array }, byte: number) => {
      hi = ((hi << 2) | (lo >>> 30)) >>> 0;
      lo = (lo << 2) >>> 0;
      add(t, byte);
    };
    const add = (t: { hi: Uint32Array; lo: Uint32Array }, byte: number) => {
      const sum = lo + t.lo[byte]!;
      lo = sum >>> 0;
      hi = (hi + t.hi[byte]! + (sum > 0xffffffff ? 1 : 0)) >>> 0;
    };
    const zero = (m: { hi: number; lo: number }) => (hi & m.hi) === 0 && (lo & m.lo) === 0;

    let index = Math.floor(s.minSize / 2);
    for (; index < Math.floor(center / 2); index++) {
      const a = start + index * 2;
      shiftAdd(gearLs, data[a]!);
      if (zero(mSls)) return [hi, lo, index * 2];
      add(gear, data[a + 1]!);
      if (zero(mS)) return [hi, lo, index * 2 + 1];
    }
    for (; index < Math.floor(remaining / 2); index++) {
      const a = start + index * 2;
      shiftAdd(gearLs, data[a]!);
      if (zero(mLls)) return [hi, lo, index * 2];
      add(gear, data[a + 1]!);
      if (zero(mL)) return [hi, lo, index * 2 + 1];
    }
    return [hi, lo, remaining];
  };

  const chunks: Chunk[] = [];
  let offset = 0;
  while (offset < data.length) {
    const [hi, lo, length] = cut(offset);
    chunks.push({ offset, length, hash: (BigInt(hi) << 32n) | BigInt(lo) });
    offset += length;
  }
  return chunks;
}
