// The envelope shared by damage records (§12) and index objects (§5.3): header = magic(4) ‖ version(1) ‖
// flags(1) = 0, then a random 24-byte nonce, then XChaCha20-Poly1305 of a CBOR map under the kind's subkey,
// with AAD = header ‖ what binds the object to its key. Internal: not exported from the package index.
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { cborDecode } from './cbor.js';
import { FormatError, IntegrityError } from './errors.js';
import { asUint } from './params.js';
import { checkObjectVersion, FORMAT_VERSION } from './version.js';
import { XCHACHA_NONCE_LENGTH, XCHACHA_TAG_LENGTH, xchachaOpen, xchachaSealInto } from './xchacha.js';

export const SEALED_RECORD_HEADER_LENGTH = 6;

export interface SealedRecordKind {
  readonly magic: Uint8Array;
  /** In errors: "invalid damage record: …". */
  readonly name: string;
  /** In errors: "not a damage record (bad magic)". */
  readonly article: 'a' | 'an';
  readonly maxLength: number;
}

function header(kind: SealedRecordKind): Uint8Array {
  const h = new Uint8Array(SEALED_RECORD_HEADER_LENGTH);
  h.set(kind.magic, 0);
  h[4] = FORMAT_VERSION;
  h[5] = 0;
  return h;
}

function aadOf(head: Uint8Array, binding: Uint8Array): Uint8Array {
  const aad = new Uint8Array(head.length + binding.length);
  aad.set(head, 0);
  aad.set(binding, head.length);
  return aad;
}

/** Seals `body` (CBOR) into the object's bytes. */
export function sealRecord(
  kind: SealedRecordKind,
  key: Uint8Array,
  binding: Uint8Array,
  body: Uint8Array,
  randomBytes: (length: number) => Uint8Array = cryptoRandomBytes,
): Uint8Array {
  const head = header(kind);
  const nonce = randomBytes(XCHACHA_NONCE_LENGTH);
  if (nonce.length !== XCHACHA_NONCE_LENGTH) throw new TypeError('randomBytes returned the wrong length');
  const object = new Uint8Array(
    SEALED_RECORD_HEADER_LENGTH + XCHACHA_NONCE_LENGTH + body.length + XCHACHA_TAG_LENGTH,
  );
  if (object.length > kind.maxLength) throw new RangeError(`${kind.name} exceeds the format maximum`);
  object.set(head, 0);
  object.set(nonce, SEALED_RECORD_HEADER_LENGTH);
  xchachaSealInto(
    key,
    nonce,
    body,
    aadOf(head, binding),
    object,
    SEALED_RECORD_HEADER_LENGTH + XCHACHA_NONCE_LENGTH,
  );
  return object;
}

/**
 * Checks the envelope (length, magic, version, flags), authenticates and decrypts it, and decodes the CBOR map,
 * whose `version` must equal the header's. Returns the map; `fail` raises a `FormatError` for the caller's
 * own field checks.
 */
export function openRecord(
  kind: SealedRecordKind,
  key: Uint8Array,
  binding: Uint8Array,
  object: Uint8Array,
  objectKey: string,
): { version: number; doc: Record<string, unknown>; fail: (why: string) => never } {
  const minLength = SEALED_RECORD_HEADER_LENGTH + XCHACHA_NONCE_LENGTH + XCHACHA_TAG_LENGTH;
  if (object.length < minLength)
    throw new IntegrityError(objectKey, `object is truncated (${object.length} bytes)`);
  if (object.length > kind.maxLength)
    throw new IntegrityError(objectKey, `object is larger than ${kind.maxLength} bytes`);
  for (let i = 0; i < kind.magic.length; i++) {
    if (object[i] !== kind.magic[i])
      throw new IntegrityError(objectKey, `not ${kind.article} ${kind.name} (bad magic)`);
  }
  const version = object[4]!;
  checkObjectVersion(version, objectKey);
  if (object[5] !== 0) throw new IntegrityError(objectKey, `unknown flags ${object[5]}`);
  const head = object.subarray(0, SEALED_RECORD_HEADER_LENGTH);
  const body = xchachaOpen(
    key,
    object.subarray(SEALED_RECORD_HEADER_LENGTH, SEALED_RECORD_HEADER_LENGTH + XCHACHA_NONCE_LENGTH),
    object.subarray(SEALED_RECORD_HEADER_LENGTH + XCHACHA_NONCE_LENGTH),
    aadOf(head, binding),
    objectKey,
  );
  const decoded = cborDecode(body, objectKey);
  const fail = (why: string): never => {
    throw new FormatError(`invalid ${kind.name}: ${why}`, objectKey);
  };
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded))
    return fail('not a CBOR map');
  const doc = decoded as Record<string, unknown>;
  if (asUint(doc.version) !== version)
    fail(`version field ${String(doc.version)} differs from the header's ${version}`);
  return { version, doc, fail };
}
