import { type ChunkerParams, cutSettings, type GearTable, validateChunkerParams } from './params.js';

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
export function referenceChunks(data: Uint8Array, params: ChunkerParams, table?: GearTable): Chunk[] {
  const s = cutSettings(validateChunkerParams(params), table);
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

  // The crate's cut(): returns [hashHi, hashLo, length of the chunk starting at `start`].
  const cut = (start: number): [number, number, number] => {
    let remaining = data.length - start;
    if (remaining <= s.minSize) return [0, 0, remaining];
    let center = s.avgSize;
    if (remaining > s.maxSize) remaining = s.maxSize;
    else if (remaining < center) center = remaining;
    let hi = 0;
    let lo = 0;
    let index = Math.floor(s.minSize / 2);
    // Two phases: pairs below center / 2 with the small-chunk masks, then up to remaining / 2 with the large.
    const phases = [
      { end: Math.floor(center / 2), mask: mS, maskLs: mSls },
      { end: Math.floor(remaining / 2), mask: mL, maskLs: mLls },
    ];
    for (const { end, mask, maskLs } of phases) {
      for (; index < end; index++) {
        const a = start + index * 2;
        // hash = (hash << 2) + GEAR_LS[data[a]], modulo 2^64
        hi = ((hi << 2) | (lo >>> 30)) >>> 0;
        lo = (lo << 2) >>> 0;
        let sum = lo + gearLs.lo[data[a]!]!;
        lo = sum >>> 0;
        hi = (hi + gearLs.hi[data[a]!]! + (sum > 0xffffffff ? 1 : 0)) >>> 0;
        if ((hi & maskLs.hi) === 0 && (lo & maskLs.lo) === 0) return [hi, lo, index * 2];
        // hash = hash + GEAR[data[a + 1]], modulo 2^64
        sum = lo + gear.lo[data[a + 1]!]!;
        lo = sum >>> 0;
        hi = (hi + gear.hi[data[a + 1]!]! + (sum > 0xffffffff ? 1 : 0)) >>> 0;
        if ((hi & mask.hi) === 0 && (lo & mask.lo) === 0) return [hi, lo, index * 2 + 1];
      }
    }
    // No cut: the chunk is as long as it may be (pathological data, e.g. all zeros).
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
