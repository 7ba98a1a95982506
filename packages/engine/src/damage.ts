// Damage records (docs/format.md §12): what verify and check found wrong with a backup's chunks, kept in the
// repository so that backups stop deduplicating against it and store those chunks again. They list chunk
// ids: a chunk is `missing` when the pack its backup names is gone, `corrupt` when its range of the pack does
// not open or lies past the pack's end (a manifest segment, its own object under `chunks/`, likewise), and no
// other stored copy of it reads whole (one a later backup stored, which a restore reads instead).
import {
  CHUNK_ID_LENGTH,
  type ChunkProblem,
  DAMAGE_ENTRY_LENGTH,
  DamagedChunks,
  type DamageRecord,
  StowageFormatError,
} from '@stowage/format';
import type { BackupRef, Repository } from './repository.js';

/** Packed index record: chunk id(32) ‖ problem(1: 1 missing, 2 corrupt). */
const INDEX_RECORD = CHUNK_ID_LENGTH + 1;
/**
 * Distinct damaged chunk ids `RepositoryDamage` holds: 2^20 × 33 bytes ≈ 33 MiB, twice that while a record
 * is merged in. Past it the index drops `missing` ids first, and only then `corrupt` ones; it is then not
 * `complete`, and a backup takes no chunk on the word of a manifest or an index object.
 */
export const MAX_INDEXED_DAMAGED_CHUNKS = 1 << 20;

const MISSING = 1;
const CORRUPT = 2;

/** One backup's damage record as `RepositoryDamage` saw it. */
export interface DamageRecordInfo {
  ref: BackupRef;
  /** `damage/<volume-id>/<backup-id>` */
  objectKey: string;
  /** Chunks the record lists. */
  chunks: number;
  updatedAt: string;
}

/**
 * Every damage record of a repository, merged (`Repository.listDamage`): the backups marked damaged, and for
 * each chunk id any record lists, its problem (`corrupt` when records disagree: for a manifest segment it is
 * the one that makes a backup store it again even though an object exists; a listed data chunk is stored
 * again, into a new pack, either way).
 *
 * Memory: 33 bytes per distinct listed chunk, at most `MAX_INDEXED_DAMAGED_CHUNKS` (≈ 33 MiB; ≈ 70 MiB while
 * merging), plus the one record being decoded (40 bytes per chunk it lists) and ~200 bytes per record.
 * `complete` says whether it holds everything the records say.
 */
export class RepositoryDamage {
  /** Readable records, in key order. */
  readonly records: readonly DamageRecordInfo[];
  /** Records that exist and do not decode: their backups count as damaged in unknown chunks. */
  readonly unreadable: readonly { ref: BackupRef; objectKey: string; error: StowageFormatError }[];
  /** The index left out `missing` ids to stay within its bound. */
  readonly missingOmitted: boolean;
  /** The index left out `corrupt` ids too. */
  readonly corruptOmitted: boolean;
  readonly #index: Uint8Array;
  readonly #count: number;
  readonly #marked: ReadonlySet<string>;

  private constructor(parts: {
    records: DamageRecordInfo[];
    unreadable: { ref: BackupRef; objectKey: string; error: StowageFormatError }[];
    index: Uint8Array;
    count: number;
    missingOmitted: boolean;
    corruptOmitted: boolean;
  }) {
    this.records = parts.records;
    this.unreadable = parts.unreadable;
    this.#index = parts.index;
    this.#count = parts.count;
    this.missingOmitted = parts.missingOmitted;
    this.corruptOmitted = parts.corruptOmitted;
    this.#marked = new Set([...parts.records, ...parts.unreadable].map((r) => r.ref.manifestKey));
  }

  static async load(
    repository: Repository,
    options: { maxChunks?: number; signal?: AbortSignal } = {},
  ): Promise<RepositoryDamage> {
    const max = options.maxChunks ?? MAX_INDEXED_DAMAGED_CHUNKS;
    const call = { signal: options.signal };
    const records: DamageRecordInfo[] = [];
    const unreadable: { ref: BackupRef; objectKey: string; error: StowageFormatError }[] = [];
    let index: Uint8Array = new Uint8Array(0);
    let count = 0;
    let missingOmitted = false;
    let corruptOmitted = false;
    for await (const { damageKey, ...ref } of repository.damageRecordRefs(call)) {
      let record: DamageRecord | undefined;
      try {
        record = await repository.readDamageRecord(ref, call);
      } catch (error) {
        if (!(error instanceof StowageFormatError)) throw error;
        unreadable.push({ ref, objectKey: damageKey, error });
        continue;
      }
      if (record === undefined) continue; // deleted since the listing
      records.push({
        ref,
        objectKey: damageKey,
        chunks: record.chunks.count,
        updatedAt: record.updatedAt.toISOString(),
      });
      let merged = mergeIntoIndex(index, count, record.chunks, missingOmitted);
      if (merged.count > max && !missingOmitted) {
        missingOmitted = true;
        merged = dropMissing(merged.index, merged.count);
      }
      if (merged.count > max) {
        corruptOmitted = true;
        merged = { index: merged.index.slice(0, max * INDEX_RECORD), count: max };
      }
      index = merged.index;
      count = merged.count;
    }
    return new RepositoryDamage({ records, unreadable, index, count, missingOmitted, corruptOmitted });
  }

  /** True when the index holds every chunk id of every record, and every record was readable. */
  get complete(): boolean {
    return this.unreadable.length === 0 && !this.missingOmitted && !this.corruptOmitted;
  }

  /** True when there are no records at all. */
  get empty(): boolean {
    return this.records.length === 0 && this.unreadable.length === 0;
  }

  /** Distinct chunk ids the index holds. */
  get chunkCount(): number {
    return this.#count;
  }

  /** Whether the backup with this manifest key has a damage record (readable or not). */
  isMarked(manifestKey: string): boolean {
    return this.#marked.has(manifestKey);
  }

  /** The problem a record lists for `id`, or undefined. */
  problemOf(id: Uint8Array): ChunkProblem | undefined {
    const i = this.indexOf(id);
    if (i < 0) return undefined;
    return this.#index[i * INDEX_RECORD + CHUNK_ID_LENGTH] === CORRUPT ? 'corrupt' : 'missing';
  }

  /** Position of `id` among the indexed ids (0 … `chunkCount` − 1, ascending by id), or -1: a binary search. */
  indexOf(id: Uint8Array): number {
    let lo = 0;
    let hi = this.#count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const at = mid * INDEX_RECORD;
      const c = Buffer.compare(this.#index.subarray(at, at + CHUNK_ID_LENGTH), id);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  /** Every indexed chunk id with its problem, ascending by id. */
  *chunks(): Iterable<{ id: Uint8Array; problem: ChunkProblem }> {
    for (let i = 0; i < this.#count; i++) {
      const at = i * INDEX_RECORD;
      yield {
        id: this.#index.slice(at, at + CHUNK_ID_LENGTH),
        problem: this.#index[at + CHUNK_ID_LENGTH] === CORRUPT ? 'corrupt' : 'missing',
      };
    }
  }
}

/** Linear merge of a sorted record into the sorted index; on equal ids `corrupt` wins. */
function mergeIntoIndex(
  index: Uint8Array,
  count: number,
  chunks: DamagedChunks,
  skipMissing: boolean,
): { index: Uint8Array; count: number } {
  const out = new Uint8Array((count + chunks.count) * INDEX_RECORD);
  let i = 0;
  let j = 0;
  let n = 0;
  const put = (id: Uint8Array, problem: number) => {
    out.set(id, n * INDEX_RECORD);
    out[n * INDEX_RECORD + CHUNK_ID_LENGTH] = problem;
    n++;
  };
  while (i < count || j < chunks.count) {
    if (j < chunks.count && skipMissing && chunks.problemAt(j) === 'missing') {
      j++;
      continue;
    }
    const a = i < count ? index.subarray(i * INDEX_RECORD, i * INDEX_RECORD + CHUNK_ID_LENGTH) : undefined;
    const b = j < chunks.count ? chunks.idAt(j) : undefined;
    const c = a === undefined ? 1 : b === undefined ? -1 : Buffer.compare(a, b);
    if (c < 0) {
      put(a!, index[i * INDEX_RECORD + CHUNK_ID_LENGTH]!);
      i++;
    } else if (c > 0) {
      put(b!, chunks.problemAt(j) === 'corrupt' ? CORRUPT : MISSING);
      j++;
    } else {
      const problem = Math.max(
        index[i * INDEX_RECORD + CHUNK_ID_LENGTH]!,
        chunks.problemAt(j) === 'corrupt' ? CORRUPT : MISSING,
      );
      put(a!, problem);
      i++;
      j++;
    }
  }
  return { index: out.subarray(0, n * INDEX_RECORD), count: n };
}

function dropMissing(index: Uint8Array, count: number): { index: Uint8Array; count: number } {
  let n = 0;
  for (let i = 0; i < count; i++) {
    const at = i * INDEX_RECORD;
    if (index[at + CHUNK_ID_LENGTH] !== CORRUPT) continue;
    index.copyWithin(n * INDEX_RECORD, at, at + INDEX_RECORD);
    n++;
  }
  return { index: index.slice(0, n * INDEX_RECORD), count: n };
}

/** What a verify or check did to one backup's damage record. */
export interface DamageRecordUpdate {
  ref: BackupRef;
  /** `damage/<volume-id>/<backup-id>` */
  objectKey: string;
  /**
   * `written`: created or changed; `deleted`: the backup checked clean of everything the record listed;
   * `unchanged`: the record (or its absence) already said what this run found.
   */
  action: 'written' | 'deleted' | 'unchanged';
  /** Chunks the record lists now (0 when there is none). */
  chunksListed: number;
  /** Problems this run listed that the record did not (a changed problem counts here too). */
  added: number;
  /** Entries this run removed: chunks it found healthy, or that the backup does not name. */
  cleared: number;
  /** The record that was there did not decode; it was replaced (or deleted) by what this run found. */
  replacedUnreadable: boolean;
}

/** A problem found with one chunk of a backup in this run. */
export interface FoundProblem {
  id: Uint8Array;
  problem: ChunkProblem;
}

/**
 * Brings a backup's damage record in line with what one verify or check found (docs/format.md §12.5):
 * problems found are listed (a problem already listed keeps its found-at time), an entry is removed only for a
 * chunk this run found healthy (`checkedHealthy`: it authenticates at every location the backup names, or —
 * for a backup that is not its volume's latest — another stored copy of it does) or that the backup does not
 * name (`named`), and every other entry stays. `found` must be in ascending id order. A record that did not
 * decode (`previous: 'unreadable'`) is replaced by the findings only when this run checked every chunk of the
 * backup (`complete`); otherwise it is left for a run that can tell.
 */
export async function reconcileDamageRecord(
  repository: Repository,
  ref: BackupRef,
  run: {
    previous: DamageRecord | 'unreadable' | undefined;
    found: readonly FoundProblem[];
    checkedHealthy: (id: Uint8Array) => boolean;
    named: (id: Uint8Array) => boolean;
    complete: boolean;
    now: Date;
    /** Handed to the record's put or delete. */
    signal?: AbortSignal;
  },
): Promise<DamageRecordUpdate> {
  const call = { signal: run.signal };
  const objectKey = repository.damageRecordKey(ref);
  const { previous, found } = run;
  const update = (
    action: DamageRecordUpdate['action'],
    chunksListed: number,
    added: number,
    cleared: number,
  ): DamageRecordUpdate => ({
    ref,
    objectKey,
    action,
    chunksListed,
    added,
    cleared,
    replacedUnreadable: previous === 'unreadable' && action !== 'unchanged',
  });
  // Only a run that read every chunk may replace it: one that sampled and found something would turn "damage
  // in an unknown set of chunks" into a short list, and writers would trust the rest again (format §12.5).
  if (previous === 'unreadable' && !run.complete) return update('unchanged', 0, 0, 0);
  const old = previous === 'unreadable' || previous === undefined ? undefined : previous.chunks;
  const out = new Uint8Array(((old?.count ?? 0) + found.length) * DAMAGE_ENTRY_LENGTH);
  let n = 0;
  let added = 0;
  let cleared = 0;
  let changed = false;
  const append = (from: Uint8Array) => {
    out.set(from, n * DAMAGE_ENTRY_LENGTH);
    n++;
  };
  const fresh = (f: FoundProblem) => {
    const entry = DamagedChunks.from([{ id: f.id, problem: f.problem, foundAt: run.now }]).records;
    append(entry);
    added++;
    changed = true;
  };
  let i = 0;
  let j = 0;
  const oldCount = old?.count ?? 0;
  while (i < oldCount || j < found.length) {
    const a = i < oldCount ? old!.idAt(i) : undefined;
    const b = j < found.length ? found[j]!.id : undefined;
    const c = a === undefined ? 1 : b === undefined ? -1 : Buffer.compare(a, b);
    if (c < 0) {
      // Listed before, not found damaged now: it stays unless this run saw it healthy.
      if (run.checkedHealthy(a!) || !run.named(a!)) {
        cleared++;
        changed = true;
      } else append(old!.records.subarray(i * DAMAGE_ENTRY_LENGTH, (i + 1) * DAMAGE_ENTRY_LENGTH));
      i++;
    } else if (c > 0) {
      fresh(found[j]!);
      j++;
    } else {
      if (old!.problemAt(i) === found[j]!.problem) {
        append(old!.records.subarray(i * DAMAGE_ENTRY_LENGTH, (i + 1) * DAMAGE_ENTRY_LENGTH));
      } else fresh(found[j]!);
      i++;
      j++;
    }
  }
  if (previous === 'unreadable') changed = true;
  if (n === 0) {
    if (previous === undefined) return update('unchanged', 0, added, cleared);
    await repository.deleteDamageRecord(ref, call);
    return update('deleted', 0, added, cleared);
  }
  if (!changed) return update('unchanged', n, added, cleared);
  await repository.writeDamageRecord(
    ref,
    new DamagedChunks(out.slice(0, n * DAMAGE_ENTRY_LENGTH)),
    run.now,
    call,
  );
  return update('written', n, added, cleared);
}
