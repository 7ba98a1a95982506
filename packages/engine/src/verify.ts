import { randomInt } from 'node:crypto';
import {
  type ChunkProblem,
  type DamageRecord,
  describeLocation,
  packObjectKey,
  StowageFormatError,
} from '@stowage/format';
import { isObjectStoreError, ObjectStoreError, type OperationOptions } from '@stowage/object-store';
import { asCancel, jobSignal } from './abort.js';
import { findHealthyCopies, latestOfVolumes, type SoughtChunk } from './check-copies.js';
import { positions, readSpan, spans } from './check-reads.js';
import { ChunkIndex, fitIndex, INDEX_BYTES_PER_CHUNK } from './chunk-ids.js';
import { type DamageRecordUpdate, type FoundProblem, reconcileDamageRecord } from './damage.js';
import { EngineError } from './errors.js';
import { Limiter } from './limiter.js';
import { type ProgressListener, ProgressReporter } from './progress.js';
import { type BackupRef, MANIFESTS_PREFIX, type Repository } from './repository.js';
import { MAX_COPIES_SOUGHT } from './stored-copies.js';
import type { ChunkWorkers } from './workers/chunk-workers.js';

export interface VerifyOptions {
  repository: Repository;
  workers: ChunkWorkers;
  backup: BackupRef;
  /** Percentage of the backup's distinct chunk objects to download and check (default 100). */
  samplePercent?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Ranged GETs in flight (default 16; each reads at most `MAX_SPAN_BYTES` of adjacent chunks of a pack). */
  concurrency?: number;
  /** Random integer in [0, max): injected so tests can fix the sample. */
  randomInt?: (max: number) => number;
  /**
   * Keep the backup's damage record (default true): problems found are recorded, and the chunks it listed
   * are read on every verify, sampled or not, so that a repaired chunk — or one stored again elsewhere — is
   * cleared. `false` leaves the repository untouched (read-only credentials).
   */
  recordDamage?: boolean;
  /**
   * Bytes the chunk index of one pass may take (default 64 MiB: 152 bytes per distinct chunk object, ≈
   * 440,000 chunks). A backup naming more is verified in several passes over slices of the pack-id space (by
   * first pack-id byte), each reading the manifest's segments again.
   */
  indexMemoryBytes?: number;
  now?: () => Date;
}

export interface VerifyProblem {
  /**
   * The object at fault: the pack (`packs/<hh>/<pack-id>`) holding a damaged chunk, or a manifest segment's
   * own object (`chunks/<hh>/<segment-id>`).
   */
  objectKey: string;
  /** Where a damaged chunk lies in its pack, `packs/<hh>/<pack-id>@<offset>+<length>`; undefined for a segment. */
  location: string | undefined;
  /** The damaged chunk's (or segment's) id, 64 hex digits. */
  chunkId: string;
  /** What is wrong, naming the chunk id and its location (or the segment and its manifest). */
  message: string;
}

/** A chunk whose copy the manifest names is missing or damaged, and that reads whole from another copy. */
export interface VerifyCopy {
  /** The chunk's id, 64 hex digits. */
  chunkId: string;
  /** The pack the manifest names, `packs/<hh>/<pack-id>`. */
  objectKey: string;
  /** Where the manifest says the chunk is, `packs/<hh>/<pack-id>@<offset>+<length>`. */
  location: string;
  /** What is wrong there. */
  problem: ChunkProblem;
  message: string;
  /** The copy that reads whole, found through the index objects (a later backup stored it), as `location`. */
  copy: string;
}

export interface VerifyReport {
  backupId: string;
  /**
   * Distinct chunk objects the manifest names (as far as its segments could be read): a chunk stored in two
   * places (stored again after damage) counts twice, each copy being checked on its own.
   */
  chunksTotal: number;
  chunksChecked: number;
  bytesChecked: number;
  /** Manifest segments (chunk objects holding the entries) read and authenticated. */
  segmentsChecked: number;
  /**
   * Every problem found, by object key then location: a chunk only when no other stored copy of it reads
   * whole either (those are in `fromCopies`), so the backup restores exactly when this is empty.
   */
  problems: VerifyProblem[];
  /**
   * The chunk objects found missing (their pack does not exist), and those that exist and fail to open or lie
   * past the end of their pack (`problems` names both): each as its location (`packs/<hh>/<id>@<offset>+<length>`),
   * or a manifest segment's key (`chunks/<hh>/<id>`), whose problem names the manifest as well. Sorted.
   */
  missingChunks: string[];
  corruptChunks: string[];
  /**
   * Chunk objects the manifest names that are missing or damaged there, but that read whole from another copy
   * a later backup stored (found through the index objects with one `findStoredCopies` pass, and read and
   * opened like any chunk): a restore reads that copy (`RestoreSummary.chunksFromCopies`), so they are no
   * damage. `fromCopies` lists them, sorted by location (at most `MAX_COPIES_SOUGHT` distinct chunks).
   */
  chunksFromCopies: number;
  fromCopies: VerifyCopy[];
  /**
   * Of `chunksFromCopies`, those the damage record still lists (or now lists) because the backup is its
   * volume's latest: the next backup of the volume would take their lost locations from its manifest, so it
   * must not trust it (format §12.4 rule 1, §12.5), and stores them in its own pack instead; a verify after that clears them.
   */
  chunksFromCopiesRecorded: number;
  /**
   * Damaged chunk objects whose chunks were not looked for in other copies: past the first
   * `MAX_COPIES_SOUGHT` distinct damaged chunks. They count as damaged (`problems`).
   */
  chunksNotSought: number;
  /** What the verify did to the backup's damage record; undefined with `recordDamage: false`. */
  damageRecord: DamageRecordUpdate | undefined;
  /**
   * Why the damage record could not be updated (a storage failure, e.g. read-only credentials), or
   * undefined. The findings above stand either way: recording them is a side effect, and a failure to
   * record must not hide what the verify found.
   */
  damageRecordError: string | undefined;
  /** Passes over the pack-id space (1 unless the index outgrew `indexMemoryBytes`). */
  passes: number;
  seconds: number;
}

const DEFAULT_INDEX_MEMORY = 64 << 20;

/**
 * Verifies a backup like `restic check --read-data(-subset)`: the manifest's root is decrypted and
 * authenticated, its segments are read in order (each authenticated and checked, docs/format.md §6.5), then
 * every distinct chunk object (or a random sample) is read from its pack — its range, adjacent chunks of a
 * pack in one ranged GET —, authenticated, decompressed and re-hashed. Problems are collected rather than
 * thrown, so one report names every damaged object: a chunk whose pack is missing (`missing`), one whose range
 * does not open or lies past the end of its pack (`corrupt`), a missing or corrupt segment (the chunks only it
 * names are then unknown, and the rest are still checked). What it finds goes into the backup's damage record
 * (docs/format.md §12.5), by chunk id: problems are listed, and entries for chunks it read and found healthy —
 * every copy the backup names — are removed; a sampled verify clears only what it read, which always includes
 * the chunks the record listed.
 *
 * A chunk whose named copy is missing or does not open is looked for among the copies other backups stored
 * (one pass over the index objects for all of them, `findStoredCopies`, as a restore does): one that reads
 * whole makes it no damage (`fromCopies`), and its record entry is cleared — unless the backup is its volume's
 * latest, whose manifest the next backup would otherwise take the lost location from (format §12.4 rule 1, §12.5): there
 * it stays listed until a later backup of the volume stored the chunk in its own pack.
 *
 * Memory does not grow with the backup: the segments being read, the chunk index of one pass
 * (`indexMemoryBytes`; a backup with more distinct chunks than fit is verified in several passes), a byte per
 * indexed chunk, and the spans being read (`concurrency` × `MAX_SPAN_BYTES`); and per damaged chunk its
 * problem, with, for the first `MAX_COPIES_SOUGHT`, the copies the index objects name.
 *
 * A cancel (`signal`) reaches every store call, the damage record's read and write included (they are
 * aborted, not left to time out), and ends the verify with an `aborted` EngineError: no report, and the
 * damage record either as it was or as this run wrote it (a put is all-or-nothing).
 */
export async function verifyBackup(options: VerifyOptions): Promise<VerifyReport> {
  const cancel = jobSignal(options.signal);
  try {
    return await runVerify(options, { signal: cancel.signal });
  } catch (error) {
    throw asCancel(error, 'verify');
  } finally {
    cancel.close();
  }
}

async function runVerify(options: VerifyOptions, call: OperationOptions): Promise<VerifyReport> {
  const { repository, workers } = options;
  const { signal } = call;
  const percent = options.samplePercent ?? 100;
  if (!(percent > 0 && percent <= 100)) {
    throw new EngineError('invalid-argument', `sample must be a percentage in (0, 100], got ${percent}`);
  }
  const recordDamage = options.recordDamage ?? true;
  const indexMemory = Math.max(INDEX_BYTES_PER_CHUNK, options.indexMemoryBytes ?? DEFAULT_INDEX_MEMORY);
  const manifest = await repository.loadManifest(options.backup, call);
  let previous: DamageRecord | 'unreadable' | undefined;
  if (recordDamage) {
    try {
      previous = await repository.readDamageRecord(options.backup, call);
    } catch (error) {
      if (!(error instanceof StowageFormatError)) throw error;
      previous = 'unreadable';
    }
  }
  // What this run learns about each chunk the record lists (by its position in the record): whether the
  // backup names it, and whether any copy of it the backup names was not found healthy (damaged, or not read).
  const listed = previous !== undefined && previous !== 'unreadable' ? previous.chunks : undefined;
  const listedNamed = new Uint8Array(listed?.count ?? 0);
  const listedUnhealthy = new Uint8Array(listed?.count ?? 0);
  const learn = (id: Uint8Array, healthy: boolean) => {
    const j = listed?.indexOf(id) ?? -1;
    if (j < 0) return;
    listedNamed[j] = 1;
    if (!healthy) listedUnhealthy[j] = 1;
  };

  const limiter = new Limiter(options.concurrency ?? 16);
  const rand = options.randomInt ?? randomInt;
  const problems: VerifyProblem[] = [];
  /** Problems by chunk id, with the string `missingChunks` or `corruptChunks` lists them under. */
  const found: Array<FoundProblem & { where: string }> = [];
  const damagedSegments = new Set<number>();
  let segmentsChecked = 0;
  let chunksTotal = 0;
  let bytesChecked = 0;
  let checked = 0;
  let chunkProblems = 0;
  let passes = 0;
  let progress: ProgressReporter | undefined;
  let progressTotal = 0;
  let failure: unknown;
  const cancelled = () => {
    if (signal?.aborted) failure ??= new EngineError('aborted', 'verify cancelled');
    return failure !== undefined;
  };
  // Damaged chunks whose copies are sought after the passes (the first location found per id, at most
  // MAX_COPIES_SOUGHT ids), the others not sought, and every damaged chunk object by `<id hex>@<location>`.
  const sought = new Map<string, SoughtChunk>();
  const notSought = new Set<string>();
  const damagedObjects = new Set<string>();
  const get = (key: string) => repository.store.get(key, undefined, call);

  try {
    for (let lo = 0; lo < 256 && !cancelled(); ) {
      passes++;
      let hi = 256;
      const index = new ChunkIndex();
      for await (const segment of repository.readManifestSegments(manifest, { get, tolerateDamage: true })) {
        if (cancelled()) break;
        if (segment.damaged) {
          if (damagedSegments.has(segment.index)) continue;
          damagedSegments.add(segment.index);
          const missing = isObjectStoreError(segment.error, 'not-found');
          const message = (segment.error as Error).message;
          const chunkId = Buffer.from(segment.id).toString('hex');
          problems.push({ objectKey: segment.objectKey, location: undefined, chunkId, message });
          found.push({
            id: segment.id.slice(),
            problem: missing ? 'missing' : 'corrupt',
            where: segment.objectKey,
          });
          learn(segment.id, false);
          continue;
        }
        if (passes === 1) {
          segmentsChecked++;
          learn(segment.id, true);
        }
        index.add(segment.entries, lo, hi);
        hi = fitIndex(index, lo, hi, indexMemory);
      }
      if (failure) break;
      index.flush();
      const distinct = index.count;
      chunksTotal += distinct;

      // What to read, by position in the index (sorted by location): the chunks the record lists whatever
      // the sample says, and the sample — exactly ⌈P %⌉ of the positions, drawn in one sequential pass
      // (selection sampling), so that the reads stay in pack order and cost no more memory than the flags.
      const chosen = new Uint8Array(distinct);
      if (listed) {
        for (let i = 0; i < distinct; i++) {
          const j = listed.indexOf(index.idAt(i));
          if (j < 0) continue;
          listedNamed[j] = 1;
          chosen[i] = 1;
        }
      }
      const n =
        percent < 100 ? Math.min(distinct, Math.max(1, Math.ceil((distinct * percent) / 100))) : distinct;
      for (let i = 0, picked = 0; i < distinct && picked < n; i++) {
        const left = distinct - i;
        if (n - picked >= left || rand(left) < n - picked) {
          chosen[i] = 1;
          picked++;
        }
      }
      // The total is exact when one pass does it all; over several, what the root says the chunks weigh.
      if (progress === undefined) {
        let total = 0;
        for (let i = 0; i < distinct; i++) if (chosen[i] === 1) total += index.lengthAt(i);
        progressTotal = hi === 256 ? total : Math.ceil((manifest.chunkBytes * percent) / 100);
        progress = new ProgressReporter('verify', progressTotal, options.onProgress);
      }
      const reporter = progress;
      // Read in pack order, adjacent chunks together; a chunk read healthy is marked 2 in `chosen`.
      const inFlight = new Set<Promise<void>>();
      for (const span of spans(index, positions(chosen, 1))) {
        if (cancelled()) break;
        await limiter.acquire();
        if (cancelled()) {
          limiter.release();
          break;
        }
        const task = (async () => {
          try {
            const { outcomes } = await readSpan(repository.store, workers, index, span, call);
            outcomes.forEach((outcome, k) => {
              const at = span[k]!;
              if (outcome.ok) {
                chosen[at] = 2;
                checked++;
                bytesChecked += index.lengthAt(at);
                return;
              }
              const location = index.locationAt(at);
              const where = describeLocation(location);
              problems.push({
                objectKey: packObjectKey(location.pack),
                location: where,
                chunkId: Buffer.from(index.idAt(at)).toString('hex'),
                message: outcome.message,
              });
              found.push({ id: index.idAt(at).slice(), problem: outcome.problem, where });
              chunkProblems++;
              const hex = Buffer.from(index.idAt(at)).toString('hex');
              damagedObjects.add(`${hex}@${where}`);
              if (sought.has(hex)) return;
              if (sought.size < MAX_COPIES_SOUGHT) {
                const pack = location.pack.slice();
                sought.set(hex, {
                  id: index.idAt(at).slice(),
                  length: index.lengthAt(at),
                  location: { pack, offset: location.offset, length: location.length },
                });
              } else notSought.add(hex);
            });
            reporter.report(Math.min(bytesChecked, progressTotal));
          } catch (error) {
            failure ??= error;
          } finally {
            limiter.release();
          }
        })();
        inFlight.add(task);
        void task.finally(() => inFlight.delete(task));
      }
      await Promise.allSettled(inFlight);
      if (listed) {
        // A listed chunk is healthy only when every copy of it the backup names was read and opened.
        for (let i = 0; i < distinct; i++) {
          if (chosen[i] === 2) continue;
          const j = listed.indexOf(index.idAt(i));
          if (j >= 0) listedUnhealthy[j] = 1;
        }
      }
      lo = hi;
    }
  } catch (error) {
    failure ??= error;
  }
  if (failure) throw failure;

  // Other copies of the damaged chunks: one pass over the index objects for all of them, then their ranges.
  const copies = await findHealthyCopies(repository, workers, [...sought.values()], {
    call,
    limiter,
    cancelled: () => {
      if (cancelled()) throw failure;
    },
    known: (id, location) =>
      damagedObjects.has(`${Buffer.from(id).toString('hex')}@${describeLocation(location)}`)
        ? 'damaged'
        : undefined,
  });
  const fromCopies: VerifyCopy[] = [];
  const byLocation = new Map(problems.map((p) => [p.location, p]));
  for (const f of found) {
    const copy = copies.get(Buffer.from(f.id).toString('hex'));
    const problem = byLocation.get(f.where);
    if (copy === undefined || problem === undefined) continue;
    fromCopies.push({
      chunkId: problem.chunkId,
      objectKey: problem.objectKey,
      location: f.where,
      problem: f.problem,
      message: problem.message,
      copy: describeLocation(copy),
    });
  }
  fromCopies.sort((a, b) => a.location.localeCompare(b.location));
  const restorable = new Set(fromCopies.map((c) => c.location));
  const damage = problems.filter((p) => p.location === undefined || !restorable.has(p.location));
  // They leave the record, unless the backup is its volume's latest (see `latestOfVolumes`).
  const kept =
    recordDamage && fromCopies.length > 0 && (await isLatestOfVolume(repository, options.backup, call));
  const recording = kept ? found : found.filter((f) => !restorable.has(f.where));
  if (!kept && listed) {
    for (const hex of copies.keys()) {
      const j = listed.indexOf(Buffer.from(hex, 'hex'));
      if (j >= 0) listedUnhealthy[j] = 0;
    }
  }
  let notSoughtObjects = 0;
  for (const f of found) {
    if (notSought.has(Buffer.from(f.id).toString('hex'))) notSoughtObjects++;
  }
  // By id, and for one id `corrupt` first: a record lists a chunk once, and `corrupt` is what makes a backup
  // store a chunk again even though some copy exists.
  recording.sort((a, b) => Buffer.compare(a.id, b.id) || rank(a.problem) - rank(b.problem));
  let damageRecord: DamageRecordUpdate | undefined;
  let damageRecordError: string | undefined;
  if (recordDamage) {
    try {
      damageRecord = await reconcileDamageRecord(repository, options.backup, {
        previous,
        found: dedupe(recording),
        checkedHealthy: (id) => {
          const j = listed?.indexOf(id) ?? -1;
          return j >= 0 && listedNamed[j] === 1 && listedUnhealthy[j] === 0;
        },
        named: (id) => {
          const j = listed?.indexOf(id) ?? -1;
          return j >= 0 && listedNamed[j] === 1;
        },
        // Every chunk checked, and every segment read: behind a damaged segment are chunks nobody knows of.
        complete: damagedSegments.size === 0 && checked + chunkProblems === chunksTotal,
        now: (options.now ?? (() => new Date()))(),
        signal,
      });
    } catch (error) {
      // A cancel is no failure to record: the verify ends with it.
      if (!(error instanceof ObjectStoreError) || error.kind === 'aborted') throw error;
      damageRecordError = `could not update ${repository.damageRecordKey(options.backup)}: ${error.message}`;
    }
  }
  (progress ?? new ProgressReporter('verify', 0, options.onProgress)).report(progressTotal, true);
  const whereOf = (problem: ChunkProblem) =>
    found
      .filter((f) => f.problem === problem && !restorable.has(f.where))
      .map((f) => f.where)
      .sort();
  return {
    backupId: manifest.backupId,
    chunksTotal,
    chunksChecked: checked,
    bytesChecked,
    segmentsChecked,
    problems: damage.sort(
      (a, b) => a.objectKey.localeCompare(b.objectKey) || (a.location ?? '').localeCompare(b.location ?? ''),
    ),
    missingChunks: whereOf('missing'),
    corruptChunks: whereOf('corrupt'),
    chunksFromCopies: fromCopies.length,
    fromCopies,
    chunksFromCopiesRecorded: kept && damageRecord !== undefined ? fromCopies.length : 0,
    chunksNotSought: notSoughtObjects,
    damageRecord,
    damageRecordError,
    passes,
    seconds: progress?.elapsedSeconds() ?? 0,
  };
}

function rank(problem: ChunkProblem): number {
  return problem === 'corrupt' ? 0 : 1;
}

/** Sorted problems with one entry per id (the first: `corrupt` when the copies differ). */
function dedupe<T extends FoundProblem>(sorted: T[]): T[] {
  return sorted.filter((f, i) => i === 0 || Buffer.compare(sorted[i - 1]!.id, f.id) !== 0);
}

/**
 * Whether the backup is the one its volume's next backup would take locations from: its volume's latest
 * committed manifest, as `PreviousManifest.load` picks it (one listing of the volume's manifests).
 */
async function isLatestOfVolume(repository: Repository, ref: BackupRef, call: OperationOptions) {
  const manifests: { volumeId: string; manifestKey: string; lastModified: Date }[] = [];
  for await (const info of repository.store.list(`${MANIFESTS_PREFIX}${ref.volumeId}/`, call)) {
    manifests.push({ volumeId: ref.volumeId, manifestKey: info.key, lastModified: info.lastModified });
  }
  return latestOfVolumes(manifests).has(ref.manifestKey);
}
