import { randomInt } from 'node:crypto';
import { chunkObjectKey, IntegrityError } from '@stowage/format';
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
  const distinct = new Map<string, { id: Uint8Array; length: number }>();
  for (const e of manifest.entries) {
    if (e.kind === 'chunk') distinct.set(Buffer.from(e.id).toString('hex'), { id: e.id, length: e.length });
  }
  let chosen = [...distinct.values()];
  if (percent < 100) {
    const rand = options.randomInt ?? randomInt;
    const n = Math.max(1, Math.ceil((chosen.length * percent) / 100));
    for (let i = 0; i < n && i < chosen.length; i++) {
      const j = i + rand(chosen.length - i);
      [chosen[i], chosen[j]] = [chosen[j]!, chosen[i]!];
    }
    chosen = chosen.slice(0, n);
  }
  const total = chosen.reduce((s, c) => s + c.length, 0);
  const progress = new ProgressReporter('verify', total, options.onProgress);
  const limiter = new Limiter(options.concurrency ?? 16);
  const problems: VerifyProblem[] = [];
  let bytesChecked = 0;
  let checked = 0;
  const tasks: Promise<void>[] = [];
  for (const c of chosen) {
    if (options.signal?.aborted) throw new EngineError('aborted', 'verify cancelled');
    await limiter.acquire();
    const objectKey = chunkObjectKey(c.id);
    tasks.push(
      (async () => {
        try {
          const object = await repository.store.get(objectKey);
          await workers.check(object, c.id, c.length);
          checked++;
          bytesChecked += c.length;
          progress.report(bytesChecked);
        } catch (error) {
          const kind = (error as { kind?: string }).kind;
          if (error instanceof IntegrityError) problems.push({ objectKey, message: error.message });
          else if (kind === 'not-found')
            problems.push({ objectKey, message: `chunk ${objectKey} is missing` });
          else throw error;
        } finally {
          limiter.release();
        }
      })(),
    );
  }
  await Promise.all(tasks);
  progress.report(total, true);
  return {
    backupId: manifest.backupId,
    chunksTotal: distinct.size,
    chunksChecked: checked,
    bytesChecked,
    problems: problems.sort((a, b) => a.objectKey.localeCompare(b.objectKey)),
    seconds: progress.elapsedSeconds(),
  };
}
