// Pack index objects (docs/format.md §5.3): which chunks a backup stored in which packs, so that later backups
// of any volume find them without a request per chunk. A hint for dedup, never needed to restore (manifests
// hold every location themselves).
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { fromHex, isUuid, toHex, uuidBytes } from './bytes.js';
import { cborEncode } from './cbor.js';
import { CHUNK_ID_LENGTH } from './chunk.js';
import { FormatError } from './errors.js';
import type { TargetKeys } from './keys.js';
import { locationProblem, type PackLocation, readLocation, writeLocation } from './pack.js';
import { openRecord, type SealedRecordKind, sealRecord } from './sealed-record.js';
import { FORMAT_VERSION } from './version.js';

/** Prefix of every index object's key: `index/<volume-id>/<backup-id>/<16 hex>`. */
export const PACK_INDEX_PREFIX = 'index/';
/** Index object magic: ASCII "STWI". */
export const PACK_INDEX_MAGIC = Uint8Array.of(0x53, 0x54, 0x57, 0x49);
export const PACK_INDEX_HEADER_LENGTH = 6;
/** Bytes of one index entry: chunk id(32) ‖ pack id(32) ‖ offset(4) ‖ object length(4). */
export const PACK_INDEX_ENTRY_LENGTH = 72;
/** Bytes of the random name that tells a backup's index objects apart. */
export const PACK_INDEX_NAME_LENGTH = 8;
/** Largest index object a reader accepts: 64 MiB, about 930,000 entries (the reference writer cuts at 2^18). */
export const MAX_PACK_INDEX_LENGTH = 2 ** 26;

const NAME_RE = /^[0-9a-f]{16}$/;

export interface PackIndexEntry {
  readonly id: Uint8Array;
  readonly location: PackLocation;
}

/** Key of one index object of a backup; `name` is 16 lower-case hex (random by default). */
export function packIndexObjectKey(volumeId: string, backupId: string, name?: string): string {
  if (!isUuid(volumeId)) throw new FormatError(`invalid volume id ${JSON.stringify(volumeId)}`);
  if (!isUuid(backupId)) throw new FormatError(`invalid backup id ${JSON.stringify(backupId)}`);
  const n = name ?? toHex(new Uint8Array(cryptoRandomBytes(PACK_INDEX_NAME_LENGTH)));
  if (!NAME_RE.test(n)) throw new FormatError(`invalid index name ${JSON.stringify(n)}`);
  return `${PACK_INDEX_PREFIX}${volumeId}/${backupId}/${n}`;
}

/** Inverse of `packIndexObjectKey`; undefined for any other key. */
export function parsePackIndexObjectKey(
  key: string,
): { volumeId: string; backupId: string; name: string } | undefined {
  const parts = key.split('/');
  if (parts.length !== 4 || parts[0] !== 'index') return undefined;
  const [, volumeId, backupId, name] = parts as [string, string, string, string];
  if (!isUuid(volumeId) || !isUuid(backupId) || !NAME_RE.test(name)) return undefined;
  return { volumeId, backupId, name };
}

/** The entries of one index object, as the packed 72-byte records they travel in. */
export class PackIndexEntries implements Iterable<PackIndexEntry> {
  readonly records: Uint8Array;
  readonly count: number;

  /** Validates `records` (throws `FormatError`); keeps a reference to them, no copy. */
  constructor(records: Uint8Array, objectKey?: string) {
    if (records.length % PACK_INDEX_ENTRY_LENGTH !== 0) {
      throw new FormatError(
        `index entries are ${records.length} bytes, not a multiple of ${PACK_INDEX_ENTRY_LENGTH}`,
        objectKey,
      );
    }
    this.records = records;
    this.count = records.length / PACK_INDEX_ENTRY_LENGTH;
    for (let i = 0; i < this.count; i++) {
      const { offset, length } = this.locationAt(i);
      const problem = locationProblem(offset, length);
      if (problem) throw new FormatError(`index entry ${i}: ${problem}`, objectKey);
    }
  }

  static from(entries: Iterable<PackIndexEntry>): PackIndexEntries {
    const list = [...entries];
    const records = new Uint8Array(list.length * PACK_INDEX_ENTRY_LENGTH);
    list.forEach((e, i) => {
      if (!(e.id instanceof Uint8Array) || e.id.length !== CHUNK_ID_LENGTH)
        throw new TypeError('chunk id must be 32 bytes');
      records.set(e.id, i * PACK_INDEX_ENTRY_LENGTH);
      writeLocation(records, i * PACK_INDEX_ENTRY_LENGTH + CHUNK_ID_LENGTH, e.location);
    });
    return new PackIndexEntries(records);
  }

  /** Chunk id of entry `index` (a view; do not modify). */
  idAt(index: number): Uint8Array {
    const at = this.#at(index);
    return this.records.subarray(at, at + CHUNK_ID_LENGTH);
  }

  /** Location of entry `index` (the pack id a view; do not modify). */
  locationAt(index: number): PackLocation {
    return readLocation(this.records, this.#at(index) + CHUNK_ID_LENGTH);
  }

  #at(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.count)
      throw new RangeError(`no entry ${index}`);
    return index * PACK_INDEX_ENTRY_LENGTH;
  }

  *[Symbol.iterator](): Iterator<PackIndexEntry> {
    for (let i = 0; i < this.count; i++) yield { id: this.idAt(i), location: this.locationAt(i) };
  }
}

const INDEX_OBJECT: SealedRecordKind = {
  magic: PACK_INDEX_MAGIC,
  name: 'index object',
  article: 'an',
  maxLength: MAX_PACK_INDEX_LENGTH,
};

// The AAD binds the object to its key: copied under another backup or name, it fails to authenticate.
function indexBinding(volumeId: string, backupId: string, name: string): Uint8Array {
  const binding = new Uint8Array(32 + PACK_INDEX_NAME_LENGTH);
  binding.set(uuidBytes(volumeId), 0);
  binding.set(uuidBytes(backupId), 16);
  binding.set(fromHex(name)!, 32);
  return binding;
}

export interface EncodePackIndexOptions {
  /** Source of the random nonce (tests and golden vectors inject a fixed one). Default: node:crypto. */
  readonly randomBytes?: (length: number) => Uint8Array;
}

/**
 * Serializes and encrypts an index object (header ‖ nonce ‖ XChaCha20-Poly1305 of the CBOR body under
 * `indexKey`) to store at `key` (`packIndexObjectKey`). Encrypted because its chunk ids say which chunks lie
 * together, which the format keeps from the bucket holder.
 */
export function encodePackIndex(
  keys: TargetKeys,
  key: string,
  entries: PackIndexEntries,
  options: EncodePackIndexOptions = {},
): Uint8Array {
  const parsed = parsePackIndexObjectKey(key);
  if (!parsed) throw new FormatError(`invalid index object key ${JSON.stringify(key)}`);
  if (!(entries instanceof PackIndexEntries)) throw new TypeError('entries must be PackIndexEntries');
  const body = cborEncode({
    version: FORMAT_VERSION,
    volumeId: parsed.volumeId,
    backupId: parsed.backupId,
    entries: entries.records,
  });
  return sealRecord(
    INDEX_OBJECT,
    keys.indexKey,
    indexBinding(parsed.volumeId, parsed.backupId, parsed.name),
    body,
    options.randomBytes,
  );
}

/**
 * Authenticates, decrypts and validates the index object stored at `key`. Throws `IntegrityError` (altered,
 * truncated, wrong key, or copied from another key), `UnsupportedFormatVersionError` or `FormatError`.
 */
export function decodePackIndex(keys: TargetKeys, key: string, object: Uint8Array): PackIndexEntries {
  const parsed = parsePackIndexObjectKey(key);
  if (!parsed) throw new FormatError(`invalid index object key ${JSON.stringify(key)}`);
  const { doc: d, fail } = openRecord(
    INDEX_OBJECT,
    keys.indexKey,
    indexBinding(parsed.volumeId, parsed.backupId, parsed.name),
    object,
    key,
  );
  if (d.volumeId !== parsed.volumeId) fail(`names volume ${String(d.volumeId)}, its key ${parsed.volumeId}`);
  if (d.backupId !== parsed.backupId) fail(`names backup ${String(d.backupId)}, its key ${parsed.backupId}`);
  if (!(d.entries instanceof Uint8Array)) fail('entries must be a byte string');
  return new PackIndexEntries(d.entries as Uint8Array, key);
}
