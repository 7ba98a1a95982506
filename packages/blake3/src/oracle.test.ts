// Cross-checks against @noble/hashes (a dev-only test oracle: pure JS, slow, audited). Inputs come from a
// seeded generator so a failure names a reproducible case.
import { blake3 as noble } from '@noble/hashes/blake3.js';
import { describe, expect, it } from 'vitest';
import { Blake3Hasher, blake3, blake3DeriveKey, blake3Keyed } from './index.js';

/** xorshift32: deterministic bytes and numbers for the given seed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  return {
    int: (maxExclusive: number) => Math.floor(next() * maxExclusive),
    bytes(n: number): Uint8Array {
      const out = new Uint8Array(n);
      const words = new Uint32Array(out.buffer, 0, n >>> 2);
      for (let i = 0; i < words.length; i++) words[i] = next() * 2 ** 32;
      for (let i = words.length * 4; i < n; i++) out[i] = next() * 256;
      return out;
    },
  };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const KB = 1024;
const MiB = 1024 * 1024;

/** Splits `data` at `count - 1` random places (parts may be empty). */
function split(data: Uint8Array, count: number, r: ReturnType<typeof rng>): Uint8Array[] {
  const cuts = Array.from({ length: count - 1 }, () => r.int(data.length + 1)).sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, data.length]) {
    out.push(data.subarray(at, c));
    at = c;
  }
  return out;
}

describe('agrees with @noble/hashes', () => {
  const r = rng(0x5eed);
  const key = r.bytes(32);
  const base = r.bytes(5 * MiB + 3 * KB);

  it('every length 0…2200 (all block and the first chunk boundaries)', () => {
    for (let n = 0; n <= 2200; n++) {
      const data = base.subarray(0, n);
      expect(hex(blake3(data)), `len ${n}`).toBe(hex(noble(data)));
    }
  });

  it('every length within 65 bytes of 1 KiB chunk boundaries, 2…17, 31…33, 63…66, 127…129, 255…257 chunks', () => {
    const chunkCounts = [
      2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 66, 127, 128, 129, 255, 256, 257,
    ];
    for (const chunks of chunkCounts) {
      // The oracle grows one byte at a time (cloned for each digest) instead of rehashing every prefix.
      const first = chunks * KB - 65;
      const oracle = noble.create({ key }).update(base.subarray(0, first));
      for (let n = first; n <= chunks * KB + 65; n++) {
        const data = base.subarray(0, n);
        expect(hex(blake3Keyed(key, data)), `len ${n}`).toBe(hex(oracle.clone().digest()));
        oracle.update(base.subarray(n, n + 1));
      }
    }
  });

  it('random lengths up to 5 MiB, whole and split into random parts', () => {
    const lengths = [
      5 * MiB,
      4 * MiB + 1,
      1 * MiB - 1,
      ...Array.from({ length: 6 }, () => r.int(5 * MiB + 1)),
    ];
    for (const n of lengths) {
      const off = r.int(3 * KB); // arbitrary alignment of the source view
      const data = base.subarray(off, off + n);
      const want = hex(noble(data));
      expect(hex(blake3(data)), `len ${n}`).toBe(want);
      expect(hex(blake3(split(data, 1 + r.int(20), r))), `len ${n} split`).toBe(want);
    }
  });

  it('random small multi-part inputs in all three modes', () => {
    for (let i = 0; i < 300; i++) {
      const n = r.int(i < 250 ? 4 * KB : 300 * KB);
      const off = r.int(KB);
      const data = base.subarray(off, off + n);
      const pieces = split(data, 1 + r.int(8), r);
      expect(hex(blake3(pieces)), `len ${n}`).toBe(hex(noble(data)));
      expect(hex(blake3Keyed(key, pieces)), `keyed len ${n}`).toBe(hex(noble(data, { key })));
      const context = 'stowage 2026-11-22 test context';
      expect(hex(blake3DeriveKey(context, data)), `derive len ${n}`).toBe(
        hex(noble(data, { context: new TextEncoder().encode(context) })),
      );
    }
  });

  it('extended outputs of random lengths, including past the 64 KiB output slab', () => {
    const outLengths = [0, 1, 31, 33, 63, 64, 65, 127, 128, 129, 1000, 65535, 65536, 65537, 200_000];
    for (let i = 0; i < 20; i++) outLengths.push(r.int(3000));
    for (const outLen of outLengths) {
      const n = r.int(10 * KB);
      const data = base.subarray(0, n);
      expect(hex(blake3(data, outLen)), `len ${n} out ${outLen}`).toBe(hex(noble(data, { dkLen: outLen })));
      expect(hex(blake3Keyed(key, data, outLen)), `keyed len ${n} out ${outLen}`).toBe(
        hex(noble(data, { key, dkLen: outLen })),
      );
    }
  });

  it('incremental hashers fed random-sized updates, interleaved with one-shot calls', () => {
    for (let i = 0; i < 12; i++) {
      const n = r.int(i < 6 ? 20 * KB : 700 * KB);
      const data = base.subarray(0, n);
      const a = Blake3Hasher.create();
      const b = Blake3Hasher.keyed(key);
      for (const piece of split(data, 1 + r.int(40), r)) {
        a.update(piece);
        blake3(piece); // clobbers the kernel's state; the hashers must have saved theirs
        b.update(piece);
      }
      const outLen = 1 + r.int(200);
      expect(hex(a.digest(outLen)), `len ${n}`).toBe(hex(noble(data, { dkLen: outLen })));
      expect(hex(b.digest()), `keyed len ${n}`).toBe(hex(noble(data, { key })));
    }
  });
});
