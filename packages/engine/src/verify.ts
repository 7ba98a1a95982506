import { randomInt } from 'node:crypto';
import { chunkObjectKey, IntegrityError, type ManifestEntries } from '@stowage/format';
import { isObjectStoreError } from '@stowage/object-store';
import { abortRace } from './abort.js';
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
  seconds: number;
}

/**
 * Verifies a backup like `restic check --read-data(-subset)`: the manifest is decrypted and authenticated,
 * then every distinct chunk (or a random sample) is downloaded, authenticated, decompressed and re-hashed.
 * Problems are collected rather than thrown, so one report names every damaged object.
 */
export async function verifyBackup(options: VerifyOptions): Promise<VerifyReport> {
  const { repository, workers } = options;
  const percent = options.samplePercent ?? 100;
  if (!(percent > 0 && percent <= 100)) {
    throw new EngineError('invalid-argument', `sample must be a percentage in (0, 100], got ${percent}`);
  }
  const manifest = await repository.loadManifest(options.backup);
  const entries = manifest.entries;
  const { indices, distinct } = distinctChunks(entries);
  let chosen = indices.subarray(0, distinct);
  if (percent < 100) {
    const rand = options.randomInt ?? randomInt;
    const n = Math.max(1, Math.ceil((distinct * percent) / 100));
    for (let i = 0; i < n && i < distinct; i++) {
      const j = i + rand(distinct - i);
      const t = chosen[i]!;
      chosen[i] = chosen[j]!;
      chosen[j] = t;
    }
    chosen = chosen.subarray(0, n);
  }
  let total = 0;
  for (const index of chosen) total += entries.lengthAt(index);
  const progress = new ProgressReporter('verify', total, options.onProgress);
  const gets = abortRace(options.signal, 'verify');
  const limiter = new Limiter(options.concurrency ?? 16);
  const problems: VerifyProblem[] = [];
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
      try {
        const object = await gets.race(() => repository.store.get(objectKey));
        await workers.check(object, id, length);
        checked++;
        bytesChecked += length;
        progress.report(bytesChecked);
      } catch (error) {
        if (error instanceof IntegrityError) problems.push({ objectKey, message: error.message });
        else if (isObjectStoreError(error, 'not-found')) {
          problems.push({ objectKey, message: `chunk ${objectKey} is missing` });
        } else failure ??= error;
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
  progress.report(total, true);
  return {
    backupId: manifest.backupId,
    chunksTotal: distinct,
    chunksChecked: checked,
    bytesChecked,
    problems: problems.sort((a, b) => a.objectKey.localeCompare(b.objectKey)),
    seconds: progress.elapsedSeconds(),
  };
}

/**
 * Indices of the chunk entries with distinct ids, first `distinct` of the returned array: 4 bytes per entry
 * (sorting indices by id), where a map of hex ids would cost ~200 bytes per chunk on TiB volumes.
 */
function distinctChunks(entries: ManifestEntries): { indices: Uint32Array; distinct: number } {
  const indices = new Uint32Array(entries.chunkCount);
  let n = 0;
  for (let i = 0; i < entries.count; i++) if (entries.isChunkAt(i)) indices[n++] = i;
  indices.sort((a, b) => Buffer.compare(entries.idAt(a), entries.idAt(b)));
  let distinct = 0;
  for (let i = 0; i < indices.length; i++) {
    if (distinct > 0 && Buffer.compare(entries.idAt(indices[distinct - 1]!), entries.idAt(indices[i]!)) === 0)
      continue;
    indices[distinct++] = indices[i]!;
  }
  return { indices, distinct };
}
