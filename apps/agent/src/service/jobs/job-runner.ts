import { createHash, randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import {
  ApiError,
  type ApiErrorBody,
  type BackendKind,
  type BackupRequest,
  type BackupResult,
  type Job,
  type JobAccepted,
  type RestoreRequest,
  type RestoreResult,
  type Volume,
} from '@stowage/api';
import {
  backupVolume,
  ChunkWorkers,
  EngineError,
  type Progress,
  restoreBackup,
  type VolumeTarget,
} from '@stowage/engine';
import type { HostBackend, SnapshotResult, VolumeInfo } from '@stowage/host-backends';
import type { JobEventSink, JobRunner, Logger, RepositoryOpener } from '../contracts.js';
import { apiErrorFromHostBackend } from '../errors.js';
import { silentLogger } from '../log.js';
import type { JobJournal, JournalEntry } from './journal.js';

export interface JobRunnerOptions {
  backends: ReadonlyMap<BackendKind, HostBackend>;
  openRepository: RepositoryOpener;
  events: JobEventSink;
  /** Jobs running at once; more wait in a FIFO queue (default 2). */
  concurrency?: number;
  /** Worker threads per job (default: the machine's cores). Each job has its own: jobs may use other keys. */
  threads?: number;
  /** Where running jobs are recorded for clean-up after a crash; without it nothing survives the process. */
  journal?: JobJournal;
  /** Finished jobs kept for `GET /v1/jobs/:id` and idempotent resubmits (default 1,000). */
  historyLimit?: number;
  /** Least time between progress changes handed to `events` (default 250 ms). */
  progressIntervalMs?: number;
  now?: () => Date;
  logger?: Logger;
}

interface Entry {
  job: Job;
  /** SHA-256 of the canonical request: resubmits are compared by it, so the request (and its secrets) need
   * not be kept once the job has started. */
  fingerprint: string;
  controller: AbortController;
  /** Why the job was aborted: a cancel request or shutdown. */
  abortReason?: string;
  /** Runs the job; dropped once started, so the request's secrets live only as long as the work. */
  work?: (entry: Entry) => Promise<void>;
  settled?: Promise<void>;
}

const EMPTY_PROGRESS = { bytes_done: 0, bytes_total: 0, rate: 0, eta_seconds: null } as const;

/**
 * Backup and restore jobs on this host: a FIFO queue with a concurrency limit, cancel, a bounded history,
 * and a journal that lets the next process clean up after a crash. Each job's host resources (the snapshot
 * a backup reads, the volume a restore provisioned, readers, writers, worker threads) are released in
 * `finally` blocks whatever the outcome, before its final state is published.
 */
export class LocalJobRunner implements JobRunner {
  readonly #options: JobRunnerOptions;
  readonly #jobs = new Map<string, Entry>();
  readonly #queue: Entry[] = [];
  readonly #running = new Set<Entry>();
  readonly #now: () => Date;
  readonly #logger: Logger;
  #stopping = false;

  constructor(options: JobRunnerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    this.#logger = options.logger ?? silentLogger;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  submitBackup(request: BackupRequest): JobAccepted {
    return this.#submit('backup', request, (entry) => this.#runBackup(entry, request));
  }

  submitRestore(request: RestoreRequest): JobAccepted {
    return this.#submit('restore', request, (entry) => this.#runRestore(entry, request));
  }

  get(id: string): Job | undefined {
    return this.#jobs.get(id)?.job;
  }

  list(): Job[] {
    return [...this.#jobs.values()].map((entry) => entry.job);
  }

  cancel(id: string): Job {
    const entry = this.#jobs.get(id);
    if (entry === undefined) throw new ApiError('not_found', `no job ${id} on this agent`);
    this.#abort(entry, 'cancelled by request');
    return entry.job;
  }

  async shutdown(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const entry of [...this.#queue]) this.#abort(entry, 'the agent is shutting down');
    const running = () => Promise.allSettled([...this.#running].map((entry) => entry.settled));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([running(), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    for (const entry of [...this.#running]) this.#abort(entry, 'the agent is shutting down');
    await running();
  }

  /**
   * Cleans up after jobs a previous process left running (it was killed or the host went down): deletes
   * their snapshots and half-restored volumes, and publishes each as failed so the manager learns of it.
   */
  async recover(): Promise<Job[]> {
    const journal = this.#options.journal;
    if (journal === undefined) return [];
    const recovered: Job[] = [];
    for (const { file, entry } of await journal.leftovers()) {
      if (entry === undefined) {
        this.#logger.error('unreadable job journal entry left as it is', { file });
        continue;
      }
      const cleanup = await this.#cleanUpAfterCrash(entry);
      const at = this.#now().toISOString();
      const job: Job = {
        id: entry.id,
        kind: entry.kind,
        state: 'failed',
        created_at: entry.created_at,
        started_at: entry.started_at,
        finished_at: at,
        progress: EMPTY_PROGRESS,
        error: {
          code: 'internal',
          message: `the agent stopped while the job was running (killed, crashed or the host restarted); ${cleanup}`,
          ...(entry.backup === undefined ? {} : { details: { backup: entry.backup } }),
        },
        result: null,
        destination:
          entry.kind === 'restore'
            ? { volume: null, state: entry.created_volume === undefined ? 'failed' : 'removed' }
            : null,
      };
      this.#remember({ job, fingerprint: '', controller: new AbortController() });
      this.#options.events.jobChanged(job, 'state');
      // Forget the record only once the failure report is durable with the sink, as for any finished job.
      await this.#options.events.flush?.();
      await journal.remove(entry.id);
      this.#logger.warn('job from a previous run reported failed', {
        job_id: entry.id,
        kind: entry.kind,
        cleanup,
      });
      recovered.push(job);
    }
    return recovered;
  }

  async #cleanUpAfterCrash(entry: JournalEntry): Promise<string> {
    const backend = this.#options.backends.get(entry.backend);
    const done: string[] = [];
    const tryTo = async (what: string, run: (backend: HostBackend) => Promise<boolean>) => {
      if (backend === undefined) {
        done.push(`could not ${what}: backend ${entry.backend} is no longer configured`);
        return;
      }
      try {
        done.push(`${what}: ${(await run(backend)) ? 'done' : 'nothing there'}`);
      } catch (error) {
        if (apiErrorFromHostBackend(error)?.code === 'not_found') done.push(`${what}: nothing there`);
        else done.push(`could not ${what}: ${(error as Error).message}`);
      }
    };
    const { volume, snapshot_name: snapshotName, created_volume: created } = entry;
    if (volume !== undefined && snapshotName !== undefined) {
      await tryTo(`delete snapshot ${snapshotName}`, async (b) => {
        const found = (await b.listSnapshots(volume)).find((s) => s.name === snapshotName);
        if (found === undefined) return false;
        await b.deleteSnapshot(found.locator);
        return true;
      });
    }
    if (created !== undefined) {
      await tryTo(`delete the partly restored volume ${created}`, async (b) => {
        for (const s of await b.listSnapshots(created)) await b.deleteSnapshot(s.locator);
        await b.deleteVolume(created);
        return true;
      });
    }
    return done.length === 0 ? 'nothing to clean up' : done.join('; ');
  }

  #submit(kind: Job['kind'], request: BackupRequest | RestoreRequest, work: Entry['work']): JobAccepted {
    const fingerprint = fingerprintOf(request);
    const existing = this.#jobs.get(request.job_id);
    if (existing !== undefined) {
      if (existing.fingerprint !== fingerprint) {
        throw new ApiError('conflict', `job ${request.job_id} exists with a different request`);
      }
      return { job_id: existing.job.id, state: existing.job.state };
    }
    if (this.#stopping) throw new ApiError('unavailable', 'the agent is shutting down and takes no new jobs');
    const entry: Entry = {
      job: {
        id: request.job_id,
        kind,
        state: 'queued',
        created_at: this.#now().toISOString(),
        started_at: null,
        finished_at: null,
        progress: EMPTY_PROGRESS,
        error: null,
        result: null,
        destination: null,
      },
      fingerprint,
      controller: new AbortController(),
      work,
    };
    this.#remember(entry);
    this.#queue.push(entry);
    this.#logger.info('job queued', { job_id: entry.job.id, kind });
    this.#publish(entry, {}, 'state');
    this.#startQueued();
    return { job_id: entry.job.id, state: entry.job.state };
  }

  #remember(entry: Entry): void {
    this.#jobs.set(entry.job.id, entry);
    const limit = this.#options.historyLimit ?? 1000;
    if (this.#jobs.size <= limit) return;
    for (const [id, old] of this.#jobs) {
      if (this.#jobs.size <= limit) break;
      if (old.job.finished_at !== null) this.#jobs.delete(id);
    }
  }

  #startQueued(): void {
    const limit = Math.max(1, this.#options.concurrency ?? 2);
    while (this.#running.size < limit && this.#queue.length > 0) {
      const entry = this.#queue.shift()!;
      const work = entry.work!;
      entry.work = undefined;
      this.#running.add(entry);
      entry.settled = this.#run(entry, work).finally(() => {
        this.#running.delete(entry);
        this.#startQueued();
      });
    }
  }

  async #run(entry: Entry, work: (entry: Entry) => Promise<void>): Promise<void> {
    this.#publish(entry, { state: 'running', started_at: this.#now().toISOString() }, 'state');
    this.#logger.info('job started', { job_id: entry.job.id, kind: entry.job.kind });
    try {
      await work(entry);
      this.#finish(entry, { state: 'succeeded' });
      this.#logger.info('job succeeded', { job_id: entry.job.id, kind: entry.job.kind });
    } catch (error) {
      const cancelled = entry.controller.signal.aborted;
      const body = cancelled
        ? { code: 'cancelled' as const, message: `job ${entry.abortReason ?? 'cancelled'}` }
        : errorBody(error);
      this.#finish(entry, { state: cancelled ? 'cancelled' : 'failed', error: body });
      const log = cancelled ? this.#logger.warn : this.#logger.error;
      log('job ended', {
        job_id: entry.job.id,
        kind: entry.job.kind,
        state: entry.job.state,
        error: body.message,
      });
    } finally {
      await this.#options.journal?.remove(entry.job.id).catch((error: unknown) => {
        this.#logger.error('could not remove a job journal entry', { job_id: entry.job.id, error });
      });
    }
  }

  #abort(entry: Entry, reason: string): void {
    if (entry.job.finished_at !== null) return;
    entry.abortReason ??= reason;
    entry.controller.abort();
    const queued = this.#queue.indexOf(entry);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
      entry.work = undefined;
      this.#finish(entry, { state: 'cancelled', error: { code: 'cancelled', message: `job ${reason}` } });
      this.#logger.info('queued job cancelled', { job_id: entry.job.id, reason });
    }
  }

  #finish(entry: Entry, change: Partial<Job>): void {
    this.#publish(entry, { ...change, finished_at: this.#now().toISOString() }, 'state');
  }

  #publish(entry: Entry, change: Partial<Job>, kind: 'progress' | 'state'): void {
    entry.job = { ...entry.job, ...change };
    try {
      this.#options.events.jobChanged(entry.job, kind);
    } catch (error) {
      this.#logger.error('job event sink failed', { job_id: entry.job.id, error });
    }
  }

  #progressListener(entry: Entry): (progress: Progress) => void {
    const interval = this.#options.progressIntervalMs ?? 250;
    let last = -Infinity;
    return (progress) => {
      const at = performance.now();
      const final = progress.bytesDone >= progress.bytesTotal;
      if (!final && at - last < interval) return;
      last = at;
      this.#publish(
        entry,
        {
          progress: {
            bytes_done: progress.bytesDone,
            bytes_total: progress.bytesTotal,
            rate: progress.rate,
            eta_seconds: progress.etaSeconds ?? null,
          },
        },
        'progress',
      );
    };
  }

  #backend(kind: BackendKind): HostBackend {
    const backend = this.#options.backends.get(kind);
    if (backend === undefined)
      throw new ApiError('not_found', `backend ${kind} is not configured on this agent`);
    return backend;
  }

  #journalEntry(entry: Entry, backend: BackendKind): JournalEntry {
    return {
      id: entry.job.id,
      kind: entry.job.kind,
      created_at: entry.job.created_at,
      started_at: entry.job.started_at ?? this.#now().toISOString(),
      backend,
    };
  }

  #workers(): ChunkWorkers {
    return new ChunkWorkers(undefined, { threads: this.#options.threads ?? availableParallelism() });
  }

  async #runBackup(entry: Entry, request: BackupRequest): Promise<void> {
    const signal = entry.controller.signal;
    const backend = this.#backend(request.volume.backend);
    const journal = this.#options.journal;
    const record = this.#journalEntry(entry, request.volume.backend);
    const volume = await backend.stat(request.volume.locator);
    if (request.snapshot === true && !backend.capabilities.snapshot) {
      throw new ApiError(
        'unsupported',
        `backend ${request.volume.backend} cannot snapshot; pass snapshot: false to read the live volume`,
      );
    }
    const workers = this.#workers(); // threads start while the repository opens
    let snapshot: SnapshotResult | undefined;
    let reader: Awaited<ReturnType<HostBackend['openReader']>> | undefined;
    try {
      const repository = await this.#options.openRepository(request.target, signal);
      await workers.useKey(repository.targetKey);
      signal.throwIfAborted();
      const volumeId = request.volume_id ?? repository.volumeIdFor(request.volume_name);
      const backupId = request.backup_id ?? randomUUID();
      const takeSnapshot = request.snapshot !== false && backend.capabilities.snapshot;
      const name = `stowage-job-${entry.job.id}`;
      // Journal first, then snapshot: a crash in between leaves an entry whose snapshot is not there, which
      // the clean-up finds by its name and reports as nothing to delete.
      await journal?.write({
        ...record,
        backup: { volume_id: volumeId, backup_id: backupId },
        ...(takeSnapshot ? { volume: volume.locator, snapshot_name: name } : {}),
      });
      if (takeSnapshot) snapshot = await backend.snapshot(volume.locator, name);
      signal.throwIfAborted();
      reader = await backend.openReader(snapshot?.locator ?? volume.locator, { signal });
      const summary = await backupVolume({
        repository,
        source: reader,
        workers,
        volumeName: request.volume_name,
        volumeId,
        backupId,
        onProgress: this.#progressListener(entry),
        signal,
      });
      const result: BackupResult = {
        backup_id: summary.backupId,
        volume_id: summary.volumeId,
        volume_name: summary.volumeName,
        manifest_key: summary.manifestKey,
        created_at: summary.createdAt,
        size: summary.size,
        bytes_read: summary.bytesRead,
        bytes_uploaded: summary.bytesUploaded,
        chunks: summary.chunks,
        chunks_new: summary.chunksNew,
        holes: summary.holes,
        hole_bytes: summary.holeBytes,
        seconds: summary.seconds,
        snapshot: snapshot?.method ?? 'none',
      };
      entry.job = { ...entry.job, result };
    } finally {
      await reader
        ?.close()
        .catch((error: unknown) => this.#logger.warn('closing a volume reader failed', { error }));
      if (snapshot !== undefined) {
        await backend.deleteSnapshot(snapshot.locator).catch((error: unknown) => {
          // Named stowage-job-<id>, so an operator (or listSnapshots) finds it; the job's outcome stands.
          this.#logger.error('could not delete a job snapshot', {
            job_id: entry.job.id,
            snapshot: snapshot?.locator,
            error,
          });
        });
      }
      await workers.close();
    }
  }

  async #runRestore(entry: Entry, request: RestoreRequest): Promise<void> {
    const signal = entry.controller.signal;
    const destination = request.destination;
    const backend = this.#backend(destination.backend);
    const journal = this.#options.journal;
    const record = this.#journalEntry(entry, destination.backend);
    const workers = this.#workers();
    let created: VolumeInfo | undefined;
    let volume: VolumeInfo | undefined;
    let succeeded = false;
    try {
      const repository = await this.#options.openRepository(request.target, signal);
      await workers.useKey(repository.targetKey);
      const backup = {
        volumeId: request.backup.volume_id,
        backupId: request.backup.backup_id,
        manifestKey: request.backup.manifest_key,
      };
      const manifest = await repository.loadManifest(backup);
      signal.throwIfAborted();
      if ('name' in destination) {
        await journal?.write(record);
        created = await backend.provision({ name: destination.name, size: manifest.volumeSize });
        volume = created;
        await journal?.write({ ...record, created_volume: created.locator });
      } else {
        volume = await backend.stat(destination.locator);
        if (volume.size < manifest.volumeSize) {
          throw new ApiError(
            'invalid_request',
            `volume ${volume.locator} holds ${volume.size} bytes; the backup needs ${manifest.volumeSize}`,
          );
        }
        await journal?.write(record);
      }
      entry.job = {
        ...entry.job,
        destination: { volume: volumeOf(destination.backend, volume), state: 'failed' },
      };
      const writer = await backend.openWriter(volume.locator, { signal });
      const target: VolumeTarget = {
        path: writer.path,
        fd: writer.fd,
        // A volume provisioned just now reads as zeros (the backend contract), so holes may be skipped;
        // an existing volume may hold old data there and gets zeros written.
        holesAreZero: created !== undefined,
        async commit() {
          await writer.sync();
          await writer.close();
        },
        discard: () => writer.close(),
      };
      const summary = await restoreBackup({
        repository,
        workers,
        backup,
        manifest,
        target,
        onProgress: this.#progressListener(entry),
        signal,
      });
      succeeded = true;
      const restored = volumeOf(destination.backend, volume);
      const result: RestoreResult = {
        backup_id: summary.backupId,
        volume: restored,
        size: summary.size,
        bytes_written: summary.bytesWritten,
        bytes_downloaded: summary.bytesDownloaded,
        chunks: summary.chunks,
        holes: summary.holes,
        seconds: summary.seconds,
      };
      entry.job = { ...entry.job, result, destination: { volume: restored, state: 'available' } };
    } finally {
      if (!succeeded && created !== undefined) {
        // The volume exists only because of this job: a half-restored one must not look usable.
        try {
          await backend.deleteVolume(created.locator);
          entry.job = {
            ...entry.job,
            destination: { volume: volumeOf(destination.backend, created), state: 'removed' },
          };
        } catch (error) {
          this.#logger.error('could not remove a partly restored volume', {
            job_id: entry.job.id,
            volume: created.locator,
            error,
          });
        }
      }
      await workers.close();
    }
  }
}

function volumeOf(backend: BackendKind, info: VolumeInfo): Volume {
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

/** What a failed job reports: the cause's own message (it names the volume or the object) and its class. */
export function errorBody(error: unknown): ApiErrorBody {
  if (error instanceof ApiError) return error.toBody();
  const fromBackend = apiErrorFromHostBackend(error);
  if (fromBackend !== undefined) return fromBackend.toBody();
  const details: Record<string, unknown> = { error: (error as Error)?.name ?? 'Error' };
  const code = (error as { code?: unknown }).code;
  const kind = (error as { kind?: unknown }).kind;
  if (typeof code === 'string') details.error_code = code;
  if (typeof kind === 'string') details.error_kind = kind;
  if (error instanceof EngineError && error.code === 'aborted') {
    return { code: 'cancelled', message: error.message, details };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'internal', message, details };
}
