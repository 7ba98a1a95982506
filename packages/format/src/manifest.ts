import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { isUuid, toHex, uuidBytes } from './bytes.js';
import { cborDecode, cborEncode, cborUint } from './cbor.js';
import { CHUNK_ID_LENGTH } from './chunk.js';
import { MAX_CHUNK_LENGTH, zstdCompress, zstdDecompressExact } from './compression.js';
import { FormatError, IntegrityError, UnsupportedFormatVersionError } from './errors.js';
import type { TargetKeys } from './keys.js';
import { asUint, type ChunkerParams, validateChunkerParams } from './params.js';
import { FORMAT_VERSION } from './version.js';
import { XCHACHA_NONCE_LENGTH, XCHACHA_TAG_LENGTH, xchachaOpen, xchachaSealInto } from './xchacha.js';

/** Manifest object magic: ASCII "STWM". */
export const MANIFEST_MAGIC = Uint8Array.of(0x53, 0x54, 0x57, 0x4d);
export const MANIFEST_HEADER_LENGTH = 6;
/** Flag bit: the plaintext is one zstd frame (always set by version-1 writers). */
export const MANIFEST_FLAG_ZSTD = 0x01;
/** Largest decompressed manifest a reader accepts (2 GiB ≈ 53 million entries). */
export const MAX_MANIFEST_LENGTH = 2 ** 31;
/** Bytes of one packed entry record: kind(1) ‖ length(7, big-endian) ‖ chunk id(32). */
export const ENTRY_RECORD_LENGTH = 40;
export const ENTRY_KIND_CHUNK = 0;
export const ENTRY_KIND_HOLE = 1;
/** Largest length one record can state (2^53 − 1: a safe integer; 7 bytes hold it). */
export const MAX_ENTRY_LENGTH = Number.MAX_SAFE_INTEGER;
export const MAX_VOLUME_NAME_LENGTH = 1024;
const MANIFEST_ZSTD_LEVEL = 3;

export type ManifestEntry =
  | { readonly kind: 'chunk'; readonly id: Uint8Array; readonly length: number; readonly offset: number }
  | { readonly kind: 'hole'; readonly length: number; readonly offset: number };

/** Everything a manifest records besides its entries. */
export interface ManifestMeta {
  readonly backupId: string;
  readonly volumeId: string;
  readonly volumeName: string;
  readonly volumeSize: number;
  readonly createdAt: Date;
  readonly chunker: ChunkerParams;
}

export interface Manifest extends ManifestMeta {
  readonly version: number;
  readonly entries: ManifestEntries;
}

function writeLength(records: Uint8Array, at: number, length: number): void {
  // 7-byte big-endian: high 3 bytes from the part above 2^32, low 4 from the rest.
  const high = Math.floor(length / 2 ** 32);
  const low = length >>> 0;
  records[at + 1] = (high >>> 16) & 0xff;
  records[at + 2] = (high >>> 8) & 0xff;
  records[at + 3] = high & 0xff;
  records[at + 4] = (low >>> 24) & 0xff;
  records[at + 5] = (low >>> 16) & 0xff;
  records[at + 6] = (low >>> 8) & 0xff;
  records[at + 7] = low & 0xff;
}

function readLength(records: Uint8Array, at: number): number {
  const high = (records[at + 1]! << 16) | (records[at + 2]! << 8) | records[at + 3]!;
  const low =
    ((records[at + 4]! << 24) | (records[at + 5]! << 16) | (records[at + 6]! << 8) | records[at + 7]!) >>> 0;
  return high * 2 ** 32 + low;
}

/**
 * The ordered entries of a manifest, kept as the packed 40-byte records they travel in (a TiB volume of
 * 1 MiB chunks is ~40 MiB here, not a million objects). Entries are materialized only when asked for.
 */
export class ManifestEntries implements Iterable<ManifestEntry> {
  /** Packed records, `count × ENTRY_RECORD_LENGTH` bytes. Do not modify. */
  readonly records: Uint8Array;
  readonly count: number;
  /** Sum of every entry's length (the volume size). */
  readonly totalLength: number;
  readonly chunkCount: number;
  readonly chunkBytes: number;
  readonly holeBytes: number;

  /** Validates `records` (throws `FormatError`); keeps a reference to them, no copy. */
  constructor(records: Uint8Array, objectKey?: string) {
    if (records.length % ENTRY_RECORD_LENGTH !== 0) {
      throw new FormatError(
        `entries are ${records.length} bytes, not a multiple of ${ENTRY_RECORD_LENGTH}`,
        objectKey,
      );
    }
    let total = 0;
    let chunks = 0;
    let chunkBytes = 0;
    for (let at = 0; at < records.length; at += ENTRY_RECORD_LENGTH) {
      const kind = records[at]!;
      const length = readLength(records, at);
      const index = at / ENTRY_RECORD_LENGTH;
      if (length < 1) throw new FormatError(`entry ${index} has length 0`, objectKey);
      if (kind === ENTRY_KIND_CHUNK) {
        if (length > MAX_CHUNK_LENGTH)
          throw new FormatError(`entry ${index}: chunk longer than allowed`, objectKey);
        chunks++;
        chunkBytes += length;
      } else if (kind === ENTRY_KIND_HOLE) {
        for (let i = 8; i < ENTRY_RECORD_LENGTH; i++) {
          if (records[at + i] !== 0)
            throw new FormatError(`entry ${index}: hole with a non-zero id`, objectKey);
        }
      } else {
        throw new FormatError(`entry ${index} has unknown kind ${kind}`, objectKey);
      }
      total += length;
      if (total > MAX_ENTRY_LENGTH)
        throw new FormatError('entries add up to more than 2^53 − 1 bytes', objectKey);
    }
    this.records = records;
    this.count = records.length / ENTRY_RECORD_LENGTH;
    this.totalLength = total;
    this.chunkCount = chunks;
    this.chunkBytes = chunkBytes;
    this.holeBytes = total - chunkBytes;
  }

  /** Entry `index` with its byte offset in the volume (O(index) for the offset: prefer iteration). */
  get(index: number): ManifestEntry {
    if (!Number.isInteger(index) || index < 0 || index >= this.count)
      throw new RangeError(`no entry ${index}`);
    let offset = 0;
    for (let at = 0; at < index * ENTRY_RECORD_LENGTH; at += ENTRY_RECORD_LENGTH)
      offset += readLength(this.records, at);
    return this.entryAt(index * ENTRY_RECORD_LENGTH, offset);
  }

  /** Length of entry `index`, in O(1). */
  lengthAt(index: number): number {
    return readLength(this.records, this.recordAt(index));
  }

  /** Whether entry `index` is a chunk (not a hole). */
  isChunkAt(index: number): boolean {
    return this.records[this.recordAt(index)] === ENTRY_KIND_CHUNK;
  }

  /** Chunk id of entry `index` as a view of the records (do not modify), in O(1); throws for a hole. */
  idAt(index: number): Uint8Array {
    const at = this.recordAt(index);
    if (this.records[at] !== ENTRY_KIND_CHUNK) throw new RangeError(`entry ${index} is a hole`);
    return this.records.subarray(at + 8, at + ENTRY_RECORD_LENGTH);
  }

  private recordAt(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.count)
      throw new RangeError(`no entry ${index}`);
    return index * ENTRY_RECORD_LENGTH;
  }

  private entryAt(at: number, offset: number): ManifestEntry {
    const length = readLength(this.records, at);
    if (this.records[at] === ENTRY_KIND_HOLE) return { kind: 'hole', length, offset };
    return { kind: 'chunk', id: this.records.slice(at + 8, at + ENTRY_RECORD_LENGTH), length, offset };
  }

  *[Symbol.iterator](): Iterator<ManifestEntry> {
    let offset = 0;
    for (let at = 0; at < this.records.length; at += ENTRY_RECORD_LENGTH) {
      const entry = this.entryAt(at, offset);
      offset += entry.length;
      yield entry;
    }
  }

  /** Chunk ids in order, as lower-case hex, duplicates included (for GC marking and verification). */
  *chunkIdsHex(): Iterable<string> {
    for (let at = 0; at < this.records.length; at += ENTRY_RECORD_LENGTH) {
      if (this.records[at] === ENTRY_KIND_CHUNK)
        yield toHex(this.records.subarray(at + 8, at + ENTRY_RECORD_LENGTH));
    }
  }
}

/**
 * Accumulates entries in order as a backup runs: 40 bytes per entry in one growing buffer (amortized),
 * adjacent holes merged.
 */
export class ManifestBuilder {
  private records: Uint8Array;
  private used = 0;
  private lastIsHole = false;
  private total = 0;

  constructor(options: { initialCapacity?: number } = {}) {
    this.records = new Uint8Array(Math.max(16, options.initialCapacity ?? 1024) * ENTRY_RECORD_LENGTH);
  }

  get entryCount(): number {
    return this.used / ENTRY_RECORD_LENGTH;
  }

  /** Bytes covered so far (the offset of the next entry). */
  get totalLength(): number {
    return this.total;
  }

  private append(kind: number, length: number): number {
    if (this.used + ENTRY_RECORD_LENGTH > this.records.length) {
      const grown = new Uint8Array(this.records.length * 2);
      grown.set(this.records.subarray(0, this.used));
      this.records = grown;
    }
    const at = this.used;
    this.records[at] = kind;
    writeLength(this.records, at, length);
    this.used += ENTRY_RECORD_LENGTH;
    this.total += length;
    return at;
  }

  private checkTotal(length: number): void {
    if (this.total + length > MAX_ENTRY_LENGTH) throw new RangeError('manifest would exceed 2^53 − 1 bytes');
  }

  addChunk(id: Uint8Array, length: number): void {
    if (!(id instanceof Uint8Array) || id.length !== CHUNK_ID_LENGTH)
      throw new TypeError('chunk id must be 32 bytes');
    if (!Number.isInteger(length) || length < 1 || length > MAX_CHUNK_LENGTH) {
      throw new RangeError(`chunk length ${length} outside 1..${MAX_CHUNK_LENGTH}`);
    }
    this.checkTotal(length);
    const at = this.append(ENTRY_KIND_CHUNK, length);
    this.records.set(id, at + 8);
    this.lastIsHole = false;
  }

  /** Records `length` zero bytes that are not stored; merged into the previous entry when that is a hole. */
  addHole(length: number): void {
    if (!Number.isSafeInteger(length) || length < 1)
      throw new RangeError(`hole length ${length} must be ≥ 1`);
    this.checkTotal(length);
    if (this.lastIsHole) {
      const at = this.used - ENTRY_RECORD_LENGTH;
      writeLength(this.records, at, readLength(this.records, at) + length);
      this.total += length;
      return;
    }
    const at = this.append(ENTRY_KIND_HOLE, length);
    this.records.fill(0, at + 8, at + ENTRY_RECORD_LENGTH);
    this.lastIsHole = true;
  }

  /** The manifest; `meta.volumeSize` must equal the bytes added. The builder may keep being used. */
  build(meta: ManifestMeta): Manifest {
    const entries = new ManifestEntries(this.records.slice(0, this.used));
    const manifest: Manifest = { version: FORMAT_VERSION, ...meta, entries };
    validateManifest(manifest);
    return manifest;
  }
}

/** Bucket key of a manifest: `manifests/<volume-id>/<backup-id>`. */
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

function validateManifest(m: Manifest, objectKey?: string): void {
  const fail = (why: string): never => {
    throw new FormatError(`invalid manifest: ${why}`, objectKey);
  };
  if (!isUuid(m.backupId)) fail('backupId must be a lower-case UUID');
  if (!isUuid(m.volumeId)) fail('volumeId must be a lower-case UUID');
  if (typeof m.volumeName !== 'string' || m.volumeName.length > MAX_VOLUME_NAME_LENGTH) {
    fail(`volumeName must be a string of at most ${MAX_VOLUME_NAME_LENGTH} characters`);
  }
  if (!Number.isSafeInteger(m.volumeSize) || m.volumeSize < 0)
    fail('volumeSize must be a non-negative integer');
  const ms = m.createdAt instanceof Date ? m.createdAt.getTime() : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 0) fail('createdAt must be a valid date after 1970');
  validateChunkerParams(m.chunker, objectKey);
  if (m.entries.totalLength !== m.volumeSize) {
    fail(`entries cover ${m.entries.totalLength} bytes but volumeSize is ${m.volumeSize}`);
  }
}

function manifestHeader(): Uint8Array {
  const header = new Uint8Array(MANIFEST_HEADER_LENGTH);
  header.set(MANIFEST_MAGIC, 0);
  header[4] = FORMAT_VERSION;
  header[5] = MANIFEST_FLAG_ZSTD;
  return header;
}

function manifestAad(header: Uint8Array, backupId: string): Uint8Array {
  const aad = new Uint8Array(MANIFEST_HEADER_LENGTH + 16);
  aad.set(header, 0);
  aad.set(uuidBytes(backupId), MANIFEST_HEADER_LENGTH);
  return aad;
}

export interface EncodeManifestOptions {
  /** Source of the random nonce (tests and golden vectors inject a fixed one). Default: node:crypto. */
  readonly randomBytes?: (length: number) => Uint8Array;
}

/** Serializes, compresses and encrypts a manifest: the bytes to store at `manifestObjectKey(...)`. */
export function encodeManifest(
  keys: TargetKeys,
  manifest: Manifest,
  options: EncodeManifestOptions = {},
): Uint8Array {
  validateManifest(manifest);
  const c = manifest.chunker;
  const cbor = cborEncode({
    version: FORMAT_VERSION,
    backupId: manifest.backupId,
    volumeId: manifest.volumeId,
    volumeName: manifest.volumeName,
    volumeSize: cborUint(manifest.volumeSize),
    createdAt: cborUint(manifest.createdAt.getTime()),
    chunker: {
      minSize: c.minSize,
      avgSize: c.avgSize,
      maxSize: c.maxSize,
      level: c.level,
      seed: cborUint(c.seed),
    },
    entries: manifest.entries.records,
  });
  if (cbor.length > MAX_MANIFEST_LENGTH) throw new RangeError('manifest exceeds the format maximum size');
  const body = zstdCompress(cbor, MANIFEST_ZSTD_LEVEL);
  const header = manifestHeader();
  const nonce = (options.randomBytes ?? cryptoRandomBytes)(XCHACHA_NONCE_LENGTH);
  if (nonce.length !== XCHACHA_NONCE_LENGTH) throw new TypeError('randomBytes returned the wrong length');
  const object = new Uint8Array(
    MANIFEST_HEADER_LENGTH + XCHACHA_NONCE_LENGTH + body.length + XCHACHA_TAG_LENGTH,
  );
  object.set(header, 0);
  object.set(nonce, MANIFEST_HEADER_LENGTH);
  xchachaSealInto(
    keys.manifestKey,
    nonce,
    body,
    manifestAad(header, manifest.backupId),
    object,
    MANIFEST_HEADER_LENGTH + XCHACHA_NONCE_LENGTH,
  );
  return object;
}

export interface DecodeManifestOptions {
  /** The backup the object is expected to hold (from its key); authenticated through the AAD. */
  readonly backupId: string;
  /** Name used in errors, e.g. `manifests/<volume>/<backup>`. */
  readonly objectKey?: string;
}

/**
 * Authenticates, decrypts, decompresses and validates a manifest. Throws `IntegrityError` (tampering,
 * truncation, wrong key or wrong backup id), `UnsupportedFormatVersionError` or `FormatError`.
 */
export function decodeManifest(
  keys: TargetKeys,
  object: Uint8Array,
  options: DecodeManifestOptions,
): Manifest {
  const { backupId } = options;
  const objectKey = options.objectKey ?? `manifest of backup ${backupId}`;
  if (!isUuid(backupId)) throw new FormatError(`invalid backup id ${JSON.stringify(backupId)}`, objectKey);
  const minLength = MANIFEST_HEADER_LENGTH + XCHACHA_NONCE_LENGTH + XCHACHA_TAG_LENGTH;
  if (object.length < minLength)
    throw new IntegrityError(objectKey, `object is truncated (${object.length} bytes)`);
  for (let i = 0; i < MANIFEST_MAGIC.length; i++) {
    if (object[i] !== MANIFEST_MAGIC[i]) throw new IntegrityError(objectKey, 'not a manifest (bad magic)');
  }
  const version = object[4]!;
  if (version > FORMAT_VERSION) throw new UnsupportedFormatVersionError(version, objectKey);
  if (version < 1) throw new IntegrityError(objectKey, `invalid format version ${version}`);
  if (object[5] !== MANIFEST_FLAG_ZSTD) throw new IntegrityError(objectKey, `unknown flags ${object[5]}`);
  const header = object.subarray(0, MANIFEST_HEADER_LENGTH);
  const nonce = object.subarray(MANIFEST_HEADER_LENGTH, MANIFEST_HEADER_LENGTH + XCHACHA_NONCE_LENGTH);
  const body = xchachaOpen(
    keys.manifestKey,
    nonce,
    object.subarray(MANIFEST_HEADER_LENGTH + XCHACHA_NONCE_LENGTH),
    manifestAad(header, backupId),
    objectKey,
  );
  const cbor = zstdDecompressExact(body, { maxLength: MAX_MANIFEST_LENGTH, objectKey });
  const doc = cborDecode(cbor, objectKey);
  const fail = (why: string): never => {
    throw new FormatError(`invalid manifest: ${why}`, objectKey);
  };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('not a CBOR map');
  const d = doc as Record<string, unknown>;
  const docVersion = asUint(d.version);
  if (docVersion !== version) fail(`version field ${String(d.version)} differs from the header's ${version}`);
  const str = (name: string): string =>
    typeof d[name] === 'string' ? (d[name] as string) : fail(`${name} missing`);
  const uint = (name: string): number => asUint(d[name]) ?? fail(`${name} must be an unsigned integer`);
  if (!(d.entries instanceof Uint8Array)) fail('entries must be a byte string');
  const manifest: Manifest = {
    version,
    backupId: str('backupId'),
    volumeId: str('volumeId'),
    volumeName: str('volumeName'),
    volumeSize: uint('volumeSize'),
    createdAt: new Date(uint('createdAt')),
    chunker: validateChunkerParams(d.chunker, objectKey),
    entries: new ManifestEntries(d.entries as Uint8Array, objectKey),
  };
  validateManifest(manifest, objectKey);
  if (manifest.backupId !== backupId) fail(`holds backup ${manifest.backupId}, expected ${backupId}`);
  return manifest;
}
