// Test helpers (not part of the build).

/** Deterministic pseudo-random bytes (xorshift128+ style on 32-bit words), so failures reproduce. */
export function randomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  const next = prng(seed);
  const words = new Uint32Array(out.buffer, 0, Math.floor(length / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  for (let i = words.length * 4; i < length; i++) out[i] = next() & 0xff;
  return out;
}

/** A small seeded generator of unsigned 32-bit integers (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Splits `data` into pieces whose sizes come from `sizeOf`, feeds them to `push`, returns what came back. */
export function feedInPieces<T>(
  data: Uint8Array,
  sizeOf: () => number,
  push: (piece: Uint8Array) => T[],
): T[] {
  const out: T[] = [];
  let off = 0;
  while (off < data.length) {
    const size = Math.min(sizeOf(), data.length - off);
    out.push(...push(data.subarray(off, off + size)));
    off += size;
  }
  return out;
}
