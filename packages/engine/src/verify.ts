import { randomInt } from 'node:crypto';
import {
  type ChunkProblem,
  chunkObjectKey,
  type DamageRecord,
  IntegrityError,
  StowageFormatError,
} from '@stowage/format';
import { isObjectStoreError, ObjectStoreError } from '@stowage/object-store';
import { abortRace } from './abort.js';
import { distinctChunks, findChunk } from './chunk-ids.js';
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
  now?: () => Date;
}

export interface VerifyProblem {
  objectKey: string;
  message: string;
}

export interface VerifyReport {
  backupId: string;
  chunksTotal: number;
  chunksChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
  /** The chunk objects found missing, and those that exist and fail to open (`problems` names both). */
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
  seconds: number;
}

/**
 * Verifies a backup like `restic check --read-data(-subset)`: the manifest is decrypted and authenticated,
 * then every distinct chunk (or a random sample) is downloaded, authenticated, decompressed and re-hashed.
 * Problems are collected rather than thrown, so one report names every damaged object. What it finds goes
 * into the backup's damage record (docs/format.md §12.5): problems are listed, and entries for chunks it read
 * and found healthy are removed — a sampled verify clears only what it read, which always includes the chunks
 * the record listed.
 */
export async function verifyBackup(options: VerifyOptions): Promise<VerifyReport> {
  const { repository, workers } = options;
  const percent = options.samplePercent ?? 100;
  if (!(percent > 0 && percent <= 100)) {
    throw new EngineError('invalid-argument', `sample must be a percentage in (0, 100], got ${percent}`);
  }
  const recordDamage = options.recordDamage ?? true;
  const manifest = await repository.loadManifest(options.backup);
  const entries = manifest.entries;
  const unique = distinctChunks(entries);
  const { indices, distinct } = unique;
  const findId = (id: Uint8Array) => findChunk(entries, unique, id);
  let previous: DamageRecord | 'unreadable' | undefined;
  if (recordDamage) {
    try {
      previous = await repository.readDamageRecord(options.backup);
    } catch (error) {
      if (!(error instanceof StowageFormatError)) throw error;
      previous = 'unreadable';
    }
  }
  // Positions (in `indices`, sorted by id) of the chunks the record lists: read whatever the sample says.
  const recorded: number[] = [];
  if (previous !== undefined && previous !== 'unreadable') {
    for (const d of previous.chunks) {
      const at = findId(d.id);
      if (at >= 0) recorded.push(at);
    }
  }
  let chosen = indices.subarray(0, distinct);
  if (percent < 100) {
    const rand = options.randomInt ?? randomInt;
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
      sample[k++] = indices[order[i]!]!;
      picked[order[i]!] = 2;
    }
    for (const at of recorded) {
      if (picked[at] === 1) {
        sample[k++] = indices[at]!;
        picked[at] = 2;
      }
    }
    chosen = sample.subarray(0, k);
  }
  // Chunks read in this verify, as positions in `indices`: the ones whose record entries it may clear.
  const read = new Uint8Array(distinct);
  let total = 0;
  for (const index of chosen) total += entries.lengthAt(index);
  const progress = new ProgressReporter('verify', total, options.onProgress);
  const gets = abortRace(options.signal, 'verify');
  const limiter = new Limiter(options.concurrency ?? 16);
  const problems: VerifyProblem[] = [];
  const found: Array<FoundProblem & { objectKey: string }> = [];
  let bytesChecked = 0;
  let checked = 0;
  let failure: unknown;
  const inFlight = new Set<Promise<void>>();
  for (const index of chosen) {
    if (options.signal?.aborted) failure ??= new EngineError('aborted', 'verify cancelled');
    if (failure) break;
    await limiter.acquire();
    if (options.signal?.aborted) {
      limiter.release();
      failure ??= new EngineError('aborted', 'verify cancelled');
      break;
    }
    const id = entries.idAt(index).slice();
    const length = entries.lengthAt(index);
    const objectKey = chunkObjectKey(id);
    const task = (async () => {
      const problem = (kind: ChunkProblem, message: string) => {
        problems.push({ objectKey, message });
        found.push({ id, problem: kind, objectKey });
      };
      try {
        const object = await gets.race(() => repository.store.get(objectKey));
        await workers.check(object, id, length);
        checked++;
        bytesChecked += length;
        const at = findId(id);
        if (at >= 0) read[at] = 1;
        progress.report(bytesChecked);
      } catch (error) {
        if (error instanceof IntegrityError) problem('corrupt', error.message);
        else if (isObjectStoreError(error, 'not-found')) problem('missing', `chunk ${objectKey} is missing`);
        else failure ??= error;
      } finally {
        limiter.release();
      }
    })();
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
  }
  await Promise.allSettled(inFlight);
  gets.close();
  if (failure) throw failure;
  found.sort((a, b) => Buffer.compare(a.id, b.id));
  let damageRecord: DamageRecordUpdate | undefined;
  let damageRecordError: string | undefined;
  if (recordDamage) {
    try {
      damageRecord = await reconcileDamageRecord(repository, options.backup, {
        previous,
        found,
        checkedHealthy: (id) => {
          const at = findId(id);
          return at >= 0 && read[at] === 1;
        },
        named: (id) => findId(id) >= 0,
        complete: checked + found.length === distinct,
        now: (options.now ?? (() => new Date()))(),
      });
    } catch (error) {
      if (!(error instanceof ObjectStoreError)) throw error;
      damageRecordError = `could not update ${repository.damageRecordKey(options.backup)}: ${error.message}`;
    }
  }
  progress.report(total, true);
  return {
    backupId: manifest.backupId,
    chunksTotal: distinct,
    chunksChecked: checked,
    bytesChecked,
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
    seconds: progress.elapsedSeconds(),
  };
}
