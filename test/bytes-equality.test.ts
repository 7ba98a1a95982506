import { describe, expect, it } from 'vitest';

// vitest.setup.ts replaces deep equality for byte arrays with memcmp; it must still tell them apart.
describe('byte-array equality in tests', () => {
  it('is equal only for the same bytes, type and length', () => {
    const big = new Uint8Array(4 << 20).fill(7);
    const copy = big.slice();
    expect(copy).toEqual(big);
    copy[copy.length - 1] = 8;
    expect(copy).not.toEqual(big);
    expect(big.subarray(0, 10)).not.toEqual(big.subarray(0, 11));
    expect(new Uint8Array([1, 2, 3])).toEqual(new Uint8Array([0, 1, 2, 3]).subarray(1));
    expect(Buffer.from([1, 2, 3])).not.toEqual(new Uint8Array([1, 2, 3]));
    expect({ body: new Uint8Array([1]) }).not.toEqual({ body: new Uint8Array([2]) });
  });
});
