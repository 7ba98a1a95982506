import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Blake3Hasher, blake3, blake3DeriveKey, blake3Keyed } from './index.js';

// Official vectors, test_vectors/test_vectors.json of the BLAKE3-team/BLAKE3 repository (verbatim).
interface Vectors {
  key: string;
  context_string: string;
  cases: { input_len: number; hash: string; keyed_hash: string; derive_key: string }[];
}
const vectors: Vectors = JSON.parse(
  readFileSync(new URL('./testdata/test_vectors.json', import.meta.url), 'utf8'),
);
const key = new TextEncoder().encode(vectors.key);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const input = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);

/** Splits into three parts, the middle one empty, at a length-dependent place. */
const parts = (b: Uint8Array) => [b.subarray(0, b.length >> 1), b.subarray(0, 0), b.subarray(b.length >> 1)];

describe('official BLAKE3 test vectors', () => {
  it.each(vectors.cases)('input_len $input_len', (c) => {
    const data = input(c.input_len);
    const outLen = c.hash.length / 2;
    expect(hex(blake3(data, outLen))).toBe(c.hash);
    expect(hex(blake3(data))).toBe(c.hash.slice(0, 64));
    expect(hex(blake3(parts(data), outLen))).toBe(c.hash);
    expect(hex(blake3Keyed(key, data, outLen))).toBe(c.keyed_hash);
    expect(hex(blake3Keyed(key, data))).toBe(c.keyed_hash.slice(0, 64));
    expect(hex(blake3Keyed(key, parts(data)))).toBe(c.keyed_hash.slice(0, 64));
    expect(hex(blake3DeriveKey(vectors.context_string, data, outLen))).toBe(c.derive_key);
    expect(hex(blake3DeriveKey(vectors.context_string, data))).toBe(c.derive_key.slice(0, 64));
  });

  it.each(vectors.cases)('input_len $input_len through the incremental hasher', (c) => {
    const data = input(c.input_len);
    const outLen = c.hash.length / 2;
    const h = Blake3Hasher.create();
    const k = Blake3Hasher.keyed(key);
    const d = Blake3Hasher.deriveKey(vectors.context_string);
    // Odd-sized updates, interleaved across three hashers, so state is swapped in and out of the kernel.
    for (let at = 0; at < data.length; at += 997) {
      const piece = data.subarray(at, at + 997);
      h.update(piece);
      k.update(piece);
      d.update(piece);
    }
    expect(hex(h.digest(outLen))).toBe(c.hash);
    expect(hex(k.digest(outLen))).toBe(c.keyed_hash);
    expect(hex(d.digest(outLen))).toBe(c.derive_key);
  });
});
