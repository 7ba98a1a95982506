import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from './errors.js';
import { xchachaOpen, xchachaSeal } from './xchacha.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const vector = JSON.parse(
  readFileSync(new URL('./testdata/xchacha-draft-a31.json', import.meta.url), 'utf8'),
) as {
  key: string;
  nonce: string;
  aad: string;
  plaintext: string;
  ciphertext: string;
  tag: string;
};

describe('xchacha20-poly1305 (HChaCha20 + native chacha20-poly1305)', () => {
  it('matches draft-irtf-cfrg-xchacha A.3.1', () => {
    const sealed = xchachaSeal(hex(vector.key), hex(vector.nonce), hex(vector.plaintext), hex(vector.aad));
    expect(toHex(sealed)).toBe(vector.ciphertext + vector.tag);
    const opened = xchachaOpen(hex(vector.key), hex(vector.nonce), sealed, hex(vector.aad));
    expect(toHex(opened)).toBe(vector.plaintext);
  });

  it('agrees with @noble/ciphers on random keys, nonces, lengths and AAD', () => {
    const lengths = [0, 1, 15, 16, 17, 63, 64, 65, 255, 1000, 4096, 65_537, 300_001];
    for (const length of lengths) {
      const key = new Uint8Array(randomBytes(32));
      const nonce = new Uint8Array(randomBytes(24));
      const aad = new Uint8Array(randomBytes(length % 7 === 0 ? 0 : (length % 50) + 1));
      const plaintext = new Uint8Array(randomBytes(length));
      const ours = xchachaSeal(key, nonce, plaintext, aad);
      const theirs = xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
      expect(toHex(ours)).toBe(toHex(theirs));
      expect(toHex(xchachaOpen(key, nonce, theirs, aad))).toBe(toHex(plaintext));
    }
  });

  it('rejects any flipped bit in nonce, ciphertext, tag or AAD, and truncation', () => {
    const key = new Uint8Array(randomBytes(32));
    const nonce = new Uint8Array(randomBytes(24));
    const aad = new Uint8Array(randomBytes(20));
    const plaintext = new Uint8Array(randomBytes(100));
    const sealed = xchachaSeal(key, nonce, plaintext, aad);
    const flip = (b: Uint8Array, i: number) => {
      const c = b.slice();
      c[i]! ^= 1 << (i % 8);
      return c;
    };
    for (let i = 0; i < nonce.length; i++) {
      expect(() => xchachaOpen(key, flip(nonce, i), sealed, aad)).toThrow(IntegrityError);
    }
    for (let i = 0; i < sealed.length; i++) {
      expect(() => xchachaOpen(key, nonce, flip(sealed, i), aad)).toThrow(IntegrityError);
    }
    for (let i = 0; i < aad.length; i++) {
      expect(() => xchachaOpen(key, nonce, sealed, flip(aad, i))).toThrow(IntegrityError);
    }
    expect(() => xchachaOpen(key, nonce, sealed.subarray(0, sealed.length - 1), aad)).toThrow(IntegrityError);
    expect(() => xchachaOpen(key, nonce, sealed.subarray(0, 10), aad)).toThrow(IntegrityError);
    expect(() => xchachaOpen(flip(key, 3), nonce, sealed, aad)).toThrow(IntegrityError);
  });

  it('refuses keys and nonces of the wrong size', () => {
    expect(() => xchachaSeal(new Uint8Array(31), new Uint8Array(24), new Uint8Array(1))).toThrow(TypeError);
    expect(() => xchachaSeal(new Uint8Array(32), new Uint8Array(12), new Uint8Array(1))).toThrow(TypeError);
  });
});
