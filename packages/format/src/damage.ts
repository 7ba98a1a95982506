import { isUuid, readUint56After, uuidBytes, writeUint56After } from './bytes.js';
import { cborEncode, cborUint } from './cbor.js';
import { CHUNK_ID_LENGTH } from './chunk.js';
import { FormatError } from './errors.js';
import type { TargetKeys } from './keys.js';
import { asUint } from './params.js';
import { openRecord, type SealedRecordKind, sealRecord } from './sealed-record.js';
import { FORMAT_VERSION } from './version.js';

/** Prefix of every damage record's key: `damage/<volume-id>/<backup-id>`. */
export const DAMAGE_RECORD_PREFIX = 'damage/';
/** Damage record magic: ASCII "STWD". */
export const DAMAGE_RECORD_MAGIC = Uint8Array.of(0x53, 0x54, 0x57, 0x44);
export const DAMAGE_RECORD_HEADER_LENGTH = 6;
/** Bytes of one packed damaged-chunk record: problem(1) ‖ found-at ms(7, big-endian) ‖ chunk id(32). */
export const DAMAGE_ENTRY_LENGTH = 40;
/** Largest damage record object a reader accepts: 2 GiB, room for ≈ 53 million listed chunks, far more than the
 * engine ever records (it indexes at most 2^20 damaged chunks). */
export const MAX_DAMAGE_RECORD_LENGTH = 2 ** 31;

/** What is wrong with a chunk a backup names: its object is absent, or present and fails to open. */
export const CHUNK_PROBLEMS = ['missing', 'corrupt'] as const;
export type ChunkProblem = (typeof CHUNK_PROBLEMS)[number];
const PROBLEM_CODES: Record<ChunkProblem, number> = { missing: 0x01, corrupt: 0x02 };

export interface DamagedChunk {
  readonly id: Uint8Array;
  readonly problem: ChunkProblem;
  /** When the problem was first found (kept while later checks find the same problem). */
  readonly foundAt: Date;
}

function problemOfCode(code: number): ChunkProblem | undefined {
  return code === 0x01 ? 'missing' : code === 0x02 ? 'corrupt' : undefined;
}

function compareIds(records: Uint8Array, a: number, b: Uint8Array): number {
  const at = a * DAMAGE_ENTRY_LENGTH + 8;
  return Buffer.compare(records.subarray(at, at + CHUNK_ID_LENGTH), b);
}

/**
 * The damaged chunks of one backup, as the packed 40-byte records they travel in, sorted by chunk id without
 * duplicates (so a lookup is a binary search and a TiB backup that lost every chunk is ~40 MiB, not a
 * million objects).
 */
export class DamagedChunks implements Iterable<DamagedChunk> {
  /** Packed records, `count × DAMAGE_ENTRY_LENGTH` bytes, ascending by chunk id. Do not modify. */
  readonly records: Uint8Array;
  readonly count: number;

  /** Validates `records` (throws `FormatError`); keeps a reference to them, no copy. */
  constructor(records: Uint8Array, objectKey?: string) {
    if (records.length % DAMAGE_ENTRY_LENGTH !== 0) {
      throw new FormatError(
        `damaged chunks are ${records.length} bytes, not a multiple of ${DAMAGE_ENTRY_LENGTH}`,
        objectKey,
      );
    }
    const count = records.length / DAMAGE_ENTRY_LENGTH;
    for (let i = 0; i < count; i++) {
      const at = i * DAMAGE_ENTRY_LENGTH;
      if (problemOfCode(records[at]!) === undefined) {
        throw new FormatError(`damaged chunk ${i} has unknown problem code ${records[at]}`, objectKey);
      }
      if (readUint56After(records, at) > Number.MAX_SAFE_INTEGER) {
        throw new FormatError(`damaged chunk ${i}: found-at time past 2^53 − 1`, objectKey);
      }
      if (i > 0) {
        const previous = records.subarray(at - DAMAGE_ENTRY_LENGTH + 8, at);
        if (Buffer.compare(previous, records.subarray(at + 8, at + DAMAGE_ENTRY_LENGTH)) >= 0) {
          throw new FormatError(
            `damaged chunk ${i} is not in ascending id order (or repeats one)`,
            objectKey,
          );
        }
      }
    }
    this.records = records;
    this.count = count;
  }

  /** Sorts by id; a chunk id given twice is a `RangeError` (one backup's chunk has one problem). */
  static from(chunks: Iterable<DamagedChunk>): DamagedChunks {
    const list = [...chunks];
    for (const c of list) {
      if (!(c.id instanceof Uint8Array) || c.id.length !== CHUNK_ID_LENGTH)
        throw new TypeError('chunk id must be 32 bytes');
      if (!CHUNK_PROBLEMS.includes(c.problem)) throw new TypeError(`unknown chunk problem ${c.problem}`);
      const ms = c.foundAt instanceof Date ? c.foundAt.getTime() : Number.NaN;
      if (!Number.isSafeInteger(ms) || ms < 0)
        throw new RangeError('foundAt must be a valid date after 1970');
    }
    list.sort((a, b) => Buffer.compare(a.id, b.id));
    const records = new Uint8Array(list.length * DAMAGE_ENTRY_LENGTH);
    list.forEach((c, i) => {
      if (i > 0 && Buffer.compare(list[i - 1]!.id, c.id) === 0) {
        throw new RangeError(`chunk ${Buffer.from(c.id).toString('hex')} is listed twice`);
      }
      const at = i * DAMAGE_ENTRY_LENGTH;
      records[at] = PROBLEM_CODES[c.problem];
      writeUint56After(records, at, c.foundAt.getTime());
      records.set(c.id, at + 8);
    });
    return new DamagedChunks(records);
  }

  /** Chunk id of record `index` as a view of the records (do not modify). */
  idAt(index: number): Uint8Array {
    const at = this.#recordAt(index);
    return this.records.subarray(at + 8, at + DAMAGE_ENTRY_LENGTH);
  }

  problemAt(index: number): ChunkProblem {
    return problemOfCode(this.records[this.#recordAt(index)]!)!;
  }

  foundAtAt(index: number): Date {
    return new Date(readUint56After(this.records, this.#recordAt(index)));
  }

  /** Index of `id`, or -1 (binary search). */
  indexOf(id: Uint8Array): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareIds(this.records, mid, id);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  get(id: Uint8Array): DamagedChunk | undefined {
    const i = this.indexOf(id);
    return i < 0 ? undefined : this.#entry(i);
  }

  *[Symbol.iterator](): Iterator<DamagedChunk> {
    for (let i = 0; i < this.count; i++) yield this.#entry(i);
  }

  #entry(i: number): DamagedChunk {
    return { id: this.idAt(i).slice(), problem: this.problemAt(i), foundAt: this.foundAtAt(i) };
  }

  #recordAt(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.count)
      throw new RangeError(`no record ${index}`);
    return index * DAMAGE_ENTRY_LENGTH;
  }
}

/** What a verify or check found wrong with one backup's chunks. */
export interface DamageRecord {
  readonly version: number;
  readonly volumeId: string;
  readonly backupId: string;
  /** When the record was last written. */
  readonly updatedAt: Date;
  readonly chunks: DamagedChunks;
}

export type DamageRecordInit = Omit<DamageRecord, 'version'>;

/** Bucket key of a backup's damage record: `damage/<volume-id>/<backup-id>` (beside its manifest's). */
export function damageRecordObjectKey(volumeId: string, backupId: string): string {
  if (!isUuid(volumeId)) throw new FormatError(`invalid volume id ${JSON.stringify(volumeId)}`);
  if (!isUuid(backupId)) throw new FormatError(`invalid backup id ${JSON.stringify(backupId)}`);
  return `${DAMAGE_RECORD_PREFIX}${volumeId}/${backupId}`;
}

/** Inverse of `damageRecordObjectKey`; undefined for any other key. */
export function parseDamageRecordObjectKey(key: string): { volumeId: string; backupId: string } | undefined {
  const parts = key.split('/');
  if (parts.length !== 3 || `${parts[0]}/` !== DAMAGE_RECORD_PREFIX || !isUuid(parts[1]) || !isUuid(parts[2]))
    return undefined;
  return { volumeId: parts[1], backupId: parts[2] };
}

const DAMAGE_RECORD: SealedRecordKind = {
  magic: DAMAGE_RECORD_MAGIC,
  name: 'damage record',
  article: 'a',
  maxLength: MAX_DAMAGE_RECORD_LENGTH,
};

// The AAD binds the record to its backup: a record copied to another backup's key fails authentication, so
// it can neither hide that backup's damage nor invent some.
function damageBinding(volumeId: string, backupId: string): Uint8Array {
  const binding = new Uint8Array(32);
  binding.set(uuidBytes(volumeId), 0);
  binding.set(uuidBytes(backupId), 16);
  return binding;
}

export interface EncodeDamageRecordOptions {
  /** Source of the random nonce (tests and golden vectors inject a fixed one). Default: node:crypto. */
  readonly randomBytes?: (length: number) => Uint8Array;
}

function validateInit(init: DamageRecordInit): void {
  if (!isUuid(init.volumeId)) throw new FormatError('damage record volumeId must be a lower-case UUID');
  if (!isUuid(init.backupId)) throw new FormatError('damage record backupId must be a lower-case UUID');
  const ms = init.updatedAt instanceof Date ? init.updatedAt.getTime() : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 0)
    throw new FormatError('damage record updatedAt must be a valid date after 1970');
  if (!(init.chunks instanceof DamagedChunks)) throw new TypeError('chunks must be DamagedChunks');
}

/**
 * Serializes and encrypts a damage record (header ‖ nonce ‖ XChaCha20-Poly1305 of the CBOR body under
 * `damageKey`): the bytes to store at `damageRecordObjectKey(...)`. Encrypted, not only MAC'd, because the
 * ids it lists say which chunks belong to which backup, which the format keeps from the bucket holder.
 */
export function encodeDamageRecord(
  keys: TargetKeys,
  init: DamageRecordInit,
  options: EncodeDamageRecordOptions = {},
): Uint8Array {
  validateInit(init);
  const body = cborEncode({
    version: FORMAT_VERSION,
    volumeId: init.volumeId,
    backupId: init.backupId,
    updatedAt: cborUint(init.updatedAt.getTime()),
    chunks: init.chunks.records,
  });
  return sealRecord(
    DAMAGE_RECORD,
    keys.damageKey,
    damageBinding(init.volumeId, init.backupId),
    body,
    options.randomBytes,
  );
}

export interface DecodeDamageRecordOptions {
  /** The backup the record is expected to describe (from its key); authenticated through the AAD. */
  readonly volumeId: string;
  readonly backupId: string;
  /** Name used in errors, e.g. `damage/<volume>/<backup>`. */
  readonly objectKey?: string;
}

/**
 * Authenticates, decrypts and validates a damage record. Throws `IntegrityError` (altered, truncated, wrong
 * key, or a record of another backup), `UnsupportedFormatVersionError` or `FormatError`.
 */
export function decodeDamageRecord(
  keys: TargetKeys,
  object: Uint8Array,
  options: DecodeDamageRecordOptions,
): DamageRecord {
  const { volumeId, backupId } = options;
  if (!isUuid(volumeId)) throw new FormatError(`invalid volume id ${JSON.stringify(volumeId)}`);
  if (!isUuid(backupId)) throw new FormatError(`invalid backup id ${JSON.stringify(backupId)}`);
  const objectKey = options.objectKey ?? damageRecordObjectKey(volumeId, backupId);
  const {
    version,
    doc: d,
    fail,
  } = openRecord(DAMAGE_RECORD, keys.damageKey, damageBinding(volumeId, backupId), object, objectKey);
  if (d.volumeId !== volumeId) fail(`describes volume ${String(d.volumeId)}, expected ${volumeId}`);
  if (d.backupId !== backupId) fail(`describes backup ${String(d.backupId)}, expected ${backupId}`);
  const updatedAt = asUint(d.updatedAt) ?? fail('updatedAt must be an unsigned integer');
  if (!(d.chunks instanceof Uint8Array)) fail('chunks must be a byte string');
  return {
    version,
    volumeId,
    backupId,
    updatedAt: new Date(updatedAt),
    chunks: new DamagedChunks(d.chunks as Uint8Array, objectKey),
  };
}
