import { randomBytes } from 'node:crypto';
import { blake3DeriveKey } from '@stowage/blake3';

/** Length in bytes of the target key and of every derived subkey. */
export const KEY_LENGTH = 32;

/**
 * BLAKE3 `derive_key` context strings. Normative (docs/format.md §3): changing one changes every object,
 * so it is a format change.
 */
export const KDF_CONTEXT = {
  chunkId: 'stowage 2026-11-22 chunk id',
  chunkNonce: 'stowage 2026-11-22 chunk nonce',
  chunkEncryption: 'stowage 2026-11-22 chunk encryption',
  manifestEncryption: 'stowage 2026-11-22 manifest encryption',
  configAuthentication: 'stowage 2026-11-22 config authentication',
  damageRecordEncryption: 'stowage 2026-12-01 damage record encryption',
  packIndexEncryption: 'stowage 2026-12-02 pack index encryption',
  gearTable: 'stowage 2026-12-01 fastcdc gear table',
  keyFileWrapping: 'stowage 2026-11-22 key file wrapping',
  keyFileCheck: 'stowage 2026-11-22 key file check',
} as const;

/** Subkeys of one target. Treat as secret; never log. */
export interface TargetKeys {
  /** Keys BLAKE3 to compute chunk ids. */
  readonly idKey: Uint8Array;
  /** Keys BLAKE3 to derive chunk nonces. */
  readonly nonceKey: Uint8Array;
  /** XChaCha20-Poly1305 key of chunk objects. */
  readonly chunkKey: Uint8Array;
  /** XChaCha20-Poly1305 key of manifests. */
  readonly manifestKey: Uint8Array;
  /** Keys the BLAKE3 MAC of the `config` object. */
  readonly configKey: Uint8Array;
  /** XChaCha20-Poly1305 key of damage records (`damage/<volume>/<backup>`). */
  readonly damageKey: Uint8Array;
  /** XChaCha20-Poly1305 key of pack index objects (`index/<volume>/<backup>/<name>`). */
  readonly indexKey: Uint8Array;
  /**
   * FastCDC's gear table for this target (256 big-endian 64-bit entries): secret, so that nobody without the
   * key can compute where known content is cut (docs/format.md §4.1).
   */
  readonly gearTable: Uint8Array;
}

/** Bytes of a target's gear table: 256 entries of 8 bytes. */
export const GEAR_TABLE_LENGTH = 2048;

export function deriveTargetKeys(targetKey: Uint8Array): TargetKeys {
  if (!(targetKey instanceof Uint8Array) || targetKey.length !== KEY_LENGTH) {
    throw new TypeError(`target key must be ${KEY_LENGTH} bytes`);
  }
  return Object.freeze({
    idKey: blake3DeriveKey(KDF_CONTEXT.chunkId, targetKey),
    nonceKey: blake3DeriveKey(KDF_CONTEXT.chunkNonce, targetKey),
    chunkKey: blake3DeriveKey(KDF_CONTEXT.chunkEncryption, targetKey),
    manifestKey: blake3DeriveKey(KDF_CONTEXT.manifestEncryption, targetKey),
    configKey: blake3DeriveKey(KDF_CONTEXT.configAuthentication, targetKey),
    damageKey: blake3DeriveKey(KDF_CONTEXT.damageRecordEncryption, targetKey),
    indexKey: blake3DeriveKey(KDF_CONTEXT.packIndexEncryption, targetKey),
    gearTable: blake3DeriveKey(KDF_CONTEXT.gearTable, targetKey, GEAR_TABLE_LENGTH),
  });
}

/** A fresh random 32-byte target key (CSPRNG). */
export function generateTargetKey(): Uint8Array {
  return new Uint8Array(randomBytes(KEY_LENGTH));
}
