// Packs (docs/format.md §5): the chunk objects a backup stores, appended into objects of about 8 MiB, so that a
// backup makes one PUT per pack instead of one per chunk and the bucket sees pack sizes, not chunk sizes.
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { fromHex, toHex } from './bytes.js';
import { CHUNK_OVERHEAD, maxChunkObjectLength } from './chunk.js';
import { MAX_CHUNK_LENGTH } from './compression.js';
import { FormatError } from './errors.js';

/** Bytes of a pack id: random, so a pack's name says nothing of what it holds. */
export const PACK_ID_LENGTH = 32;
/** Prefix of every pack's key: `packs/<first 2 hex>/<64 hex>`. */
export const PACKS_PREFIX = 'packs/';
/** A writer closes a pack before an object would take it past this many bytes (a writer's choice; readers take any size). */
export const DEFAULT_PACK_TARGET = 8 << 20;
/** Largest pack a reader accepts: offsets and lengths are 32-bit. */
export const MAX_PACK_LENGTH = 2 ** 32 - 1;
/** Smallest and largest chunk object a location may name. */
export const MIN_PACKED_OBJECT_LENGTH = CHUNK_OVERHEAD;
export const MAX_PACKED_OBJECT_LENGTH = maxChunkObjectLength(MAX_CHUNK_LENGTH);

const PACK_ID_HEX_RE = /^[0-9a-f]{64}$/;

/** Where a chunk's object lies: `length` bytes from `offset` in pack `pack`. */
export interface PackLocation {
  readonly pack: Uint8Array;
  readonly offset: number;
  /** The chunk object's length (padded, §4.3), not the chunk's. */
  readonly length: number;
}

/** A fresh pack id (CSPRNG). */
export function newPackId(randomBytes: (n: number) => Uint8Array = cryptoRandomBytes): Uint8Array {
  const id = new Uint8Array(randomBytes(PACK_ID_LENGTH));
  if (id.length !== PACK_ID_LENGTH) throw new TypeError('randomBytes returned the wrong length');
  return id;
}

/** Parses a 64-character lower-case hex pack id. */
export function packIdFromHex(hex: string): Uint8Array {
  if (!PACK_ID_HEX_RE.test(hex)) throw new FormatError(`invalid pack id ${JSON.stringify(hex)}`);
  return fromHex(hex)!;
}

/** Bucket object key of a pack: `packs/<first 2 hex>/<64 hex>`. */
export function packObjectKey(id: Uint8Array | string): string {
  const hex = typeof id === 'string' ? toHex(packIdFromHex(id)) : packIdHex(id);
  return `${PACKS_PREFIX}${hex.slice(0, 2)}/${hex}`;
}

/** Inverse of `packObjectKey`: the pack id's hex, or undefined for any other key. */
export function parsePackObjectKey(key: string): string | undefined {
  const m = /^packs\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key);
  return m && m[2]!.startsWith(m[1]!) ? m[2] : undefined;
}

function packIdHex(id: Uint8Array): string {
  if (!(id instanceof Uint8Array) || id.length !== PACK_ID_LENGTH)
    throw new TypeError(`pack id must be ${PACK_ID_LENGTH} bytes`);
  return toHex(id);
}

/** How a location is named in errors: `packs/ab/ab…@offset+length`. */
export function describeLocation(location: PackLocation): string {
  return `${packObjectKey(location.pack)}@${location.offset}+${location.length}`;
}

/**
 * Checks a location's numbers (not whether the pack exists): a chunk object's length within the format's
 * bounds, and the range within a pack's maximum. Returns the reason it is invalid, or undefined.
 */
export function locationProblem(offset: number, length: number): string | undefined {
  if (!Number.isSafeInteger(offset) || offset < 0) return `pack offset ${offset} is invalid`;
  if (!Number.isSafeInteger(length) || length < MIN_PACKED_OBJECT_LENGTH || length > MAX_PACKED_OBJECT_LENGTH)
    return `chunk object length ${length} outside ${MIN_PACKED_OBJECT_LENGTH}..${MAX_PACKED_OBJECT_LENGTH}`;
  if (offset + length > MAX_PACK_LENGTH) return `range ${offset}+${length} ends past a pack's maximum`;
  return undefined;
}

/** Throws (TypeError, RangeError) unless `location` is one a record can hold. */
export function checkLocation(location: PackLocation): void {
  if (!(location?.pack instanceof Uint8Array) || location.pack.length !== PACK_ID_LENGTH)
    throw new TypeError(`pack id must be ${PACK_ID_LENGTH} bytes`);
  const problem = locationProblem(location.offset, location.length);
  if (problem) throw new RangeError(problem);
}

/** Writes a location as pack id(32) ‖ offset(4, big-endian) ‖ object length(4, big-endian) at `at`. */
export function writeLocation(out: Uint8Array, at: number, location: PackLocation): void {
  checkLocation(location);
  out.set(location.pack, at);
  const view = new DataView(out.buffer, out.byteOffset + at + PACK_ID_LENGTH, 8);
  view.setUint32(0, location.offset, false);
  view.setUint32(4, location.length, false);
}

/** Bytes `writeLocation` writes. */
export const LOCATION_LENGTH = PACK_ID_LENGTH + 8;

/** Reads what `writeLocation` wrote; the pack id is a view (do not modify). */
export function readLocation(records: Uint8Array, at: number): PackLocation {
  const view = new DataView(records.buffer, records.byteOffset + at + PACK_ID_LENGTH, 8);
  return {
    pack: records.subarray(at, at + PACK_ID_LENGTH),
    offset: view.getUint32(0, false),
    length: view.getUint32(4, false),
  };
}
