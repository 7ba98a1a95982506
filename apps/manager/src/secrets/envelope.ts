import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Secrets at rest (target credentials, target keys, agent tokens) are AES-256-GCM envelopes under the
 * manager's master key: version byte 1 ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag. The additional
 * data names where the envelope belongs (`<table>.<column>:<row id>`), so an envelope copied into another row
 * or column fails to open rather than handing one target's secret to another.
 */
const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const MASTER_KEY_BYTES = 32;

export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
}

export interface SecretBox {
  seal(plaintext: Uint8Array, place: string): Uint8Array;
  open(envelope: Uint8Array, place: string): Uint8Array;
  sealText(text: string, place: string): Uint8Array;
  openText(envelope: Uint8Array, place: string): string;
}

/** Where an envelope lives: `backup_target.credentials:<uuid>`. */
export function secretPlace(table: string, column: string, rowId: string): string {
  return `${table}.${column}:${rowId.toLowerCase()}`;
}

export function createSecretBox(masterKey: Uint8Array): SecretBox {
  if (masterKey.length !== MASTER_KEY_BYTES) {
    throw new EnvelopeError(`the master key must be ${MASTER_KEY_BYTES} bytes, not ${masterKey.length}`);
  }
  const key = Buffer.from(masterKey);
  const seal = (plaintext: Uint8Array, place: string): Uint8Array => {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(place, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.of(VERSION), nonce, body, cipher.getAuthTag()]);
  };
  const open = (envelope: Uint8Array, place: string): Uint8Array => {
    const bytes = Buffer.from(envelope);
    if (bytes.length < 1 + NONCE_BYTES + TAG_BYTES || bytes[0] !== VERSION) {
      throw new EnvelopeError(`the secret at ${place} is not an envelope of version ${VERSION}`);
    }
    const nonce = bytes.subarray(1, 1 + NONCE_BYTES);
    const tag = bytes.subarray(bytes.length - TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(place, 'utf8'));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([
        decipher.update(bytes.subarray(1 + NONCE_BYTES, bytes.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw new EnvelopeError(
        `the secret at ${place} does not open with this master key (another key, or the row was altered)`,
      );
    }
  };
  return {
    seal,
    open,
    sealText: (text, place) => seal(Buffer.from(text, 'utf8'), place),
    openText: (envelope, place) => Buffer.from(open(envelope, place)).toString('utf8'),
  };
}
