import { blake3Keyed } from '@stowage/blake3';
import { bytesEqual, fromHex, toHex } from './bytes.js';
import {
  type CompressionPolicy,
  compressChunkBody,
  DEFAULT_COMPRESSION_POLICY,
  MAX_CHUNK_LENGTH,
  zstdDecompressExact,
} from './compression.js';
import { FormatError, IntegrityError } from './errors.js';
import type { TargetKeys } from './keys.js';
import { padmeLength } from './padding.js';
import { checkObjectVersion, FORMAT_VERSION } from './version.js';
import { XCHACHA_NONCE_LENGTH, XCHACHA_TAG_LENGTH, xchachaOpen, xchachaSealInto } from './xchacha.js';

/** Chunk object magic: ASCII "STWC". */
export const CHUNK_MAGIC = Uint8Array.of(0x53, 0x54, 0x57, 0x43);
/** Header = magic(4) ‖ version(1) ‖ flags(1). */
export const CHUNK_HEADER_LENGTH = 6;
/** Flag bit: the body is one zstd frame; otherwise it is the raw plaintext. */
export const CHUNK_FLAG_ZSTD = 0x01;
export const CHUNK_ID_LENGTH = 32;
/** The body's length, inside the ciphertext before the body: 4 bytes, big-endian. */
export const CHUNK_BODY_LENGTH_LENGTH = 4;
/** Bytes an object adds to its body before padding: header, nonce, the body's length and the tag. */
export const CHUNK_OVERHEAD =
  CHUNK_HEADER_LENGTH + XCHACHA_NONCE_LENGTH + CHUNK_BODY_LENGTH_LENGTH + XCHACHA_TAG_LENGTH;
/** Offset of the ciphertext in a chunk object. */
const SEALED_AT = CHUNK_HEADER_LENGTH + XCHACHA_NONCE_LENGTH;

const CHUNK_ID_HEX_RE = /^[0-9a-f]{64}$/;

/** Keyed content id of a chunk: BLAKE3-keyed(idKey, plaintext), 32 bytes. */
export function chunkId(keys: TargetKeys, plaintext: Uint8Array): Uint8Array {
  return blake3Keyed(keys.idKey, plaintext, CHUNK_ID_LENGTH);
}

/** Lower-case hex of a chunk id (64 characters). */
export function chunkIdToHex(id: Uint8Array): string {
  if (id.length !== CHUNK_ID_LENGTH) throw new FormatError(`chunk id must be ${CHUNK_ID_LENGTH} bytes`);
  return toHex(id);
}

/** Parses a 64-character lower-case hex chunk id. */
export function chunkIdFromHex(hex: string): Uint8Array {
  if (!CHUNK_ID_HEX_RE.test(hex)) throw new FormatError(`invalid chunk id ${JSON.stringify(hex)}`);
  return fromHex(hex)!;
}

/** Bucket object key of a chunk: `chunks/<first 2 hex>/<64 hex>`. */
export function chunkObjectKey(id: Uint8Array | string): string {
  const hex = typeof id === 'string' ? toHex(chunkIdFromHex(id)) : chunkIdToHex(id);
  return `chunks/${hex.slice(0, 2)}/${hex}`;
}

function chunkHeader(flags: number): Uint8Array {
  const header = new Uint8Array(CHUNK_HEADER_LENGTH);
  header.set(CHUNK_MAGIC, 0);
  header[4] = FORMAT_VERSION;
  header[5] = flags;
  return header;
}

function chunkAad(header: Uint8Array, id: Uint8Array): Uint8Array {
  const aad = new Uint8Array(CHUNK_HEADER_LENGTH + CHUNK_ID_LENGTH);
  aad.set(header, 0);
  aad.set(id, CHUNK_HEADER_LENGTH);
  return aad;
}

export interface SealChunkOptions {
  /** The chunk id when the caller has already computed it (saves a hash; it is trusted, not rechecked). */
  readonly id?: Uint8Array | undefined;
  /** Compression tuning; any policy produces objects every reader opens. */
  readonly compression?: CompressionPolicy | undefined;
}

export interface SealedChunk {
  readonly id: Uint8Array;
  /** The complete object to store at `chunkObjectKey(id)`. */
  readonly object: Uint8Array;
  /** Whether the body was zstd-compressed. */
  readonly compressed: boolean;
  /** Bytes of Padmé padding in the object (§4.3). */
  readonly padding: number;
}

/**
 * Length of the object holding a body of `bodyLength` bytes: the unpadded length, padded with Padmé
 * (docs/format.md §4.3). What the object's size says of the chunk is that bucket, not its length.
 */
export function chunkObjectLength(bodyLength: number): number {
  return padmeLength(CHUNK_OVERHEAD + bodyLength);
}

/** Largest object `sealChunk` can produce for a plaintext of `length` bytes (the raw body, padded). */
export function maxChunkObjectLength(length: number): number {
  return chunkObjectLength(length);
}

/**
 * Builds the chunk object of `plaintext`: deterministic (same plaintext, keys and compression policy ⇒ same
 * bytes), so identical chunks dedup across the volumes of a target.
 */
export function sealChunk(
  keys: TargetKeys,
  plaintext: Uint8Array,
  options: SealChunkOptions = {},
): SealedChunk {
  const out = new Uint8Array(maxChunkObjectLength(plaintext.length));
  const { id, length, compressed, padding } = sealChunkInto(keys, plaintext, out, options);
  return { id, object: length === out.length ? out : out.slice(0, length), compressed, padding };
}

/**
 * As `sealChunk`, writing the object to the start of `out` (at least `maxChunkObjectLength(plaintext.length)`
 * bytes), so a caller can reuse object buffers instead of allocating one per chunk. Returns the object's length.
 */
export function sealChunkInto(
  keys: TargetKeys,
  plaintext: Uint8Array,
  out: Uint8Array,
  options: SealChunkOptions = {},
): { id: Uint8Array; length: number; compressed: boolean; padding: number } {
  if (plaintext.length > MAX_CHUNK_LENGTH) {
    throw new RangeError(`chunk of ${plaintext.length} bytes exceeds the ${MAX_CHUNK_LENGTH}-byte maximum`);
  }
  if (out.length < maxChunkObjectLength(plaintext.length)) {
    throw new RangeError(
      `output buffer of ${out.length} bytes is too small for a ${plaintext.length}-byte chunk`,
    );
  }
  const id = options.id ?? chunkId(keys, plaintext);
  if (id.length !== CHUNK_ID_LENGTH) throw new TypeError(`chunk id must be ${CHUNK_ID_LENGTH} bytes`);
  const compressedBody = compressChunkBody(plaintext, options.compression ?? DEFAULT_COMPRESSION_POLICY);
  const body = compressedBody ?? plaintext;
  const header = chunkHeader(compressedBody === undefined ? 0 : CHUNK_FLAG_ZSTD);
  // The nonce is derived from the exact bytes encrypted (header included, so the flag is bound): one body,
  // one nonce; two different bodies (e.g. the same chunk compressed two ways) never share one.
  const nonce = blake3Keyed(keys.nonceKey, [header, body], XCHACHA_NONCE_LENGTH);
  // Sealed in place: length ‖ body ‖ zero padding is laid out in `out` and encrypted over itself, so the
  // padding costs no buffer of its own. It is authenticated with the rest, and fixed by the body's length.
  const length = chunkObjectLength(body.length);
  const inner = out.subarray(SEALED_AT, length - XCHACHA_TAG_LENGTH);
  new DataView(inner.buffer, inner.byteOffset, CHUNK_BODY_LENGTH_LENGTH).setUint32(0, body.length, false);
  inner.set(body, CHUNK_BODY_LENGTH_LENGTH);
  inner.fill(0, CHUNK_BODY_LENGTH_LENGTH + body.length);
  out.set(header, 0);
  out.set(nonce, CHUNK_HEADER_LENGTH);
  xchachaSealInto(keys.chunkKey, nonce, inner, chunkAad(header, id), out, SEALED_AT);
  return {
    id,
    length,
    compressed: compressedBody !== undefined,
    padding: length - CHUNK_OVERHEAD - body.length,
  };
}

/**
 * The body inside a decrypted `length ‖ body ‖ padding`. Authenticated already; checked all the same, so that
 * exactly one object encodes each body (the object's length is the Padmé bucket of its body, the padding
 * zeros): a writer that padded otherwise is refused, not silently accepted.
 */
function unpad(inner: Uint8Array, objectLength: number, objectKey: string): Uint8Array {
  const bodyLength = new DataView(inner.buffer, inner.byteOffset, CHUNK_BODY_LENGTH_LENGTH).getUint32(
    0,
    false,
  );
  if (CHUNK_BODY_LENGTH_LENGTH + bodyLength > inner.length) {
    throw new IntegrityError(objectKey, `body length ${bodyLength} exceeds the object`);
  }
  if (chunkObjectLength(bodyLength) !== objectLength) {
    throw new IntegrityError(objectKey, `object is ${objectLength} bytes, not the padded length of its body`);
  }
  for (let i = CHUNK_BODY_LENGTH_LENGTH + bodyLength; i < inner.length; i++) {
    if (inner[i] !== 0) throw new IntegrityError(objectKey, 'padding is not zero');
  }
  return inner.subarray(CHUNK_BODY_LENGTH_LENGTH, CHUNK_BODY_LENGTH_LENGTH + bodyLength);
}

/** What the 6-byte header of a chunk object says, checked for magic and version only. */
export interface ChunkHeaderInfo {
  readonly version: number;
  readonly compressed: boolean;
}

/** Reads a chunk object's header without a key (for tools); throws on bad magic or an unsupported version. */
export function readChunkHeader(object: Uint8Array, objectKey?: string): ChunkHeaderInfo {
  if (object.length < CHUNK_OVERHEAD) {
    throw new IntegrityError(objectKey, `object is truncated (${object.length} bytes)`);
  }
  for (let i = 0; i < CHUNK_MAGIC.length; i++) {
    if (object[i] !== CHUNK_MAGIC[i]) throw new IntegrityError(objectKey, 'not a chunk object (bad magic)');
  }
  const version = object[4]!;
  checkObjectVersion(version, objectKey);
  const flags = object[5]!;
  if ((flags & ~CHUNK_FLAG_ZSTD) !== 0) {
    throw new IntegrityError(objectKey, `unknown flags 0x${flags.toString(16).padStart(2, '0')}`);
  }
  return { version, compressed: (flags & CHUNK_FLAG_ZSTD) !== 0 };
}

/**
 * Authenticates, decrypts and decompresses a chunk object, then recomputes its keyed id and compares it with
 * `id`. Returns the plaintext; any mismatch, truncation or wrong key throws `IntegrityError` naming the
 * object. `expectedLength` (from the manifest) is enforced when given. `name` names the object in errors
 * (default `chunks/<hh>/<id>`; a packed chunk's is its pack and range, `describeLocation`).
 */
export function openChunk(
  keys: TargetKeys,
  id: Uint8Array | string,
  object: Uint8Array,
  expectedLength?: number,
  name?: string,
): Uint8Array {
  const idBytes = typeof id === 'string' ? chunkIdFromHex(id) : id;
  const objectKey = name ?? chunkObjectKey(idBytes);
  if (expectedLength !== undefined && !(Number.isSafeInteger(expectedLength) && expectedLength >= 0)) {
    throw new RangeError(`invalid expected chunk length ${expectedLength}`);
  }
  if (expectedLength !== undefined && expectedLength > MAX_CHUNK_LENGTH) {
    throw new IntegrityError(objectKey, `expected length ${expectedLength} exceeds the format maximum`);
  }
  const { compressed } = readChunkHeader(object, objectKey);
  const header = object.subarray(0, CHUNK_HEADER_LENGTH);
  const nonce = object.subarray(CHUNK_HEADER_LENGTH, SEALED_AT);
  const sealed = object.subarray(SEALED_AT);
  const inner = xchachaOpen(keys.chunkKey, nonce, sealed, chunkAad(header, idBytes), objectKey);
  const body = unpad(inner, object.length, objectKey);
  let plaintext: Uint8Array;
  if (compressed) {
    plaintext = zstdDecompressExact(body, { expectedLength, maxLength: MAX_CHUNK_LENGTH, objectKey });
  } else {
    if (body.length > MAX_CHUNK_LENGTH) throw new IntegrityError(objectKey, 'raw body exceeds the maximum');
    if (expectedLength !== undefined && body.length !== expectedLength) {
      throw new IntegrityError(objectKey, `chunk is ${body.length} bytes, expected ${expectedLength}`);
    }
    plaintext = body;
  }
  if (!bytesEqual(chunkId(keys, plaintext), idBytes)) {
    throw new IntegrityError(objectKey, 'content does not match its chunk id');
  }
  return plaintext;
}
