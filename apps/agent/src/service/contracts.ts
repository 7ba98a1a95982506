/**
 * The seams between the parts of `agent serve`, so each part is built and tested on its own and `serve.ts`
 * only wires them together:
 *
 *   config ─▶ serve.ts ─▶ backends (HostBackend per kind) ─┐
 *                       ├▶ JobRunner (jobs/) ◀─ http/ (routes call it)
 *                       │     └─ on every change ─▶ JobEventSink (events/: manager outbox) and metrics
 *                       └▶ openRepository (target settings → Repository, store wrapped with metrics)
 */
import type {
  BackendKind,
  BackupRequest,
  Job,
  JobAccepted,
  RestoreRequest,
  TargetSettings,
  VerifyRequest,
} from '@stowage/api';
import type { Repository } from '@stowage/engine';
import type { RetryEvent, StoreEvent } from '@stowage/object-store';

/** Structured logging: one JSON line per call. Callers never pass secrets in `fields`. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * Runs backup, restore and verify jobs: a queue with a concurrency limit, cancel, and one `Job` record per id (the
 * `@stowage/api` shape, which the HTTP API returns as is). Request validation (zod) is the HTTP layer's;
 * the runner checks what only it can (backend configured, job id reuse, shutting down) and throws `ApiError`s.
 */
export interface JobRunner {
  /**
   * Queues a backup. Same `job_id` (in any case) and same request again → the existing job, also after a
   * restart; a different request under that id → `ApiError('conflict')`; while stopping →
   * `ApiError('unavailable')`. The volume is looked up first (a missing or unconfined one fails as the
   * backend says) and held by the job until it ends: a volume another job holds → `ApiError('conflict')`
   * naming that job.
   */
  submitBackup(request: BackupRequest): Promise<JobAccepted>;
  /** As `submitBackup`; a destination `name` is held until the job provisions the volume, then the volume. */
  submitRestore(request: RestoreRequest): Promise<JobAccepted>;
  /** As `submitBackup`, but a verify holds no volume: it only reads the bucket (and writes damage records). */
  submitVerify(request: VerifyRequest): Promise<JobAccepted>;
  /** Whether job `id` is queued or running (its volumes held). */
  isActive(id: string): boolean;
  get(id: string): Job | undefined;
  list(): Job[];
  /** Cancels a queued or running job (idempotent on a finished one: returns it as it is); unknown → not_found. */
  cancel(id: string): Job;
  /**
   * Stops taking jobs, lets running ones finish for up to `graceMs`, then cancels them (and the queued ones)
   * and waits up to `cleanupMs` (default 30 s) for their clean-up (snapshots deleted, partial restores
   * removed). Answers the jobs still running after that: they are left to the next start's recovery.
   */
  shutdown(graceMs: number, cleanupMs?: number): Promise<Job[]>;
}

/** Receives every job change. `progress` at any rate (sinks throttle); `state` on each transition. */
export interface JobEventSink {
  jobChanged(job: Job, change: 'progress' | 'state'): void;
  /** Resolves once every final (terminal-state) event handed over so far is durable, e.g. in the outbox's
   * state file. The runner awaits it before forgetting a job's crash-recovery record. */
  flush?(): Promise<void>;
}

/** Opens the repository a request names, with its keys; the store stack (retry, limits, metrics) is the
 * caller's. A `file://` repository outside the configured repository roots is `ApiError('forbidden')`. */
export type RepositoryOpener = (target: TargetSettings, signal?: AbortSignal) => Promise<Repository>;

/** What the metrics registry is fed with, beside job changes. */
export interface StoreEventSink {
  storeEvent(event: StoreEvent): void;
  /** A failed attempt that is being retried. */
  storeRetry(event: RetryEvent): void;
}

export type { BackendKind };
