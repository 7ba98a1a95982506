import { createHash } from 'node:crypto';
import type { BackendKind, Job, JobAccepted, Volume } from '@stowage/api';
import type { ChunkWorkers, Progress } from '@stowage/engine';
import type { HostBackend, VolumeInfo } from '@stowage/host-backends';
import type { Logger, RepositoryOpener } from '../contracts.js';
import type { CommitFence } from '../events/commit-fence.js';
import type { VolumeLocks } from '../volume-locks.js';
import type { JournalEntry } from './journal.js';

/** Snapshots a backup job takes are named so; nothing else may create, and nobody delete, one while it runs. */
export const JOB_SNAPSHOT_PREFIX = 'stowage-job-';

/** One job the runner knows of, from submit to the end of its history. */
export interface JobEntry {
  job: Job;
  /** SHA-256 of the canonical request: resubmits are compared by it, so the request (and its secrets) need
   * not be kept once the job has started. */
  fingerprint: string;
  controller: AbortController;
  /** Why the job was aborted: a cancel request or shutdown. */
  abortReason?: string;
  /** The job's journal record as last written, once it touched the host; undefined before. */
  journaled?: JournalEntry;
  /** What the job will report when it ends (its result, its destination's fate), published with the final
   * state only, so that a running job never shows a result. */
  ending: Pick<Job, 'result' | 'destination'>;
  /** Runs the job; dropped once started, so the request's secrets live only as long as the work. */
  work?: (entry: JobEntry) => Promise<void>;
  settled?: Promise<void>;
  /** Settles (never rejects) once the record written when the job was accepted is on disk, or failed. */
  recorded?: Promise<void>;
  /** While that record is being written: the submit's answer, which an identical resubmit shares. */
  accepting?: Promise<JobAccepted>;
  /** A job snapshot the backup could not delete: its journal record is kept so the next start retries. */
  snapshotLeft?: string;
  /** Frees the volumes the job holds (from submit to its end); safe to call twice. */
  releaseVolumes: Array<() => void>;
  /** When the last progress change was published (performance.now), for the spacing of the next. */
  lastProgressAt: number;
}

export type ProgressListener = (
  progress: Pick<Progress, 'bytesDone' | 'bytesTotal' | 'rate' | 'etaSeconds'>,
) => void;

/**
 * What a job's work (backup-job.ts, restore-job.ts, verify-job.ts) gets from the runner: the host's
 * backends and locks, the repository opener, the journal, progress reporting and worker threads. The
 * runner owns the queue, the states and the history; the work owns what it does on the host and in the
 * bucket, and reports through `entry.ending`.
 */
export interface JobContext {
  readonly openRepository: RepositoryOpener;
  readonly locks: VolumeLocks;
  readonly logger: Logger;
  readonly now: () => Date;
  /** Packs named by one index object of a backup; undefined: the engine's default. */
  readonly packsPerIndex: number | undefined;
  /** Asked before a fenced backup commits; undefined: such a backup is refused its commit. */
  readonly commitFence: CommitFence | undefined;
  /** The configured backend of this kind, or a 404 naming it. */
  backend(kind: BackendKind): HostBackend;
  /** The job's journal record, before the fields its work adds. */
  journalEntry(entry: JobEntry, backend: BackendKind | undefined): JournalEntry;
  /** Records what the job is about to leave on the host, before it does. */
  journal(entry: JobEntry, record: JournalEntry): Promise<void>;
  /** Publishes the job's progress, spaced by the runner's interval. */
  progressListener(entry: JobEntry, phase: 'snapshot' | 'transfer'): ProgressListener;
  /** A job's own worker threads (jobs may use different keys). */
  workers(): ChunkWorkers;
  /** Stops them; a failure is logged, not thrown (the job's outcome stands). */
  closeWorkers(entry: JobEntry, workers: ChunkWorkers): Promise<void>;
}

export function volumeOf(backend: BackendKind, info: VolumeInfo): Volume {
  return { backend, locator: info.locator, name: info.name, size: info.size };
}

/** SHA-256 of the request with its keys sorted: equal requests, however their JSON was spelled, match. */
export function fingerprintOf(request: unknown): string {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(
        Object.keys(value as object)
          .sort()
          .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
      );
    }
    return value;
  };
  return createHash('sha256')
    .update(JSON.stringify(canonical(request)))
    .digest('hex');
}
