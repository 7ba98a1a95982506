// Placeholder over @noble/hashes until the WASM SIMD kernel lands; the exported API is the contract.
import { blake3 as nobleBlake3 } from '@noble/hashes/blake3.js';

export type HashInput = Uint8Array | readonly Uint8Array[];

function concat(input: HashInput): Uint8Array {
  if (input instanceof Uint8Array) return input;
  const total = input.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of input) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** BLAKE3 hash of `input` (parts are hashed as their concatenation). */
export function blake3(input: HashInput, outLength = 32): Uint8Array {
  return nobleBlake3(concat(input), { dkLen: outLength });
}

/** BLAKE3 keyed hash; `key` must be 32 bytes. */
export function blake3Keyed(key: Uint8Array, input: HashInput, outLength = 32): Uint8Array {
  return nobleBlake3(concat(input), { key, dkLen: outLength });
}

/** BLAKE3 derive_key mode: `context` is a hard-coded, globally unique, application-specific string. */
export function blake3DeriveKey(context: string, material: Uint8Array, outLength = 32): Uint8Array {
  return nobleBlake3(material, { context: new TextEncoder().encode(context), dkLen: outLength });
}
