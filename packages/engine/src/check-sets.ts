// Packed sets of chunk objects for the check: the damaged ones it found, and the recorded ones it read healthy.
import {
  CHUNK_ID_LENGTH,
  type ChunkProblem,
  chunkObjectKey,
  describeLocation,
  LOCATION_LENGTH,
  type PackLocation,
  packObjectKey,
  readLocation,
  writeLocation,
} from '@stowage/format';
import type { BackupRef } from './repository.js';

/**
 * Bytes naming one chunk object: chunk id(32) ‖ location(40: pack id, offset, object length). A manifest
 * segment, stored as its own object under `chunks/`, has an all-zero location (no packed chunk has a zero
 * object length).
 */
export const OBJECT_KEY_LENGTH = CHUNK_ID_LENGTH + LOCATION_LENGTH;

/** Writes the key of chunk `id` at `location` (undefined: a segment's own object) into `out`. */
export function writeObjectKey(
  out: Uint8Array,
  id: Uint8Array,
  location: PackLocation | undefined,
): Uint8Array {
  out.set(id, 0);
  if (location === undefined) out.fill(0, CHUNK_ID_LENGTH, OBJECT_KEY_LENGTH);
  else writeLocation(out, CHUNK_ID_LENGTH, location);
  return out;
}

/**
 * Chunk objects with a one-byte value each, packed as key(72) ‖ value(1): 73 bytes each. Added in any order;
 * `seal` sorts them (by id, then location) and merges repeats, keeping the greatest value, after which `find`
 * sees them. Adding after `seal` needs another `seal`.
 */
export class ChunkObjectSet {
  static readonly RECORD = OBJECT_KEY_LENGTH + 1;
  #records = new Uint8Array(64 * ChunkObjectSet.RECORD);
  #count = 0;
  #sealed = 0;
  readonly #scratch = new Uint8Array(OBJECT_KEY_LENGTH);

  get count(): number {
    return this.#count;
  }

  get empty(): boolean {
    return this.#count === 0;
  }

  add(id: Uint8Array, location: PackLocation | undefined, value: number): void {
    const R = ChunkObjectSet.RECORD;
    if ((this.#count + 1) * R > this.#records.length) {
      const grown = new Uint8Array(this.#records.length * 2);
      grown.set(this.#records);
      this.#records = grown;
    }
    const at = this.#count * R;
    writeObjectKey(this.#records.subarray(at, at + OBJECT_KEY_LENGTH), id, location);
    this.#records[at + OBJECT_KEY_LENGTH] = value;
    this.#count++;
  }

  /** Sorts everything added into place and merges repeats (the greatest value stays). */
  seal(): void {
    const R = ChunkObjectSet.RECORD;
    const n = this.#count;
    if (this.#sealed === n) return;
    const part = this.#records.slice(0, n * R);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const keyOf = (k: number) => part.subarray(k * R, k * R + OBJECT_KEY_LENGTH);
    order.sort(
      (a, b) =>
        Buffer.compare(keyOf(a), keyOf(b)) ||
        part[b * R + OBJECT_KEY_LENGTH]! - part[a * R + OBJECT_KEY_LENGTH]!,
    );
    let m = 0;
    for (const k of order) {
      if (m > 0 && Buffer.compare(this.#keyAt(m - 1), keyOf(k)) === 0) continue;
      this.#records.set(part.subarray(k * R, (k + 1) * R), m * R);
      m++;
    }
    this.#count = m;
    this.#sealed = m;
  }

  /** Position of chunk `id` at `location` among the sealed objects, or -1: a binary search. */
  find(id: Uint8Array, location: PackLocation | undefined): number {
    const key = writeObjectKey(this.#scratch, id, location);
    let lo = 0;
    let hi = this.#sealed;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(this.#keyAt(mid), key);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  valueAt(i: number): number {
    return this.#records[i * ChunkObjectSet.RECORD + OBJECT_KEY_LENGTH]!;
  }

  /** Changes the value of sealed object `i` (its place does not depend on it). */
  setValueAt(i: number, value: number): void {
    this.#records[i * ChunkObjectSet.RECORD + OBJECT_KEY_LENGTH] = value;
  }

  idAt(i: number): Uint8Array {
    const at = i * ChunkObjectSet.RECORD;
    return this.#records.subarray(at, at + CHUNK_ID_LENGTH);
  }

  /** The location of object `i`, or undefined for a segment's own object. */
  locationAt(i: number): PackLocation | undefined {
    const location = readLocation(this.#records, i * ChunkObjectSet.RECORD + CHUNK_ID_LENGTH);
    return location.length === 0 ? undefined : location;
  }

  /** Hex of object `i`'s key (a map key for what is kept per object). */
  hexAt(i: number): string {
    return Buffer.from(this.#keyAt(i)).toString('hex');
  }

  #keyAt(i: number): Uint8Array {
    const at = i * ChunkObjectSet.RECORD;
    return this.#records.subarray(at, at + OBJECT_KEY_LENGTH);
  }
}

/** A chunk (or segment) some committed manifest names whose object is missing or corrupt. */
export interface DamagedChunkReport {
  /** 64 hex digits. */
  chunkId: string;
  /** The object at fault: the chunk's pack `packs/<hh>/<pack-id>`, or a segment's own `chunks/<hh>/<id>`. */
  objectKey: string;
  /** Where the chunk lies in its pack, `packs/<hh>/<pack-id>@<offset>+<length>`; undefined for a segment. */
  location: string | undefined;
  problem: ChunkProblem;
  /** What is wrong, naming the chunk id and its location (a segment's: its object and manifest). */
  message: string;
  /** Every backup, of the manifests this check read, whose manifest names the chunk there. */
  backups: BackupRef[];
}

/** A damaged chunk that reads whole from another copy (`CheckReport.fromCopies`): no damage, it restores. */
export interface CopiedChunkReport extends DamagedChunkReport {
  /** Where the copy that reads whole is, `packs/<hh>/<pack-id>@<offset>+<length>` (a later backup stored it). */
  copy: string;
}

/** A pack some committed manifest names that does not exist: every chunk in it is missing. */
export interface MissingPackReport {
  /** `packs/<hh>/<pack-id>` */
  objectKey: string;
  /** Distinct chunk objects the manifests name in it (each is also in `missingChunks`, as far as listed). */
  chunks: number;
  /** Of `chunks`, those that read whole from another copy (in `fromCopies` instead: they restore). */
  chunksFromCopies: number;
  /** Every backup, of the manifests this check read, whose manifest names a chunk in it. */
  backups: BackupRef[];
}

const MISSING = 1;
const CORRUPT = 2;
/** Flag on a damaged object whose chunk reads whole from another copy. */
const FROM_COPY = 4;

/**
 * The damaged chunk objects found (73 bytes each), and the message only of those the report will show (the
 * first `maxReported` of each problem). Once sealed, those whose chunk reads whole from another copy are
 * marked (`markFromCopies`): they are counted and reported apart, as no damage.
 */
export class DamagedSet {
  readonly #set = new ChunkObjectSet();
  readonly #counts = { missing: 0, corrupt: 0 };
  #fromCopies = 0;
  #copies: ReadonlyMap<string, PackLocation> = new Map();
  /** Messages by object key hex, for the first `maxReported` of each problem. */
  readonly #messages = new Map<string, string>();
  readonly #scratch = new Uint8Array(OBJECT_KEY_LENGTH);

  constructor(readonly maxReported: number) {}

  add(id: Uint8Array, location: PackLocation | undefined, problem: ChunkProblem, message: string): void {
    this.#set.add(id, location, problem === 'corrupt' ? CORRUPT : MISSING);
    if (this.#counts[problem]++ < this.maxReported) {
      const key = writeObjectKey(this.#scratch, id, location);
      this.#messages.set(Buffer.from(key).toString('hex'), message);
    }
  }

  /** Sorts what was found into place; only sealed objects are found by `find`. */
  seal(): void {
    this.#set.seal();
  }

  /** No damaged object was found at all. */
  get empty(): boolean {
    return this.#set.empty;
  }

  /** No damage: nothing damaged was found, or only chunks that read whole from other copies. */
  get restorable(): boolean {
    return this.#counts.missing + this.#counts.corrupt === 0;
  }

  /** Damaged objects with this problem, less those that read whole from another copy. */
  count(problem: ChunkProblem): number {
    return this.#counts[problem];
  }

  /** Damaged objects whose chunk reads whole from another copy. */
  get fromCopiesCount(): number {
    return this.#fromCopies;
  }

  /** Distinct ids of data chunks among the damaged objects (segments left out), ascending (call after `seal`). */
  *dataIds(): Iterable<{ at: number; id: Uint8Array; location: PackLocation }> {
    for (let i = 0; i < this.#set.count; i++) {
      const location = this.#set.locationAt(i);
      if (location === undefined) continue;
      yield { at: i, id: this.#set.idAt(i), location };
    }
  }

  /**
   * Marks every damaged data chunk object whose id `copies` maps to a copy that reads whole (by id hex), and
   * counts it apart from the damage (call after `seal`).
   */
  markFromCopies(copies: ReadonlyMap<string, PackLocation>): void {
    this.#copies = copies;
    if (copies.size === 0) return;
    for (let i = 0; i < this.#set.count; i++) {
      const value = this.#set.valueAt(i);
      if (value & FROM_COPY || this.#set.locationAt(i) === undefined) continue;
      if (!copies.has(Buffer.from(this.#set.idAt(i)).toString('hex'))) continue;
      this.#set.setValueAt(i, value | FROM_COPY);
      this.#counts[value === CORRUPT ? 'corrupt' : 'missing']--;
      this.#fromCopies++;
    }
  }

  /** Whether damaged object `i` reads whole from another copy. */
  fromCopyAt(i: number): boolean {
    return (this.#set.valueAt(i) & FROM_COPY) !== 0;
  }

  find(id: Uint8Array, location: PackLocation | undefined): number {
    return this.#set.find(id, location);
  }

  problemAt(i: number): ChunkProblem {
    return (this.#set.valueAt(i) & ~FROM_COPY) === CORRUPT ? 'corrupt' : 'missing';
  }

  /**
   * A report per damaged chunk the report shows, by position in the set (ascending by id, then location);
   * one that reads whole from another copy says where (`copy`).
   */
  reports(): Map<number, DamagedChunkReport | CopiedChunkReport> {
    const out = new Map<number, DamagedChunkReport | CopiedChunkReport>();
    for (let i = 0; i < this.#set.count; i++) {
      const message = this.#messages.get(this.#set.hexAt(i));
      if (message === undefined) continue;
      const id = this.#set.idAt(i);
      const location = this.#set.locationAt(i);
      const report: DamagedChunkReport = {
        chunkId: Buffer.from(id).toString('hex'),
        objectKey: location === undefined ? chunkObjectKey(id) : packObjectKey(location.pack),
        location: location === undefined ? undefined : describeLocation(location),
        problem: this.problemAt(i),
        message,
        backups: [],
      };
      const copy = this.fromCopyAt(i) ? this.#copies.get(report.chunkId) : undefined;
      out.set(i, copy === undefined ? report : { ...report, copy: describeLocation(copy) });
    }
    return out;
  }
}
