import { expect } from 'vitest';

// Deep equality walks a typed array one element at a time, through several layers of helpers: comparing two
// 1 MiB buffers with `toEqual` took seconds, and a few dozen such checks ran a test past its timeout on a
// busy machine. Same-type byte arrays are compared with memcmp instead; anything else (different types,
// typed arrays of wider elements) is left to the default, so what counts as equal does not change.
expect.addEqualityTesters([
  function bytesEqual(a: unknown, b: unknown): boolean | undefined {
    if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array) || a.constructor !== b.constructor) {
      return undefined;
    }
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    );
  },
]);
