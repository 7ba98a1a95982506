import { createCipheriv, createDecipheriv } from 'node:crypto';
import { hchacha } from '@noble/ciphers/chacha.js';
import { IntegrityError } from './errors.js';

export const XCHACHA_KEY_LENGTH = 32;
export const XCHACHA_NONCE_LENGTH = 24;
export const XCHACHA_TAG_LENGTH = 16;

const AUTH_FAILED = 'XChaCha20-Poly1305 authentication failed';

// "expand 32-byte k"
const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function readWordsLE(bytes: Uint8Array, offset: number, count: number): Uint32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 4);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}

/**
 * XChaCha20 = ChaCha20 (IETF, 96-bit nonce) under the HChaCha20 subkey of (key, nonce[0..16]) with the nonce
 * 0x00000000 ‖ nonce[16..24] (draft-irtf-cfrg-xchacha §2.3). One HChaCha20 block per message in JS, then the
 * native OpenSSL AEAD does the bulk.
 */
function subkeyAndNonce(key: Uint8Array, nonce: Uint8Array): { subkey: Buffer; nonce12: Buffer } {
  if (key.length !== XCHACHA_KEY_LENGTH) throw new TypeError('XChaCha20-Poly1305 key must be 32 bytes');
  if (nonce.length !== XCHACHA_NONCE_LENGTH) throw new TypeError('XChaCha20-Poly1305 nonce must be 24 bytes');
  if (!LITTLE_ENDIAN) throw new Error('big-endian hosts are not supported');
  const out = new Uint32Array(8);
  hchacha(SIGMA, readWordsLE(key, 0, 8), readWordsLE(nonce, 0, 4), out);
  const subkey = Buffer.from(out.buffer, out.byteOffset, 32);
  const nonce12 = Buffer.alloc(12);
  nonce12.set(nonce.subarray(16, 24), 4);
  return { subkey, nonce12 };
}

/**
 * Encrypts `plaintext` into `out` at `outOffset` (ciphertext ‖ 16-byte tag); `out` must have room for
 * `plaintext.length + 16` bytes there. Lets callers build an object with a single copy.
 */
export function xchachaSealInto(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  out: Uint8Array,
  outOffset: number,
): void {
  const { subkey, nonce12 } = subkeyAndNonce(key, nonce);
  const cipher = createCipheriv('chacha20-poly1305', subkey, nonce12, { authTagLength: XCHACHA_TAG_LENGTH });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  const body = cipher.update(plaintext);
  const tail = cipher.final();
  out.set(body, outOffset);
  out.set(tail, outOffset + body.length);
  out.set(cipher.getAuthTag(), outOffset + plaintext.length);
}

/** XChaCha20-Poly1305 encryption: returns ciphertext ‖ 16-byte tag. */
export function xchachaSeal(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(plaintext.length + XCHACHA_TAG_LENGTH);
  xchachaSealInto(key, nonce, plaintext, aad, out, 0);
  return out;
}

/**
 * XChaCha20-Poly1305 decryption of ciphertext ‖ tag. Throws `IntegrityError` (naming `objectKey` when given)
 * on any mismatch; plaintext is returned only after the tag has verified.
 */
export function xchachaOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array = new Uint8Array(0),
  objectKey?: string,
): Uint8Array {
  if (sealed.length < XCHACHA_TAG_LENGTH) throw new IntegrityError(objectKey, AUTH_FAILED);
  const { subkey, nonce12 } = subkeyAndNonce(key, nonce);
  const ctLength = sealed.length - XCHACHA_TAG_LENGTH;
  const decipher = createDecipheriv('chacha20-poly1305', subkey, nonce12, {
    authTagLength: XCHACHA_TAG_LENGTH,
  });
  decipher.setAuthTag(sealed.subarray(ctLength));
  decipher.setAAD(aad, { plaintextLength: ctLength });
  const body = decipher.update(sealed.subarray(0, ctLength));
  try {
    const tail = decipher.final();
    if (tail.length !== 0) return new Uint8Array(Buffer.concat([body, tail]));
  } catch {
    body.fill(0);
    throw new IntegrityError(objectKey, AUTH_FAILED);
  }
  return new Uint8Array(body.buffer, body.byteOffset, body.length);
}
