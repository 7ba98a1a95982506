import { availableParallelism } from 'node:os';
import {
  ApiError,
  type BackendKind,
  type BackupRequest,
  type Job,
  type JobAccepted,
  type RestoreRequest,
  type VerifyRequest,
} from '@stowage/api';
import { ChunkWorkers } from '@stowage/engine';
import type { HostBackend } from '@stowage/host-backends';
import type { JobEventSink, JobRunner, Logger, RepositoryOpener } from '../contracts.js';
import { apiErrorFromHostBackend } from '../errors.js';
import type { CommitFence } from '../events/commit-fence.js';
import { silentLogger } from '../log.js';
import { VolumeLocks } from '../volume-locks.js';
import { runBackup } from './backup-job.js';
import type { JobHistory } from './history.js';
import { fingerprintOf, type JobContext, type JobEntry, type ProgressListener } from './job-context.js';
import { errorBody } from './job-errors.js';
import type { JobJournal, JournalEntry } from './journal.js';
import { runRestore } from './restore-job.js';
import { runVerify } from './verify-job.js';

export { fingerprintOf, JOB_SNAPSHOT_PREFIX } from './job-context.js';
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
  readonly #jobs = new Map<string, JobEntry>();
  readonly #queue: JobEntry[] = [];
  readonly #running = new Set<JobEntry>();
  readonly #now: () => Date;
  readonly #logger: Logger;
  readonly #locks: VolumeLocks;
  /** What each job's work is given (job-context.ts). */
  readonly #context: JobContext;
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
    this.#context = {
      openRepository: options.openRepository,
      locks: this.#locks,
      logger: this.#logger,
      now: this.#now,
      packsPerIndex: options.packsPerIndex,
      commitFence: options.commitFence,
      backend: (kind) => this.#backend(kind),
      journalEntry: (entry, backend) => this.#journalEntry(entry, backend),
      journal: (entry, record) => this.#journal(entry, record),
      progressListener: (entry, phase) => this.#progressListener(entry, phase),
      workers: () => this.#workers(),
      closeWorkers: (entry, workers) => this.#closeWorkers(entry, workers),
    };
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
      (entry) => runBackup(this.#context, entry, request),
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
      (entry) => runRestore(this.#context, entry, request),
    );
  }

  submitVerify(request: VerifyRequest): Promise<JobAccepted> {
    return this.#submit(
      'verify',
      request,
      // No volume is used: the job reads the bucket only, so nothing on the host is held for it.
      async () => ({ keys: [], subject: `backup ${request.backup.backup_id}` }),
      (entry) => runVerify(this.#context, entry, request),
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
      started_at: entry.queued ? null : entry.started_at,
      finished_at: at,
      progress: EMPTY_PROGRESS,
      error: {
        code: 'internal',
        message: `the agent stopped ${entry.queued ? 'before the job ran' : 'while the job was running'} (killed, crashed or the host restarted); ${cleanup}`,
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
    work: JobEntry['work'],
  ): Promise<JobAccepted> {
    const id = request.job_id.toLowerCase();
    // Credentials are not the work: a retry with refreshed (STS) credentials is the same job.
    const { credentials: _credentials, ...target } = request.target;
    const fingerprint = fingerprintOf({ ...request, job_id: id, target });
    const resubmitted = (): Promise<JobAccepted> | JobAccepted | undefined => {
      const existing = this.#jobs.get(id);
      if (existing === undefined) return undefined;
      // A retried submit (a lost 202) finds its job, whatever happened since; other work under the id is not.
      if (existing.fingerprint !== fingerprint) {
        throw new ApiError('conflict', `job ${id} exists with a different request`);
      }
      // Still being recorded: the retry gets what the first submit gets, a 503 included.
      if (existing.accepting !== undefined) return existing.accepting;
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
    const entry: JobEntry = {
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
    // Journaled on accept: an agent killed before the job ran tells the manager at its next start, rather
    // than leave it waiting for the job to go stale. A record that cannot be written refuses the job. The
    // entry is queued (in submit order) and cancellable while the record is written, but does not start.
    const write = this.#journal(entry, { ...this.#journalEntry(entry, undefined), queued: true });
    entry.recorded = write.then(
      () => undefined,
      () => undefined,
    );
    entry.accepting = this.#accept(entry, write);
    this.#remember(entry);
    this.#queue.push(entry);
    return entry.accepting;
  }

  /** The end of a submit: once the job's record is written, it is announced and may start. */
  async #accept(entry: JobEntry, write: Promise<void>): Promise<JobAccepted> {
    const id = entry.job.id;
    try {
      await write;
    } catch (error) {
      const at = this.#queue.indexOf(entry);
      if (at >= 0) this.#queue.splice(at, 1);
      if (entry.job.finished_at === null) {
        this.#jobs.delete(id);
        for (const release of entry.releaseVolumes) release();
      }
      // The rename may have landed before a later step failed (the directory's fsync): no record may stay.
      await this.#options.journal?.remove(id).catch(() => undefined);
      throw new ApiError(
        'unavailable',
        `could not record job ${id} in the agent's state directory: ${(error as Error).message}`,
      );
    } finally {
      entry.accepting = undefined;
    }
    // Cancelled, or the agent began to stop, while its record was written: #endQueued settles it.
    if (entry.job.finished_at !== null) return { job_id: id, state: entry.job.state };
    this.#logger.info('job queued', { job_id: id, kind: entry.job.kind });
    this.#publish(entry, {}, 'state');
    this.#startQueued();
    return { job_id: id, state: entry.job.state };
  }

  #remember(entry: JobEntry): void {
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
    // In submit order: a job whose record is still being written holds those behind it (for milliseconds).
    while (this.#running.size < limit && this.#queue.length > 0 && this.#queue[0]!.accepting === undefined) {
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

  async #run(entry: JobEntry, work: (entry: JobEntry) => Promise<void>): Promise<void> {
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
    await this.#journalOutcome(entry, final);
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
    await this.#forgetJournaled(entry);
  }

  /**
   * Writes the job's outcome into its journal record: its clean-up has run, and from here a crash must
   * report this outcome rather than undo it (the record still names the volume a restore provisioned,
   * which after a success is the caller's). A record that cannot say so (a full state disk) is dropped
   * rather than left to undo the job at the next start.
   */
  async #journalOutcome(entry: JobEntry, final: Job): Promise<void> {
    const journal = this.#options.journal;
    if (journal === undefined || entry.journaled === undefined) return;
    const id = entry.job.id;
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

  /** Removes a finished job's journal record once the sink holds its final event durably (else the next
   * start reports it), unless it must stay for a snapshot the job could not delete. */
  async #forgetJournaled(entry: JobEntry): Promise<void> {
    const journal = this.#options.journal;
    if (journal === undefined || entry.journaled === undefined) return;
    const id = entry.job.id;
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

  /** Aborts a job; a queued one ends at once, and the promise settles once it is in the history. */
  #abort(entry: JobEntry, reason: string): Promise<void> {
    if (entry.job.finished_at !== null) return Promise.resolve();
    entry.abortReason ??= reason;
    entry.controller.abort();
    const queued = this.#queue.indexOf(entry);
    if (queued < 0) return Promise.resolve();
    this.#queue.splice(queued, 1);
    entry.work = undefined;
    return this.#endQueued(entry, reason);
  }

  /**
   * Ends a job that never ran: cancelled at once (what the caller is answered), then its outcome written into
   * its record (once the record is written, if it was being written), then announced, kept in the history,
   * and its record dropped: the order `#run` keeps, so a crash at any point reports it cancelled or, before
   * the outcome is written, not at all (the next start reports it failed before it ran).
   */
  #endQueued(entry: JobEntry, reason: string): Promise<void> {
    entry.job = {
      ...entry.job,
      state: 'cancelled',
      error: { code: 'cancelled', message: `job ${reason}` },
      finished_at: this.#now().toISOString(),
    };
    for (const release of entry.releaseVolumes) release();
    this.#logger.info('queued job cancelled', { job_id: entry.job.id, reason });
    return (async () => {
      await entry.recorded;
      await this.#journalOutcome(entry, entry.job);
      this.#publish(entry, {}, 'state');
      await this.#keepInHistory(entry);
      await this.#forgetJournaled(entry);
    })();
  }

  /** Records a finished job for resubmits and lookups after a restart; a failure only costs that. */
  async #keepInHistory(entry: JobEntry): Promise<void> {
    await this.#options.history?.append(entry.job, entry.fingerprint).catch((error: unknown) => {
      this.#logger.warn('could not record a finished job in the history', { job_id: entry.job.id, error });
    });
  }

  #publish(entry: JobEntry, change: Partial<Job>, kind: 'progress' | 'state'): void {
    entry.job = { ...entry.job, ...change };
    try {
      this.#options.events.jobChanged(entry.job, kind);
    } catch (error) {
      this.#logger.error('job event sink failed', { job_id: entry.job.id, error });
    }
  }

  #progressListener(entry: JobEntry, phase: 'snapshot' | 'transfer'): ProgressListener {
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

  #journalEntry(entry: JobEntry, backend: BackendKind | undefined): JournalEntry {
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
  async #journal(entry: JobEntry, record: JournalEntry): Promise<void> {
    await this.#options.journal?.write(record);
    entry.journaled = record;
  }

  #workers(): ChunkWorkers {
    return new ChunkWorkers(undefined, { threads: this.#options.threads ?? availableParallelism() });
  }

  async #closeWorkers(entry: JobEntry, workers: ChunkWorkers): Promise<void> {
    await workers.close().catch((error: unknown) => {
      this.#logger.warn("stopping a job's worker threads failed", { job_id: entry.job.id, error });
    });
  }
}

/** The job runner `serve.ts` wires in: see `JobRunnerOptions` for what it is given. */
export function createJobRunner(options: JobRunnerOptions): LocalJobRunner {
  return new LocalJobRunner(options);
}

/** A job of an earlier process, kept for lookups and resubmits (an old journal entry has no fingerprint). */
function recoveredEntry(job: Job, fingerprint: string | undefined): JobEntry {
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
