import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { isUuid, uuidBytes } from './bytes.js';
import { cborDecode, cborEncode, cborUint } from './cbor.js';
import { CHUNK_ID_LENGTH, chunkId } from './chunk.js';
import { MAX_CHUNK_LENGTH } from './compression.js';
import { FormatError, IntegrityError } from './errors.js';
import type { TargetKeys } from './keys.js';
import {
  ENTRY_KIND_CHUNK,
  ENTRY_KIND_HOLE,
  ENTRY_RECORD_LENGTH,
  MAX_ENTRY_LENGTH,
  readEntryLength,
  writeEntryLength,
} from './manifest-entries.js';
import { checkLocation, type PackLocation, writeLocation } from './pack.js';
import { padmeLength } from './padding.js';
import { asUint, type ChunkerParams, chunkerParamsDocument, validateChunkerParams } from './params.js';
import { checkObjectVersion, FORMAT_VERSION } from './version.js';
import { XCHACHA_NONCE_LENGTH, XCHACHA_TAG_LENGTH, xchachaOpen, xchachaSealInto } from './xchacha.js';

/** Manifest (root) object magic: ASCII "STWM". */
export const MANIFEST_MAGIC = Uint8Array.of(0x53, 0x54, 0x57, 0x4d);
export const MANIFEST_HEADER_LENGTH = 6;
/** The root's body length, inside the ciphertext before the body: 4 bytes, big-endian. */
const BODY_LENGTH_LENGTH = 4;
/** Bytes a root object adds to its CBOR body before padding: header, nonce, body length and tag. */
export const MANIFEST_OVERHEAD =
  MANIFEST_HEADER_LENGTH + XCHACHA_NONCE_LENGTH + BODY_LENGTH_LENGTH + XCHACHA_TAG_LENGTH;
const SEALED_AT = MANIFEST_HEADER_LENGTH + XCHACHA_NONCE_LENGTH;
/** Largest root object a reader accepts (4 MiB: 65,536 segment ids are 2 MiB). */
export const MAX_MANIFEST_LENGTH = 2 ** 22;
/** Entries per segment written by default: 5 MiB of records, 64 GiB of volume at 1 MiB chunks. */
export const DEFAULT_SEGMENT_ENTRIES = 65_536;
/** Largest `segmentEntries` allowed: 10 MiB of records, within a chunk's 16 MiB. */
export const MAX_SEGMENT_ENTRIES = 131_072;
/** Most segments one manifest may have (2 MiB of ids in the root; 2^32 entries at the default size). */
export const MAX_MANIFEST_SEGMENTS = 65_536;
/** Largest volume name, in Unicode code points (after NFC). */
export const MAX_VOLUME_NAME_LENGTH = 1024;
/** Bytes of one segment id in the root's `segments` (a chunk id). */
export const SEGMENT_ID_LENGTH = CHUNK_ID_LENGTH;

/** Everything a manifest records besides its entries and their totals. */
export interface ManifestMeta {
  readonly backupId: string;
  readonly volumeId: string;
  /** Unicode NFC (the builder normalizes it). */
  readonly volumeName: string;
  readonly volumeSize: number;
  readonly createdAt: Date;
  readonly chunker: ChunkerParams;
}

/** Counts over every entry of a manifest, stated in its root and checked against the segments. */
export interface ManifestTotals {
  readonly entryCount: number;
  readonly chunkCount: number;
  readonly chunkBytes: number;
  readonly holeBytes: number;
}

/**
 * A manifest as its root object holds it (docs/format.md §6): the backup's description, the totals of its
 * entries, and the ordered ids of the segments that hold the entries (chunk objects, read with
 * `readManifestSegments`). Small whatever the volume: 32 bytes per segment.
 */
export interface Manifest extends ManifestMeta, ManifestTotals {
  readonly version: number;
  /** Entries per segment (every segment but the last holds exactly this many). */
  readonly segmentEntries: number;
  /** Segment ids in order, `SEGMENT_ID_LENGTH` bytes each. Do not modify. */
  readonly segments: Uint8Array;
}

/** Number of segments of a manifest. */
export function manifestSegmentCount(manifest: Pick<Manifest, 'segments'>): number {
  return manifest.segments.length / SEGMENT_ID_LENGTH;
}

/** Id of segment `index` (a view of `manifest.segments`; do not modify). */
export function manifestSegmentId(manifest: Pick<Manifest, 'segments'>, index: number): Uint8Array {
  if (!Number.isInteger(index) || index < 0 || index >= manifestSegmentCount(manifest))
    throw new RangeError(`no segment ${index}`);
  return manifest.segments.subarray(index * SEGMENT_ID_LENGTH, (index + 1) * SEGMENT_ID_LENGTH);
}

/** Entries segment `index` holds: `segmentEntries`, except the last, which holds the rest (≥ 1). */
export function manifestSegmentEntryCount(
  manifest: Pick<Manifest, 'segments' | 'segmentEntries' | 'entryCount'>,
  index: number,
): number {
  const count = manifestSegmentCount(manifest);
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new RangeError(`no segment ${index}`);
  return index < count - 1
    ? manifest.segmentEntries
    : manifest.entryCount - (count - 1) * manifest.segmentEntries;
}

/** One segment cut by `ManifestBuilder`: to be stored as the chunk object of `records` before the root. */
export interface ManifestSegmentOut {
  readonly index: number;
  /** The chunk id of `records` (keyed BLAKE3, §4.2). */
  readonly id: Uint8Array;
  /** The packed entry records; the builder no longer touches them. */
  readonly records: Uint8Array;
}

export interface ManifestBuilderOptions {
  /** Entries per segment (default `DEFAULT_SEGMENT_ENTRIES`, at most `MAX_SEGMENT_ENTRIES`). */
  readonly segmentEntries?: number;
}

/**
 * Accumulates a backup's entries in volume order (adjacent holes merged) and cuts them into segments of
 * `segmentEntries` records as it goes. Memory is one segment's records (≤ 80 × `segmentEntries` bytes, grown
 * as needed), the segment just cut until the caller takes it, and 32 bytes per segment for the root.
 *
 * After any `addChunk` or `addHole` a segment may be ready: take it with `takeSegment` and store it. A second
 * segment cannot be cut while one waits (an add that would cut it throws), so the caller cannot let them pile
 * up. `finish` cuts the last one; `build` then makes the root.
 */
export class ManifestBuilder {
  readonly segmentEntries: number;
  readonly #keys: TargetKeys;
  #records: Uint8Array;
  #used = 0;
  #lastIsHole = false;
  #total = 0;
  #entries = 0;
  #chunks = 0;
  #chunkBytes = 0;
  #segments = new Uint8Array(4 * SEGMENT_ID_LENGTH);
  #segmentCount = 0;
  #pending: ManifestSegmentOut | undefined;
  #finished = false;

  constructor(keys: TargetKeys, options: ManifestBuilderOptions = {}) {
    const n = options.segmentEntries ?? DEFAULT_SEGMENT_ENTRIES;
    if (!Number.isInteger(n) || n < 1 || n > MAX_SEGMENT_ENTRIES) {
      throw new RangeError(`segmentEntries ${n} outside 1..${MAX_SEGMENT_ENTRIES}`);
    }
    this.#keys = keys;
    this.segmentEntries = n;
    this.#records = new Uint8Array(Math.min(n, 1024) * ENTRY_RECORD_LENGTH);
  }

  /** Entries so far (a hole merged into the one before it is not a new entry). */
  get entryCount(): number {
    return this.#entries;
  }

  /** Bytes covered so far (the offset of the next entry). */
  get totalLength(): number {
    return this.#total;
  }

  /** Segments cut so far. */
  get segmentCount(): number {
    return this.#segmentCount;
  }

  /**
   * Bytes of buffers the builder holds: the current segment's records, a cut segment not yet taken, and the
   * segment ids. What bounds a backup's manifest memory (measured by the tests, not estimated).
   */
  get retainedBytes(): number {
    return this.#records.byteLength + (this.#pending?.records.byteLength ?? 0) + this.#segments.byteLength;
  }

  /** Records a chunk of `length` bytes whose object is at `location` (docs/format.md §5.1). */
  addChunk(id: Uint8Array, length: number, location: PackLocation): void {
    if (!(id instanceof Uint8Array) || id.length !== CHUNK_ID_LENGTH)
      throw new TypeError('chunk id must be 32 bytes');
    if (!Number.isInteger(length) || length < 1 || length > MAX_CHUNK_LENGTH) {
      throw new RangeError(`chunk length ${length} outside 1..${MAX_CHUNK_LENGTH}`);
    }
    checkLocation(location);
    this.#checkAdd(length);
    const at = this.#append(ENTRY_KIND_CHUNK, length);
    this.#records.set(id, at + 8);
    writeLocation(this.#records, at + 8 + CHUNK_ID_LENGTH, location);
    this.#lastIsHole = false;
    this.#chunks++;
    this.#chunkBytes += length;
  }

  /** Records `length` zero bytes that are not stored; merged into the previous entry when that is a hole. */
  addHole(length: number): void {
    if (!Number.isSafeInteger(length) || length < 1)
      throw new RangeError(`hole length ${length} must be ≥ 1`);
    this.#checkAdd(length);
    if (this.#lastIsHole) {
      // The last record is always still in the current segment: a full one is cut only when the next
      // record that cannot merge arrives.
      const at = this.#used - ENTRY_RECORD_LENGTH;
      writeEntryLength(this.#records, at, readEntryLength(this.#records, at) + length);
      this.#total += length;
      return;
    }
    const at = this.#append(ENTRY_KIND_HOLE, length);
    this.#records.fill(0, at + 8, at + ENTRY_RECORD_LENGTH);
    this.#lastIsHole = true;
  }

  /** The segment cut by the last add (or by `finish`), once; then undefined until the next one is cut. */
  takeSegment(): ManifestSegmentOut | undefined {
    const segment = this.#pending;
    this.#pending = undefined;
    return segment;
  }

  /** Cuts the last, partial segment and returns it (undefined when there are no entries left to cut). */
  finish(): ManifestSegmentOut | undefined {
    if (!this.#finished) {
      if (this.#used > 0) this.#cut();
      this.#finished = true;
      this.#records = new Uint8Array(0);
    }
    return this.takeSegment();
  }

  /**
   * The manifest's root, after `finish` and once every segment was taken; `meta.volumeSize` must equal the
   * bytes added. The volume name is normalized to NFC.
   */
  build(meta: ManifestMeta): Manifest {
    if (!this.#finished) throw new Error('ManifestBuilder: call finish() before build()');
    if (this.#pending) throw new Error('ManifestBuilder: the last segment was not taken');
    const manifest: Manifest = {
      version: FORMAT_VERSION,
      backupId: meta.backupId,
      volumeId: meta.volumeId,
      volumeName: typeof meta.volumeName === 'string' ? meta.volumeName.normalize('NFC') : meta.volumeName,
      volumeSize: meta.volumeSize,
      createdAt: meta.createdAt,
      chunker: meta.chunker,
      entryCount: this.#entries,
      chunkCount: this.#chunks,
      chunkBytes: this.#chunkBytes,
      holeBytes: this.#total - this.#chunkBytes,
      segmentEntries: this.segmentEntries,
      segments: this.#segments.slice(0, this.#segmentCount * SEGMENT_ID_LENGTH),
    };
    validateManifest(manifest);
    return manifest;
  }

  #checkAdd(length: number): void {
    if (this.#finished) throw new Error('ManifestBuilder: finished, no more entries');
    if (this.#total + length > MAX_ENTRY_LENGTH) throw new RangeError('manifest would exceed 2^53 − 1 bytes');
  }

  #append(kind: number, length: number): number {
    const full = this.segmentEntries * ENTRY_RECORD_LENGTH;
    if (this.#used === full) this.#cut();
    if (this.#used + ENTRY_RECORD_LENGTH > this.#records.length) {
      const grown = new Uint8Array(Math.min(full, this.#records.length * 2));
      grown.set(this.#records.subarray(0, this.#used));
      this.#records = grown;
    }
    const at = this.#used;
    this.#records[at] = kind;
    writeEntryLength(this.#records, at, length);
    this.#used += ENTRY_RECORD_LENGTH;
    this.#total += length;
    this.#entries++;
    return at;
  }

  #cut(): void {
    if (this.#pending) {
      throw new Error('ManifestBuilder: a segment is waiting; takeSegment() it before adding more entries');
    }
    if (this.#segmentCount >= MAX_MANIFEST_SEGMENTS) {
      throw new RangeError(
        `manifest would exceed ${MAX_MANIFEST_SEGMENTS} segments (use a larger segmentEntries)`,
      );
    }
    const records = this.#records.subarray(0, this.#used);
    const id = chunkId(this.#keys, records);
    if ((this.#segmentCount + 1) * SEGMENT_ID_LENGTH > this.#segments.length) {
      const grown = new Uint8Array(this.#segments.length * 2);
      grown.set(this.#segments);
      this.#segments = grown;
    }
    this.#segments.set(id, this.#segmentCount * SEGMENT_ID_LENGTH);
    this.#pending = { index: this.#segmentCount, id, records };
    this.#segmentCount++;
    // The next segment is about as large as this one was: a fresh buffer of the full size.
    this.#records = new Uint8Array(this.segmentEntries * ENTRY_RECORD_LENGTH);
    this.#used = 0;
  }
}

/** Bucket key of a manifest's root: `manifests/<volume-id>/<backup-id>`. */
export function manifestObjectKey(volumeId: string, backupId: string): string {
  if (!isUuid(volumeId)) throw new FormatError(`invalid volume id ${JSON.stringify(volumeId)}`);
  if (!isUuid(backupId)) throw new FormatError(`invalid backup id ${JSON.stringify(backupId)}`);
  return `manifests/${volumeId}/${backupId}`;
}

/** Inverse of `manifestObjectKey` (relative to the repository root); undefined for any other key. */
export function parseManifestObjectKey(key: string): { volumeId: string; backupId: string } | undefined {
  const parts = key.split('/');
  if (parts.length !== 3 || parts[0] !== 'manifests' || !isUuid(parts[1]) || !isUuid(parts[2]))
    return undefined;
  return { volumeId: parts[1], backupId: parts[2] };
}

/** A UTF-16 surrogate that is not half of a pair: the string has no UTF-8 encoding. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Code points of a string (what `MAX_VOLUME_NAME_LENGTH` counts). */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function validateManifest(m: Manifest, objectKey?: string, reading = false): void {
  const fail = (why: string): never => {
    throw new FormatError(`invalid manifest: ${why}`, objectKey);
  };
  if (!isUuid(m.backupId)) fail('backupId must be a lower-case UUID');
  if (!isUuid(m.volumeId)) fail('volumeId must be a lower-case UUID');
  if (typeof m.volumeName !== 'string' || codePoints(m.volumeName) > MAX_VOLUME_NAME_LENGTH) {
    fail(`volumeName must be a string of at most ${MAX_VOLUME_NAME_LENGTH} code points`);
  }
  // Writers normalize; a reader takes the name as it is (a display name, never a key).
  if (!reading && (LONE_SURROGATE.test(m.volumeName) || m.volumeName.normalize('NFC') !== m.volumeName)) {
    fail('volumeName must be well-formed Unicode in NFC');
  }
  if (!Number.isSafeInteger(m.volumeSize) || m.volumeSize < 0)
    fail('volumeSize must be a non-negative integer');
  const ms = m.createdAt instanceof Date ? m.createdAt.getTime() : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 0) fail('createdAt must be a valid date after 1970');
  validateChunkerParams(m.chunker, objectKey);
  const uint = (n: number) => Number.isSafeInteger(n) && n >= 0;
  if (![m.entryCount, m.chunkCount, m.chunkBytes, m.holeBytes].every(uint))
    fail('entry totals must be non-negative integers');
  if (m.chunkCount > m.entryCount) fail(`chunkCount ${m.chunkCount} exceeds entryCount ${m.entryCount}`);
  if (m.chunkBytes + m.holeBytes !== m.volumeSize) {
    fail(`chunkBytes + holeBytes = ${m.chunkBytes + m.holeBytes}, but volumeSize is ${m.volumeSize}`);
  }
  if (!Number.isInteger(m.segmentEntries) || m.segmentEntries < 1 || m.segmentEntries > MAX_SEGMENT_ENTRIES)
    fail(`segmentEntries must be in 1..${MAX_SEGMENT_ENTRIES}`);
  if (!(m.segments instanceof Uint8Array)) fail('segments must be a byte string');
  const expected = Math.ceil(m.entryCount / m.segmentEntries);
  if (expected > MAX_MANIFEST_SEGMENTS) fail(`more than ${MAX_MANIFEST_SEGMENTS} segments`);
  if (m.segments.length !== expected * SEGMENT_ID_LENGTH) {
    fail(
      `segments holds ${m.segments.length} bytes; ${m.entryCount} entries of ${m.segmentEntries} per segment ` +
        `need ${expected} ids (${expected * SEGMENT_ID_LENGTH} bytes)`,
    );
  }
}

function manifestHeader(): Uint8Array {
  const header = new Uint8Array(MANIFEST_HEADER_LENGTH);
  header.set(MANIFEST_MAGIC, 0);
  header[4] = FORMAT_VERSION;
  header[5] = 0;
  return header;
}

// The AAD binds the root to its key: a root copied to another backup's or another volume's key fails
// authentication.
function manifestAad(header: Uint8Array, volumeId: string, backupId: string): Uint8Array {
  const aad = new Uint8Array(MANIFEST_HEADER_LENGTH + 32);
  aad.set(header, 0);
  aad.set(uuidBytes(volumeId), MANIFEST_HEADER_LENGTH);
  aad.set(uuidBytes(backupId), MANIFEST_HEADER_LENGTH + 16);
  return aad;
}

/** Length of the root object holding a CBOR body of `bodyLength` bytes: Padmé of the unpadded length. */
export function manifestObjectLength(bodyLength: number): number {
  return padmeLength(MANIFEST_OVERHEAD + bodyLength);
}

export interface EncodeManifestOptions {
  /** Source of the random nonce (tests and golden vectors inject a fixed one). Default: node:crypto. */
  readonly randomBytes?: (length: number) => Uint8Array;
}

/**
 * Serializes, pads and encrypts a manifest's root: the bytes to store at `manifestObjectKey(...)`, after every
 * segment it names (and every chunk they name) is stored.
 */
export function encodeManifest(
  keys: TargetKeys,
  manifest: Manifest,
  options: EncodeManifestOptions = {},
): Uint8Array {
  validateManifest(manifest);
  const cbor = cborEncode({
    version: FORMAT_VERSION,
    backupId: manifest.backupId,
    volumeId: manifest.volumeId,
    volumeName: manifest.volumeName,
    volumeSize: cborUint(manifest.volumeSize),
    createdAt: cborUint(manifest.createdAt.getTime()),
    chunker: chunkerParamsDocument(manifest.chunker),
    entryCount: cborUint(manifest.entryCount),
    chunkCount: cborUint(manifest.chunkCount),
    chunkBytes: cborUint(manifest.chunkBytes),
    holeBytes: cborUint(manifest.holeBytes),
    segmentEntries: manifest.segmentEntries,
    segments: manifest.segments,
  });
  const length = manifestObjectLength(cbor.length);
  if (length > MAX_MANIFEST_LENGTH) throw new RangeError('manifest exceeds the format maximum size');
  const header = manifestHeader();
  const nonce = (options.randomBytes ?? cryptoRandomBytes)(XCHACHA_NONCE_LENGTH);
  if (nonce.length !== XCHACHA_NONCE_LENGTH) throw new TypeError('randomBytes returned the wrong length');
  const object = new Uint8Array(length);
  // body length ‖ body ‖ zero padding, encrypted in place.
  const inner = object.subarray(SEALED_AT, length - XCHACHA_TAG_LENGTH);
  new DataView(inner.buffer, inner.byteOffset, BODY_LENGTH_LENGTH).setUint32(0, cbor.length, false);
  inner.set(cbor, BODY_LENGTH_LENGTH);
  object.set(header, 0);
  object.set(nonce, MANIFEST_HEADER_LENGTH);
  xchachaSealInto(
    keys.manifestKey,
    nonce,
    inner,
    manifestAad(header, manifest.volumeId, manifest.backupId),
    object,
    SEALED_AT,
  );
  return object;
}

export interface DecodeManifestOptions {
  /** The volume the object is expected to belong to (from its key); authenticated through the AAD. */
  readonly volumeId: string;
  /** The backup the object is expected to hold (from its key); authenticated through the AAD. */
  readonly backupId: string;
  /** Name used in errors; default `manifests/<volume>/<backup>`. */
  readonly objectKey?: string;
}

/**
 * Authenticates, decrypts and validates a manifest's root. Throws `IntegrityError` (tampering, truncation,
 * wrong key, or a root of another backup or volume), `UnsupportedFormatVersionError` or `FormatError`. The
 * entries are read afterwards, segment by segment (`readManifestSegments`).
 */
export function decodeManifest(
  keys: TargetKeys,
  object: Uint8Array,
  options: DecodeManifestOptions,
): Manifest {
  const { volumeId, backupId } = options;
  if (!isUuid(volumeId)) throw new FormatError(`invalid volume id ${JSON.stringify(volumeId)}`);
  if (!isUuid(backupId)) throw new FormatError(`invalid backup id ${JSON.stringify(backupId)}`);
  const objectKey = options.objectKey ?? manifestObjectKey(volumeId, backupId);
  if (object.length < MANIFEST_OVERHEAD)
    throw new IntegrityError(objectKey, `object is truncated (${object.length} bytes)`);
  if (object.length > MAX_MANIFEST_LENGTH)
    throw new IntegrityError(objectKey, `object is larger than ${MAX_MANIFEST_LENGTH} bytes`);
  for (let i = 0; i < MANIFEST_MAGIC.length; i++) {
    if (object[i] !== MANIFEST_MAGIC[i]) throw new IntegrityError(objectKey, 'not a manifest (bad magic)');
  }
  const version = object[4]!;
  checkObjectVersion(version, objectKey);
  if (object[5] !== 0) throw new IntegrityError(objectKey, `unknown flags ${object[5]}`);
  const header = object.subarray(0, MANIFEST_HEADER_LENGTH);
  const inner = xchachaOpen(
    keys.manifestKey,
    object.subarray(MANIFEST_HEADER_LENGTH, SEALED_AT),
    object.subarray(SEALED_AT),
    manifestAad(header, volumeId, backupId),
    objectKey,
  );
  const bodyLength = new DataView(inner.buffer, inner.byteOffset, BODY_LENGTH_LENGTH).getUint32(0, false);
  if (BODY_LENGTH_LENGTH + bodyLength > inner.length)
    throw new IntegrityError(objectKey, `body length ${bodyLength} exceeds the object`);
  if (manifestObjectLength(bodyLength) !== object.length)
    throw new IntegrityError(
      objectKey,
      `object is ${object.length} bytes, not the padded length of its body`,
    );
  for (let i = BODY_LENGTH_LENGTH + bodyLength; i < inner.length; i++) {
    if (inner[i] !== 0) throw new IntegrityError(objectKey, 'padding is not zero');
  }
  const doc = cborDecode(inner.subarray(BODY_LENGTH_LENGTH, BODY_LENGTH_LENGTH + bodyLength), objectKey);
  const fail = (why: string): never => {
    throw new FormatError(`invalid manifest: ${why}`, objectKey);
  };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('not a CBOR map');
  const d = doc as Record<string, unknown>;
  if (asUint(d.version) !== version)
    fail(`version field ${String(d.version)} differs from the header's ${version}`);
  const str = (name: string): string =>
    typeof d[name] === 'string' ? (d[name] as string) : fail(`${name} missing`);
  const uint = (name: string): number => asUint(d[name]) ?? fail(`${name} must be an unsigned integer`);
  if (!(d.segments instanceof Uint8Array)) fail('segments must be a byte string');
  const manifest: Manifest = {
    version,
    backupId: str('backupId'),
    volumeId: str('volumeId'),
    volumeName: str('volumeName'),
    volumeSize: uint('volumeSize'),
    createdAt: new Date(uint('createdAt')),
    chunker: validateChunkerParams(d.chunker, objectKey),
    entryCount: uint('entryCount'),
    chunkCount: uint('chunkCount'),
    chunkBytes: uint('chunkBytes'),
    holeBytes: uint('holeBytes'),
    segmentEntries: uint('segmentEntries'),
    segments: d.segments as Uint8Array,
  };
  validateManifest(manifest, objectKey, true);
  if (manifest.backupId !== backupId) fail(`holds backup ${manifest.backupId}, expected ${backupId}`);
  if (manifest.volumeId !== volumeId) fail(`holds volume ${manifest.volumeId}, expected ${volumeId}`);
  return manifest;
}
