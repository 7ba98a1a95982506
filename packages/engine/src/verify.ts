import { randomInt } from 'node:crypto';
import {
  type ChunkProblem,
  chunkObjectKey,
  type DamageRecord,
  IntegrityError,
  StowageFormatError,
} from '@stowage/format';
import { isObjectStoreError, ObjectStoreError, type OperationOptions } from '@stowage/object-store';
import { asCancel, jobSignal } from './abort.js';
import { ChunkIdIndex, fitIndex, INDEX_BYTES_PER_CHUNK } from './chunk-ids.js';
import { type DamageRecordUpdate, type FoundProblem, reconcileDamageRecord } from './damage.js';
import { EngineError } from './errors.js';
import { Limiter } from './limiter.js';
import { type ProgressListener, ProgressReporter } from './progress.js';
import type { BackupRef, Repository } from './repository.js';
import type { ChunkWorkers } from './workers/chunk-workers.js';

export interface VerifyOptions {
  repository: Repository;
  workers: ChunkWorkers;
  backup: BackupRef;
  /** Percentage of the backup's distinct chunks to download and check (default 100). */
  samplePercent?: number;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  concurrency?: number;
  /** Random integer in [0, max): injected so tests can fix the sample. */
  randomInt?: (max: number) => number;
  /**
   * Keep the backup's damage record (default true): problems found are recorded, and the chunks it listed
   * are read on every verify, sampled or not, so that a repaired chunk is cleared. `false` leaves the
   * repository untouched (read-only credentials).
   */
  recordDamage?: boolean;
  /**
   * Bytes the chunk-id index of one pass may take (default 64 MiB: 72 bytes per distinct chunk, ≈ 930,000
   * chunks). A backup naming more is verified in several passes over slices of the id space (by first id
   * byte), each reading the manifest's segments again.
   */
  indexMemoryBytes?: number;
  now?: () => Date;
}

export interface VerifyProblem {
  objectKey: string;
  message: string;
}

export interface VerifyReport {
  backupId: string;
  /** Distinct data chunks the manifest names (as far as its segments could be read). */
  chunksTotal: number;
  chunksChecked: number;
  bytesChecked: number;
  /** Manifest segments (chunk objects holding the entries) read and authenticated. */
  segmentsChecked: number;
  problems: VerifyProblem[];
  /**
   * The chunk objects found missing, and those that exist and fail to open (`problems` names both); manifest
   * segments among them, whose problems name the manifest as well.
   */
  missingChunks: string[];
  corruptChunks: string[];
  /** What the verify did to the backup's damage record; undefined with `recordDamage: false`. */
  damageRecord: DamageRecordUpdate | undefined;
  /**
   * Why the damage record could not be updated (a storage failure, e.g. read-only credentials), or
   * undefined. The findings above stand either way: recording them is a side effect, and a failure to
   * record must not hide what the verify found.
   */
  damageRecordError: string | undefined;
  /** Passes over the chunk-id space (1 unless the index outgrew `indexMemoryBytes`). */
  passes: number;
  seconds: number;
}

const DEFAULT_INDEX_MEMORY = 64 << 20;

/**
 * Verifies a backup like `restic check --read-data(-subset)`: the manifest's root is decrypted and
 * authenticated, its segments are read in order (each authenticated and checked, docs/format.md §6.5), then
 * every distinct chunk (or a random sample) is downloaded, authenticated, decompressed and re-hashed.
 * Problems are collected rather than thrown, so one report names every damaged object — a missing or corrupt
 * segment among them (the chunks only it names are then unknown, and the rest are still checked). What it
 * finds goes into the backup's damage record (docs/format.md §12.5): problems are listed, and entries for
 * chunks it read and found healthy are removed — a sampled verify clears only what it read, which always
 * includes the chunks the record listed.
 *
 * Memory does not grow with the backup: the segments being read, and the distinct chunk ids of one pass
 * (`indexMemoryBytes`); a backup with more distinct chunks than fit is verified in several passes.
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
  // backup names it, and whether it was read and found healthy.
  const listed = previous !== undefined && previous !== 'unreadable' ? previous.chunks : undefined;
  const listedNamed = new Uint8Array(listed?.count ?? 0);
  const listedHealthy = new Uint8Array(listed?.count ?? 0);
  const learn = (id: Uint8Array, healthy: boolean) => {
    const j = listed?.indexOf(id) ?? -1;
    if (j < 0) return;
    listedNamed[j] = 1;
    if (healthy) listedHealthy[j] = 1;
  };

  const limiter = new Limiter(options.concurrency ?? 16);
  const rand = options.randomInt ?? randomInt;
  const problems: VerifyProblem[] = [];
  const found: Array<FoundProblem & { objectKey: string }> = [];
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
  const get = (key: string) => repository.store.get(key, undefined, call);

  try {
    for (let lo = 0; lo < 256 && !cancelled(); ) {
      passes++;
      let hi = 256;
      const index = new ChunkIdIndex();
      for await (const segment of repository.readManifestSegments(manifest, { get, tolerateDamage: true })) {
        if (cancelled()) break;
        if (segment.damaged) {
          if (damagedSegments.has(segment.index)) continue;
          damagedSegments.add(segment.index);
          const missing = isObjectStoreError(segment.error, 'not-found');
          const message = (segment.error as Error).message;
          problems.push({ objectKey: segment.objectKey, message });
          found.push({
            id: segment.id.slice(),
            problem: missing ? 'missing' : 'corrupt',
            objectKey: segment.objectKey,
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

      // Positions (in the index, sorted by id) of the chunks the record lists: read whatever the sample says.
      const recorded: number[] = [];
      if (listed) {
        for (let j = 0; j < listed.count; j++) {
          const id = listed.idAt(j);
          if (id[0]! < lo || id[0]! >= hi) continue;
          const at = index.find(id);
          if (at < 0) continue;
          listedNamed[j] = 1;
          recorded.push(at);
        }
      }
      let chosen: Iterable<number> = positionsUpTo(distinct);
      if (percent < 100) {
        const n = Math.max(1, Math.ceil((distinct * percent) / 100));
        const picked = new Uint8Array(distinct);
        const order = new Uint32Array(distinct);
        for (let i = 0; i < distinct; i++) order[i] = i;
        for (let i = 0; i < n && i < distinct; i++) {
          const j = i + rand(distinct - i);
          const t = order[i]!;
          order[i] = order[j]!;
          order[j] = t;
          picked[order[i]!] = 1;
        }
        for (const at of recorded) picked[at] = 1;
        const sample = new Uint32Array(Math.min(distinct, n + recorded.length));
        let k = 0;
        // The sample first in the order drawn, then the recorded chunks it did not include.
        for (let i = 0; i < n && i < distinct; i++) {
          sample[k++] = order[i]!;
          picked[order[i]!] = 2;
        }
        for (const at of recorded) {
          if (picked[at] === 1) {
            sample[k++] = at;
            picked[at] = 2;
          }
        }
        chosen = sample.subarray(0, k);
      }
      // The total is exact when one pass does it all; over several, what the root says the chunks weigh.
      if (progress === undefined) {
        let total = 0;
        for (const at of chosen) total += index.lengthAt(at);
        progressTotal = hi === 256 ? total : Math.ceil((manifest.chunkBytes * percent) / 100);
        progress = new ProgressReporter('verify', progressTotal, options.onProgress);
      }
      const reporter = progress;
      // Chunks read healthy in this pass, by position in the index: the ones whose record entries it may clear.
      const read = new Uint8Array(distinct);
      const inFlight = new Set<Promise<void>>();
      for (const at of chosen) {
        if (cancelled()) break;
        await limiter.acquire();
        if (cancelled()) {
          limiter.release();
          break;
        }
        const id = index.idAt(at).slice();
        const length = index.lengthAt(at);
        const objectKey = chunkObjectKey(id);
        const task = (async () => {
          const problem = (kind: ChunkProblem, message: string) => {
            problems.push({ objectKey, message });
            found.push({ id, problem: kind, objectKey });
            chunkProblems++;
          };
          try {
            const object = await get(objectKey);
            await workers.check(object, id, length);
            checked++;
            bytesChecked += length;
            read[at] = 1;
            reporter.report(Math.min(bytesChecked, progressTotal));
          } catch (error) {
            if (error instanceof IntegrityError) problem('corrupt', error.message);
            else if (isObjectStoreError(error, 'not-found'))
              problem('missing', `chunk ${objectKey} is missing`);
            else failure ??= error;
          } finally {
            limiter.release();
          }
        })();
        inFlight.add(task);
        void task.finally(() => inFlight.delete(task));
      }
      await Promise.allSettled(inFlight);
      if (listed) {
        for (let j = 0; j < listed.count; j++) {
          const id = listed.idAt(j);
          if (id[0]! < lo || id[0]! >= hi) continue;
          const at = index.find(id);
          if (at >= 0 && read[at] === 1) listedHealthy[j] = 1;
        }
      }
      lo = hi;
    }
  } catch (error) {
    failure ??= error;
  }
  if (failure) throw failure;
  found.sort((a, b) => Buffer.compare(a.id, b.id));
  let damageRecord: DamageRecordUpdate | undefined;
  let damageRecordError: string | undefined;
  if (recordDamage) {
    try {
      damageRecord = await reconcileDamageRecord(repository, options.backup, {
        previous,
        found: dedupe(found),
        checkedHealthy: (id) => {
          const j = listed?.indexOf(id) ?? -1;
          return j >= 0 && listedHealthy[j] === 1;
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
  return {
    backupId: manifest.backupId,
    chunksTotal,
    chunksChecked: checked,
    bytesChecked,
    segmentsChecked,
    problems: problems.sort((a, b) => a.objectKey.localeCompare(b.objectKey)),
    missingChunks: found
      .filter((f) => f.problem === 'missing')
      .map((f) => f.objectKey)
      .sort(),
    corruptChunks: found
      .filter((f) => f.problem === 'corrupt')
      .map((f) => f.objectKey)
      .sort(),
    damageRecord,
    damageRecordError,
    passes,
    seconds: progress?.elapsedSeconds() ?? 0,
  };
}

/** 0 … n − 1, as often as it is iterated. */
function positionsUpTo(n: number): Iterable<number> {
  return {
    *[Symbol.iterator]() {
      for (let i = 0; i < n; i++) yield i;
    },
  };
}

/** Sorted problems with one entry per id (a segment that is also some entry's chunk is one object). */
function dedupe<T extends FoundProblem>(sorted: T[]): T[] {
  return sorted.filter((f, i) => i === 0 || Buffer.compare(sorted[i - 1]!.id, f.id) !== 0);
}
