import { createHash, randomUUID } from 'node:crypto';
import { fstatSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import {
  ApiError,
  type BackendKind,
  type BackupRequest,
  type BackupResult,
  type Job,
  type JobAccepted,
  type RestoreRequest,
  type RestoreResult,
  type VerifyRequest,
  type Volume,
} from '@stowage/api';
import {
  backupVolume,
  ChunkWorkers,
  checkRepository,
  EngineError,
  type Progress,
  restoreBackup,
  verifyBackup,
} from '@stowage/engine';
import { manifestObjectKey } from '@stowage/format';
import type { HostBackend, SnapshotResult, VolumeInfo } from '@stowage/host-backends';
import type { JobEventSink, JobRunner, Logger, RepositoryOpener } from '../contracts.js';
import { apiErrorFromHostBackend } from '../errors.js';
import type { CommitFence } from '../events/commit-fence.js';
import { silentLogger } from '../log.js';
import { VolumeLocks } from '../volume-locks.js';
import type { JobHistory } from './history.js';
import { errorBody } from './job-errors.js';
import type { JobJournal, JournalEntry } from './journal.js';
import { verifyResultOf } from './verify-result.js';
import { type WriterTarget, writerTarget } from './writer-target.js';

export { errorBody } from './job-errors.js';

export interface JobRunnerOptions {
  backends: ReadonlyMap<BackendKind, HostBackend>;
  openRepository: RepositoryOpener;
  events: JobEventSink;
  /** Jobs running at once; more wait in a FIFO queue (default 2). */
  concurrency?: number;
  /** Worker threads per job (default: the machine's cores). Each job has its own: jobs may use other keys. */
  threads?: number;
  /** Packs named by one index object of a backup (default: the engine's, 64). */
  packsPerIndex?: number;
  /** Asked before a fenced backup (`commit_fence`) commits; without it such a backup is refused its commit. */
  commitFence?: CommitFence;
  /** Where running jobs are recorded for clean-up after a crash; without it nothing survives the process. */
  journal?: JobJournal;
  /** Where finished jobs are kept across restarts, for `GET /v1/jobs/:id` and idempotent resubmits. */
  history?: JobHistory;
  /** One user of a volume at a time; shared with the HTTP API's volume routes (default: the runner's own). */
  locks?: VolumeLocks;
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
  /** The job's journal record as last written, once it touched the host; undefined before. */
  journaled?: JournalEntry;
  /** What the job will report when it ends (its result, its destination's fate), published with the final
   * state only, so that a running job never shows a result. */
  ending: Pick<Job, 'result' | 'destination'>;
  /** Runs the job; dropped once started, so the request's secrets live only as long as the work. */
  work?: (entry: Entry) => Promise<void>;
  settled?: Promise<void>;
  /** A job snapshot the backup could not delete: its journal record is kept so the next start retries. */
  snapshotLeft?: string;
  /** Frees the volumes the job holds (from submit to its end); safe to call twice. */
  releaseVolumes: Array<() => void>;
  /** When the last progress change was published (performance.now), for the spacing of the next. */
  lastProgressAt: number;
}

/** Snapshots a backup job takes are named so; nothing else may create, and nobody delete, one while it runs. */
export const JOB_SNAPSHOT_PREFIX = 'stowage-job-';

const EMPTY_PROGRESS = { bytes_done: 0, bytes_total: 0, rate: 0, eta_seconds: null } as const;
/** How long shutdown waits for cancelled jobs to clean up before it gives up on them. */
const SHUTDOWN_CLEANUP_MS = 30_000;

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
  readonly #locks: VolumeLocks;
  #stopping = false;

  constructor(options: JobRunnerOptions) {
    if (
      options.concurrency !== undefined &&
      !(Number.isSafeInteger(options.concurrency) && options.concurrency >= 1)
    ) {
      throw new RangeError(`concurrency must be a whole number ≥ 1: ${options.concurrency}`);
    }
    if (options.threads !== undefined && !(Number.isSafeInteger(options.threads) && options.threads >= 1)) {
      throw new RangeError(`threads must be a whole number ≥ 1: ${options.threads}`);
    }
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    this.#logger = options.logger ?? silentLogger;
    this.#locks = options.locks ?? new VolumeLocks();
  }

  /** The volume locks jobs take; the HTTP API's volume routes take the same ones. */
  get locks(): VolumeLocks {
    return this.#locks;
  }

  /** True while job `id` is queued or running. */
  isActive(id: string): boolean {
    const job = this.#jobs.get(id.toLowerCase())?.job;
    return job !== undefined && job.finished_at === null;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  submitBackup(request: BackupRequest): Promise<JobAccepted> {
    const { backend: kind, locator } = request.volume;
    return this.#submit(
      'backup',
      request,
      async () => {
        const backend = this.#backend(kind);
        if (request.snapshot !== undefined && request.snapshot !== false && !backend.capabilities.snapshot) {
          throw new ApiError(
            'unsupported',
            `backend ${kind} cannot snapshot; pass snapshot: false to read the live volume`,
          );
        }
        // Confinement and existence first: a locator outside the roots fails here, before anything is opened.
        const volume = await backend.stat(locator);
        return { keys: VolumeLocks.keysOf(kind, volume), subject: `volume ${volume.locator}` };
      },
      (entry) => this.#runBackup(entry, request),
    );
  }

  submitRestore(request: RestoreRequest): Promise<JobAccepted> {
    const destination = request.destination;
    return this.#submit(
      'restore',
      request,
      async () => {
        const backend = this.#backend(destination.backend);
        if ('name' in destination) {
          if (!backend.capabilities.provision) {
            throw new ApiError(
              'unsupported',
              `backend ${destination.backend} cannot provision a new volume; restore to an existing one (locator)`,
            );
          }
          // The volume does not exist yet: its name is held until the job provisions it and holds that.
          return {
            keys: [VolumeLocks.nameKey(destination.backend, destination.name)],
            subject: `volume name ${destination.name}`,
          };
        }
        const volume = await backend.stat(destination.locator);
        return { keys: VolumeLocks.keysOf(destination.backend, volume), subject: `volume ${volume.locator}` };
      },
      (entry) => this.#runRestore(entry, request),
    );
  }

  submitVerify(request: VerifyRequest): Promise<JobAccepted> {
    return this.#submit(
      'verify',
      request,
      // No volume is used: the job reads the bucket only, so nothing on the host is held for it.
      async () => ({ keys: [], subject: `backup ${request.backup.backup_id}` }),
      (entry) => this.#runVerify(entry, request),
    );
  }

  get(id: string): Job | undefined {
    return this.#jobs.get(id.toLowerCase())?.job;
  }

  list(): Job[] {
    return [...this.#jobs.values()].map((entry) => entry.job);
  }

  cancel(id: string): Job {
    const entry = this.#jobs.get(id.toLowerCase());
    if (entry === undefined) throw new ApiError('not_found', `no job ${id} on this agent`);
    void this.#abort(entry, 'cancelled by request');
    return entry.job;
  }

  async shutdown(graceMs: number, cleanupMs = SHUTDOWN_CLEANUP_MS): Promise<Job[]> {
    this.#stopping = true;
    await Promise.all(
      [...this.#queue].map((entry) => this.#abort(entry, 'cancelled: the agent is shutting down')),
    );
    await this.#settledWithin(graceMs);
    for (const entry of [...this.#running]) void this.#abort(entry, 'cancelled: the agent is shutting down');
    // A job stuck in host I/O (a hung device) may never see its cancel. It is left running: the agent exits
    // anyway, and its journal record makes the next start clean up after it and report it failed.
    await this.#settledWithin(cleanupMs);
    const stuck = [...this.#running].map((entry) => entry.job);
    for (const job of stuck) {
      this.#logger.error('job did not stop within the shutdown bound; left to the next start', {
        job_id: job.id,
        kind: job.kind,
        cleanup_seconds: cleanupMs / 1000,
      });
    }
    return stuck;
  }

  /** Waits until no job runs, or `ms` passed. */
  async #settledWithin(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running].map((entry) => entry.settled)),
      new Promise((resolve) => (timer = setTimeout(resolve, ms))),
    ]);
    clearTimeout(timer);
  }

  /**
   * Cleans up after jobs a previous process left running (it was killed or the host went down): deletes
   * their snapshots and half-restored volumes, and publishes each as failed so the manager learns of it.
   */
  async recover(): Promise<Job[]> {
    for (const { job, fingerprint } of (await this.#options.history?.load()) ?? []) {
      this.#remember(recoveredEntry(job, fingerprint));
    }
    const journal = this.#options.journal;
    if (journal === undefined) return [];
    const recovered: Job[] = [];
    for (const { file, entry } of await journal.leftovers()) {
      if (entry === undefined) {
        this.#logger.error('unreadable job journal entry left as it is', { file });
        continue;
      }
      try {
        recovered.push(await this.#recoverOne(journal, entry));
      } catch (error) {
        // One entry that cannot be settled now (its report not durable, the host busy) must not stop the
        // agent from starting: its record stays, and the next start tries again.
        this.#logger.error('job journal entry kept: could not report it or clean up after it now', {
          job_id: entry.id,
          error,
        });
      }
    }
    return recovered;
  }

  /** Reports (and cleans up after) one job a previous process left in the journal. */
  async #recoverOne(journal: JobJournal, entry: JournalEntry): Promise<Job> {
    if (entry.final !== undefined) {
      // The job had ended and cleaned up; only its report may not have reached the sink, or its snapshot
      // would not go. Report the outcome it had and retry the snapshot, nothing else: a restored volume is
      // the caller's now and must not be undone.
      const job = entry.final;
      const recovered = recoveredEntry(job, entry.fingerprint);
      this.#remember(recovered);
      await this.#keepInHistory(recovered);
      this.#options.events.jobChanged(job, 'state');
      await this.#options.events.flush?.();
      const cleanup = await this.#cleanUpAfterCrash(entry, { snapshotOnly: true });
      // Retried at each start while its backend is configured; without it nothing here can ever delete it.
      if (
        cleanup.includes('could not') &&
        entry.backend !== undefined &&
        this.#options.backends.has(entry.backend)
      ) {
        this.#logger.error('job journal entry kept: its snapshot still could not be deleted', {
          job_id: job.id,
          cleanup,
        });
      } else {
        if (cleanup.includes('could not')) {
          this.#logger.warn('a job snapshot is left for an operator to delete', { job_id: job.id, cleanup });
        }
        await journal.remove(entry.id);
      }
      this.#logger.info('final state of a job from a previous run reported again', {
        job_id: job.id,
        kind: job.kind,
        state: job.state,
        cleanup,
      });
      return job;
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
    const recovered = recoveredEntry(job, entry.fingerprint);
    this.#remember(recovered);
    // What was cleaned up is not to be cleaned up twice: by the next start the name may be another
    // volume's. The record says the job ended before anything that can fail.
    await journal.write({ ...entry, final: job });
    this.#options.events.jobChanged(job, 'state');
    // Forget the record only once the failure report is durable with the sink, as for any finished job.
    await this.#options.events.flush?.();
    await this.#keepInHistory(recovered);
    await journal.remove(entry.id);
    this.#logger.warn('job from a previous run reported failed', {
      job_id: entry.id,
      kind: entry.kind,
      cleanup,
    });
    return job;
  }

  async #cleanUpAfterCrash(entry: JournalEntry, only: { snapshotOnly?: boolean } = {}): Promise<string> {
    const backend = entry.backend === undefined ? undefined : this.#options.backends.get(entry.backend);
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
    if (created !== undefined && only.snapshotOnly !== true) {
      await tryTo(`delete the partly restored volume ${created}`, async (b) => {
        for (const s of await b.listSnapshots(created)) await b.deleteSnapshot(s.locator);
        await b.deleteVolume(created);
        return true;
      });
    }
    return done.length === 0 ? 'nothing to clean up' : done.join('; ');
  }

  /**
   * Queues a job: an identical resubmit answers the job it made (even after a restart, from the history);
   * otherwise the volume it names is checked (confined, existing) and held for it, or 409 names its holder.
   */
  async #submit(
    kind: Job['kind'],
    request: BackupRequest | RestoreRequest | VerifyRequest,
    prepare: () => Promise<{ keys: string[]; subject: string }>,
    work: Entry['work'],
  ): Promise<JobAccepted> {
    const id = request.job_id.toLowerCase();
    // Credentials are not the work: a retry with refreshed (STS) credentials is the same job.
    const { credentials: _credentials, ...target } = request.target;
    const fingerprint = fingerprintOf({ ...request, job_id: id, target });
    const resubmitted = (): JobAccepted | undefined => {
      const existing = this.#jobs.get(id);
      if (existing === undefined) return undefined;
      // A retried submit (a lost 202) finds its job, whatever happened since; other work under the id is not.
      if (existing.fingerprint !== fingerprint) {
        throw new ApiError('conflict', `job ${id} exists with a different request`);
      }
      return { job_id: existing.job.id, state: existing.job.state };
    };
    const refuseWhileStopping = () => {
      if (this.#stopping)
        throw new ApiError('unavailable', 'the agent is shutting down and takes no new jobs');
    };
    const before = resubmitted();
    if (before !== undefined) return before;
    refuseWhileStopping();
    const { keys, subject } = await prepare().catch((error: unknown) => {
      throw apiErrorFromHostBackend(error) ?? error;
    });
    // Another submit may have run while the volume was looked up: the same request finds its job.
    const raced = resubmitted();
    if (raced !== undefined) return raced;
    refuseWhileStopping();
    const release = this.#locks.acquire(keys, { kind: 'job', jobId: id, jobKind: kind }, subject);
    const entry: Entry = {
      releaseVolumes: [release],
      lastProgressAt: Number.NEGATIVE_INFINITY,
      job: {
        id,
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
      ending: { result: null, destination: null },
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
    const id = entry.job.id;
    this.#publish(entry, { state: 'running', started_at: this.#now().toISOString() }, 'state');
    this.#logger.info('job started', { job_id: id, kind: entry.job.kind });
    let outcome: Partial<Job>;
    try {
      await work(entry);
      outcome = { state: 'succeeded', ...entry.ending };
    } catch (error) {
      const cancelled = entry.controller.signal.aborted;
      const body = cancelled
        ? { code: 'cancelled' as const, message: `job ${entry.abortReason ?? 'cancelled'}` }
        : errorBody(error);
      outcome = {
        state: cancelled ? 'cancelled' : 'failed',
        error: body,
        result: null,
        destination: entry.ending.destination,
      };
    }
    const final: Job = { ...entry.job, ...outcome, finished_at: this.#now().toISOString() };
    const journal = this.#options.journal;
    if (journal !== undefined && entry.journaled !== undefined) {
      // The job's clean-up has run. From here a crash must report this outcome rather than undo it: the
      // record still names the volume a restore provisioned, which after a success is the caller's. A record
      // that cannot say so (a full state disk) is dropped rather than left to undo the job at the next start.
      await journal.write({ ...entry.journaled, final }).catch(async (error: unknown) => {
        this.#logger.error('could not record a job outcome in the journal; dropping its crash record', {
          job_id: id,
          error,
        });
        await journal.remove(id).catch((removal: unknown) => {
          this.#logger.error('could not drop a job crash record either', { job_id: id, error: removal });
        });
        entry.journaled = undefined;
      });
    }
    // Free before the final state is visible (whoever reads "succeeded" may delete the volume at once), and
    // only once the journal no longer tells the next start to undo the job.
    for (const release of entry.releaseVolumes) release();
    this.#publish(entry, final, 'state');
    await this.#keepInHistory(entry);
    const fields = { job_id: id, kind: final.kind, state: final.state };
    if (final.state === 'succeeded') this.#logger.info('job succeeded', fields);
    else if (final.state === 'cancelled')
      this.#logger.warn('job ended', { ...fields, error: final.error?.message });
    else this.#logger.error('job ended', { ...fields, error: final.error?.message });
    if (journal !== undefined && entry.journaled !== undefined) {
      // Forget the record only once the sink holds the final event durably; else the next start reports it.
      try {
        await this.#options.events.flush?.();
        if (entry.snapshotLeft !== undefined) {
          this.#logger.warn('job journal entry kept: the next start deletes the snapshot this job left', {
            job_id: id,
            snapshot: entry.snapshotLeft,
          });
          return;
        }
        await journal.remove(id);
      } catch (error) {
        this.#logger.error('job journal entry kept: its final event is not durable yet', {
          job_id: id,
          error,
        });
      }
    }
  }

  /** Aborts a job; a queued one ends at once, and the promise settles once it is in the history. */
  #abort(entry: Entry, reason: string): Promise<void> {
    if (entry.job.finished_at !== null) return Promise.resolve();
    entry.abortReason ??= reason;
    entry.controller.abort();
    const queued = this.#queue.indexOf(entry);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
      entry.work = undefined;
      for (const release of entry.releaseVolumes) release();
      this.#publish(
        entry,
        {
          state: 'cancelled',
          error: { code: 'cancelled', message: `job ${reason}` },
          finished_at: this.#now().toISOString(),
        },
        'state',
      );
      this.#logger.info('queued job cancelled', { job_id: entry.job.id, reason });
      return this.#keepInHistory(entry);
    }
    return Promise.resolve();
  }

  /** Records a finished job for resubmits and lookups after a restart; a failure only costs that. */
  async #keepInHistory(entry: Entry): Promise<void> {
    await this.#options.history?.append(entry.job, entry.fingerprint).catch((error: unknown) => {
      this.#logger.warn('could not record a finished job in the history', { job_id: entry.job.id, error });
    });
  }

  #publish(entry: Entry, change: Partial<Job>, kind: 'progress' | 'state'): void {
    entry.job = { ...entry.job, ...change };
    try {
      this.#options.events.jobChanged(entry.job, kind);
    } catch (error) {
      this.#logger.error('job event sink failed', { job_id: entry.job.id, error });
    }
  }

  #progressListener(
    entry: Entry,
    phase: 'snapshot' | 'transfer',
  ): (progress: Pick<Progress, 'bytesDone' | 'bytesTotal' | 'rate' | 'etaSeconds'>) => void {
    const interval = this.#options.progressIntervalMs ?? 250;
    return (progress) => {
      const at = performance.now();
      const final = progress.bytesDone >= progress.bytesTotal;
      // One spacing per job, across its phases: a snapshot's last report and the transfer's first are two
      // changes as close as any others.
      if (!final && at - entry.lastProgressAt < interval) return;
      entry.lastProgressAt = at;
      this.#publish(
        entry,
        {
          progress: {
            phase,
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

  #journalEntry(entry: Entry, backend: BackendKind | undefined): JournalEntry {
    return {
      id: entry.job.id,
      fingerprint: entry.fingerprint,
      kind: entry.job.kind,
      created_at: entry.job.created_at,
      started_at: entry.job.started_at ?? this.#now().toISOString(),
      ...(backend === undefined ? {} : { backend }),
    };
  }

  /** Records what the job is about to leave on the host, before it does. */
  async #journal(entry: Entry, record: JournalEntry): Promise<void> {
    await this.#options.journal?.write(record);
    entry.journaled = record;
  }

  #workers(): ChunkWorkers {
    return new ChunkWorkers(undefined, { threads: this.#options.threads ?? availableParallelism() });
  }

  async #closeWorkers(entry: Entry, workers: ChunkWorkers): Promise<void> {
    await workers.close().catch((error: unknown) => {
      this.#logger.warn("stopping a job's worker threads failed", { job_id: entry.job.id, error });
    });
  }

  async #runBackup(entry: Entry, request: BackupRequest): Promise<void> {
    const signal = entry.controller.signal;
    const backend = this.#backend(request.volume.backend);
    const record = this.#journalEntry(entry, request.volume.backend);
    // Confinement and existence first: a locator outside the roots fails here, before anything is opened.
    const volume = await backend.stat(request.volume.locator);
    const workers = this.#workers(); // threads start while the repository opens
    let snapshot: SnapshotResult | undefined;
    let reader: Awaited<ReturnType<HostBackend['openReader']>> | undefined;
    try {
      const repository = await this.#options.openRepository(request.target, signal);
      await workers.useKey(repository.targetKey);
      signal.throwIfAborted();
      const volumeId = request.volume_id ?? repository.volumeIdFor(request.volume_name);
      const backupId = request.backup_id ?? randomUUID();
      // A committed backup id is refused before a snapshot (maybe a whole copy) is made for nothing; the
      // engine checks again, and commits with a conditional create.
      if (
        request.backup_id !== undefined &&
        (await repository.store.head(manifestObjectKey(volumeId, backupId)))
      ) {
        throw new EngineError(
          'backup-exists',
          `backup ${backupId} of volume ${volumeId} is already committed; a backup is written once (it is untouched)`,
        );
      }
      const takeSnapshot = request.snapshot !== false && backend.capabilities.snapshot;
      const name = `${JOB_SNAPSHOT_PREFIX}${entry.job.id}`;
      // Journal first, then snapshot: a crash in between leaves an entry whose snapshot is not there, which
      // the clean-up finds by its name and reports as nothing to delete.
      await this.#journal(entry, {
        ...record,
        backup: { volume_id: volumeId, backup_id: backupId },
        ...(takeSnapshot ? { volume: volume.locator, snapshot_name: name } : {}),
      });
      if (takeSnapshot) {
        const copying = this.#progressListener(entry, 'snapshot');
        const started = performance.now();
        snapshot = await backend.snapshot(volume.locator, name, {
          allowCopy: request.snapshot === 'copy',
          signal,
          // Only a copy takes long enough to report on; a reflink is instant.
          onProgress: (done, total) => {
            const rate = done / Math.max((performance.now() - started) / 1000, 1e-3);
            copying({
              bytesDone: done,
              bytesTotal: total,
              rate,
              etaSeconds: rate > 0 ? (total - done) / rate : undefined,
            });
          },
        });
      }
      signal.throwIfAborted();
      reader = await backend.openReader(snapshot?.locator ?? volume.locator, { signal });
      const summary = await backupVolume({
        repository,
        source: reader,
        workers,
        volumeName: request.volume_name,
        volumeId,
        backupId,
        onProgress: this.#progressListener(entry, 'transfer'),
        signal,
        ...(this.#options.packsPerIndex === undefined ? {} : { packsPerIndex: this.#options.packsPerIndex }),
        ...(request.commit_fence === 'manager'
          ? { beforeCommit: () => this.#askCommit(entry.job.id, signal) }
          : {}),
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
      entry.ending = { result, destination: null };
    } finally {
      await reader?.close().catch((error: unknown) => {
        this.#logger.warn('closing a volume reader failed', { job_id: entry.job.id, error });
      });
      if (snapshot !== undefined) {
        await backend.deleteSnapshot(snapshot.locator).catch((error: unknown) => {
          // The job's outcome stands. Its journal record stays, so the next start tries again; the name
          // (stowage-job-<id>) lets an operator find it meanwhile.
          entry.snapshotLeft = snapshot?.locator;
          this.#logger.error('could not delete a job snapshot', {
            job_id: entry.job.id,
            snapshot: snapshot?.locator,
            error,
          });
        });
      }
      await this.#closeWorkers(entry, workers);
    }
  }

  async #askCommit(jobId: string, signal: AbortSignal): Promise<{ validForMs: number }> {
    const fence = this.#options.commitFence;
    if (fence === undefined) {
      throw new EngineError(
        'commit-refused',
        `job ${jobId} needs its manager's leave to commit; none was configured`,
      );
    }
    return fence.requestCommit(jobId, signal);
  }

  async #runRestore(entry: Entry, request: RestoreRequest): Promise<void> {
    const signal = entry.controller.signal;
    const destination = request.destination;
    const backend = this.#backend(destination.backend);
    const record = this.#journalEntry(entry, destination.backend);
    const workers = this.#workers();
    let created: VolumeInfo | undefined;
    let volume: VolumeInfo | undefined;
    let target: WriterTarget | undefined;
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
        await this.#journal(entry, record);
        created = await backend.provision({ name: destination.name, size: manifest.volumeSize });
        volume = created;
        // Held from the moment it exists (no await in between). Its name was held since submit, and every
        // other user of a volume takes its name's key too, so nothing else can hold it here.
        entry.releaseVolumes.push(
          this.#locks.acquire(
            [VolumeLocks.volumeKey(destination.backend, created.locator)],
            { kind: 'job', jobId: entry.job.id, jobKind: 'restore' },
            `volume ${created.locator}`,
          ),
        );
        await this.#journal(entry, { ...record, created_volume: created.locator });
      } else {
        volume = await backend.stat(destination.locator);
        if (volume.size < manifest.volumeSize) {
          throw new ApiError(
            'invalid_request',
            `volume ${volume.locator} holds ${volume.size} bytes; the backup needs ${manifest.volumeSize}`,
          );
        }
        await this.#journal(entry, record);
      }
      // Until the restore completes, the volume holds partial data.
      entry.ending = {
        result: null,
        destination: { volume: volumeOf(destination.backend, volume), state: 'failed' },
      };
      const writer = await backend.openWriter(volume.locator, { signal });
      // The file (or device node) written, by identity: a path alone would still answer after the volume
      // was removed and another put in its place.
      const written = fstatSync(writer.fd);
      target = writerTarget(writer, {
        // Holes are skipped only where they surely read as zeros: a sparse image file provisioned for this
        // job. An existing volume may hold old data there, and a device is never trusted to; both get zeros.
        holesAreZero: created !== undefined && destination.backend === 'local-file',
        onDiscard: (error) => {
          this.#logger.warn('closing a restore target failed', { job_id: entry.job.id, error });
        },
      });
      const summary = await restoreBackup({
        repository,
        workers,
        backup,
        manifest,
        target,
        onProgress: this.#progressListener(entry, 'transfer'),
        signal,
      });
      // The volume is held against the API's deletes, but not against someone on the host: never call a
      // restore good whose volume is gone.
      const gone = new ApiError(
        'not_found',
        `volume ${volume.locator} was deleted while the restore wrote it; nothing was restored`,
      );
      await backend.stat(volume.locator).catch((error: unknown) => {
        throw apiErrorFromHostBackend(error)?.code === 'not_found' ? gone : error;
      });
      const now = await stat(volume.locator).catch(() => undefined);
      if (now === undefined || now.ino !== written.ino || now.dev !== written.dev) throw gone;
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
      entry.ending = { result, destination: { volume: restored, state: 'available' } };
    } finally {
      // The engine closes the target on every path it reaches; this covers a failure before it got there.
      await target?.discard();
      if (!succeeded && created !== undefined) {
        // The volume exists only because of this job: a half-restored one must not look usable.
        try {
          await backend.deleteVolume(created.locator);
          entry.ending = {
            result: null,
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
      await this.#closeWorkers(entry, workers);
    }
  }

  /**
   * Verifies one backup (`verifyBackup`: all its chunks or a sample, its damage record kept). When that finds
   * damage, a repository check follows (`checkRepository` without reading data: it lists the packs, reads
   * every manifest, and reads the chunks damage records list — the ones just recorded among them), which
   * names every backup whose manifest names a damaged chunk object and writes their damage records too.
   * Both only read the bucket and write `damage/`; nothing on the host is touched.
   */
  async #runVerify(entry: Entry, request: VerifyRequest): Promise<void> {
    const signal = entry.controller.signal;
    // Journaled, though it leaves nothing behind: a verify cut short by a crash is reported failed at the next
    // start, like any job, rather than left running until the manager gives up on it.
    await this.#journal(entry, this.#journalEntry(entry, undefined));
    const workers = this.#workers();
    try {
      const repository = await this.#options.openRepository(request.target, signal);
      await workers.useKey(repository.targetKey);
      signal.throwIfAborted();
      const backup = {
        volumeId: request.backup.volume_id,
        backupId: request.backup.backup_id,
        manifestKey: request.backup.manifest_key,
      };
      const samplePercent = request.sample_percent ?? 100;
      const report = await verifyBackup({
        repository,
        workers,
        backup,
        samplePercent,
        onProgress: this.#progressListener(entry, 'transfer'),
        signal,
        now: this.#now,
      });
      // The verify's own findings stand whatever becomes of the check: only a cancel ends the job without them.
      const check =
        report.problems.length > 0
          ? await checkRepository({ repository, workers, readData: 'none', signal, now: this.#now }).catch(
              (error: unknown) => {
                if (signal.aborted) throw error;
                this.#logger.error('the repository check after a damaged verify failed', {
                  job_id: entry.job.id,
                  error,
                });
                return { error: `the repository check failed: ${(error as Error).message}` };
              },
            )
          : undefined;
      const result = verifyResultOf(backup, samplePercent, report, check);
      entry.ending = { result, destination: null };
      this.#logger[result.damaged ? 'warn' : 'info']('backup verified', {
        job_id: entry.job.id,
        volume_id: backup.volumeId,
        backup_id: backup.backupId,
        sample_percent: samplePercent,
        damaged: result.damaged,
        problems: report.problems.length,
        damaged_backups: result.damaged_backups.length,
      });
    } finally {
      await this.#closeWorkers(entry, workers);
    }
  }
}

/** The job runner `serve.ts` wires in: see `JobRunnerOptions` for what it is given. */
export function createJobRunner(options: JobRunnerOptions): LocalJobRunner {
  return new LocalJobRunner(options);
}

/** A job of an earlier process, kept for lookups and resubmits (an old journal entry has no fingerprint). */
function recoveredEntry(job: Job, fingerprint: string | undefined): Entry {
  return {
    // Records written before ids were lower-cased at the edge may hold another case.
    job: { ...job, id: job.id.toLowerCase() },
    fingerprint: fingerprint ?? '',
    controller: new AbortController(),
    ending: job,
    releaseVolumes: [],
    lastProgressAt: Number.NEGATIVE_INFINITY,
  };
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
