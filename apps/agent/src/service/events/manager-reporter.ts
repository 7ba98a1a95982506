import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { type Job, JobEvent, MANAGER_JOB_EVENTS_PATH, TERMINAL_JOB_STATES } from '@stowage/api';
import { writeFileAtomically } from '../atomic-file.js';
import type { JobEventSink, Logger } from '../contracts.js';
import { silentLogger } from '../log.js';

export interface ManagerReporterOptions {
  /** The manager's base URL; without one, events are not sent (standalone agents, tests). */
  managerUrl: string | undefined;
  /** The agent's own token for the manager: sent as a bearer token, never logged. */
  token: string | undefined;
  agentId: string;
  /** Where undelivered final events are kept across restarts. */
  stateDir: string;
  fetch?: typeof fetch;
  now?: () => number;
  random?: () => number;
  logger?: Logger;
  /** Least time between two progress events of one job (default 1 s). */
  progressIntervalMs?: number;
  /** First retry delay (default 1 s), doubled per failure up to `maxBackoffMs` (default 60 s), jittered. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Per-request timeout (default 10 s). */
  requestTimeoutMs?: number;
}

interface Outbox {
  /** The newest progress event not yet sent; replaced by newer ones, dropped once the job finishes. */
  progress?: JobEvent;
  /** The job's final event, kept (and persisted) until the manager acknowledges it. */
  finished?: JobEvent;
  lastProgressSentAt: number;
  failures: number;
  retryAt: number;
}

const STATE_FILE = 'outbox.json';
/** Manager answers that mean "this event is invalid and never will be valid". */
const DROP_STATUSES: readonly number[] = [400, 413, 422];

/**
 * Delivers job events to the manager: `POST <manager>/v1/agent/job-events`, retried with jittered exponential
 * backoff until a 2xx. Progress is sent at most once a second per job (only the newest is kept); a job's final
 * event is written to `<state dir>/outbox.json` before `flush()` resolves and stays there until acknowledged,
 * so it survives an agent restart and is delivered by the next process. One job's failing deliveries never
 * hold up another's: backoff is per job.
 */
export class ManagerReporter implements JobEventSink {
  readonly #options: ManagerReporterOptions;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #logger: Logger;
  readonly #jobs = new Map<string, Outbox>();
  readonly #path: string;
  /** Event sequence: starts from the clock so a restarted agent's events of a job sort after its old ones. */
  #seq: number;
  #timer: NodeJS.Timeout | undefined;
  #pumping = false;
  /** The running pump, if any: `stop()` waits for it so nothing is sent or written after it returns. */
  #pumpDone: Promise<void> = Promise.resolve();
  #stopped = false;
  /** The delivery in flight, aborted by `stop()`: it then counts as not delivered and stays in the outbox. */
  #inFlight: AbortController | undefined;
  /** The latest outbox write, answering its error if it failed (the newest write holds every older event). */
  #persisting: Promise<unknown> = Promise.resolve(undefined);

  constructor(options: ManagerReporterOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#logger = options.logger ?? silentLogger;
    this.#path = join(options.stateDir, STATE_FILE);
    this.#seq = this.#now() * 1000;
  }

  get enabled(): boolean {
    return this.#options.managerUrl !== undefined;
  }

  /** Final events not yet acknowledged (what the state file holds). */
  undelivered(): JobEvent[] {
    return [...this.#jobs.values()].flatMap((o) => (o.finished ? [o.finished] : []));
  }

  /** Loads the final events a previous process could not deliver, and starts delivering. */
  async start(): Promise<void> {
    if (!this.enabled) {
      this.#logger.info('no manager URL configured: job events are not sent');
      return;
    }
    let text: string | undefined;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (text !== undefined) {
      try {
        const saved = JSON.parse(text) as { events: unknown[] };
        for (const raw of saved.events) {
          const event = JobEvent.parse(raw);
          this.#seq = Math.max(this.#seq, event.seq + 1);
          this.#outbox(event.job.id).finished = event;
        }
        if (saved.events.length > 0) {
          this.#logger.info('undelivered job results from an earlier run', { events: saved.events.length });
        }
      } catch (error) {
        // Keep the bytes for a person to look at; starting empty is better than not starting.
        const aside = `${this.#path}.corrupt-${new Date(this.#now()).toISOString().replace(/[:.]/g, '-')}`;
        await rename(this.#path, aside);
        this.#logger.error('job event outbox unreadable; moved aside, starting empty', {
          file: aside,
          error,
        });
      }
    }
    this.#schedule(0);
  }

  jobChanged(job: Job, change: 'progress' | 'state'): void {
    if (!this.enabled || this.#stopped) return;
    const outbox = this.#outbox(job.id);
    if (TERMINAL_JOB_STATES.includes(job.state)) {
      outbox.progress = undefined;
      outbox.finished = this.#event(job, 'finished');
      outbox.failures = 0;
      outbox.retryAt = 0;
      this.#persist();
      this.#schedule(0);
      return;
    }
    if (outbox.finished !== undefined) return; // a late progress change after the end is stale
    outbox.progress = this.#event(job, 'progress');
    // A state change (queued → running) goes out at once; plain progress waits for its interval.
    const due = change === 'state' ? 0 : outbox.lastProgressSentAt + this.#progressInterval() - this.#now();
    this.#schedule(Math.max(0, due, outbox.retryAt - this.#now()));
  }

  /** Resolves once the outbox file holds every final event so far; rejects if the latest write failed. */
  async flush(): Promise<void> {
    // After stop() a new final event is neither sent nor written: the caller must keep its own record.
    if (this.#stopped && this.enabled) throw new Error('the job event reporter has stopped');
    const error = await this.#persisting;
    if (error !== undefined) {
      throw new Error(`could not write the job event outbox ${this.#path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /** Tries to deliver what is pending for up to `timeoutMs`, then persists and stops. */
  async stop(timeoutMs: number): Promise<void> {
    const deadline = this.#now() + timeoutMs;
    // One more try for everything at once, whatever its backoff: this may be the last chance for a while.
    for (const outbox of this.#jobs.values()) outbox.retryAt = 0;
    while (this.enabled && this.#now() < deadline && this.#hasDue()) {
      if (!this.#pumping) await this.#startPump();
      if (this.#hasDue()) await sleep(Math.max(1, Math.min(50, deadline - this.#now())));
    }
    this.#stopped = true;
    clearTimeout(this.#timer);
    // A delivery may still be in flight (its answer not read yet): end it, then wait for what it persists.
    this.#inFlight?.abort(new Error('reporter stopped'));
    await this.#pumpDone;
    await this.#persisting;
  }

  #progressInterval(): number {
    return this.#options.progressIntervalMs ?? 1000;
  }

  #outbox(id: string): Outbox {
    let outbox = this.#jobs.get(id);
    if (outbox === undefined) {
      outbox = { lastProgressSentAt: -Infinity, failures: 0, retryAt: 0 };
      this.#jobs.set(id, outbox);
    }
    return outbox;
  }

  #event(job: Job, type: JobEvent['type']): JobEvent {
    const seq = this.#seq++;
    return {
      event_id: `${job.id}:${seq}`,
      agent_id: this.#options.agentId,
      seq,
      type,
      at: new Date(this.#now()).toISOString(),
      job,
    };
  }

  /** Events that could be sent now, and the earliest time one could be. */
  #next(): { id: string; event: JobEvent } | { wait: number } | undefined {
    const now = this.#now();
    let wait = Infinity;
    for (const [id, outbox] of this.#jobs) {
      const event = outbox.finished ?? outbox.progress;
      if (event === undefined) continue;
      let at = outbox.retryAt;
      if (event.type === 'progress' && outbox.failures === 0) {
        at = Math.max(at, outbox.lastProgressSentAt + this.#progressInterval());
      }
      if (at <= now) return { id, event };
      wait = Math.min(wait, at - now);
    }
    return wait === Infinity ? undefined : { wait };
  }

  #hasDue(): boolean {
    return [...this.#jobs.values()].some((o) => o.finished !== undefined || o.progress !== undefined);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped || this.#pumping) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#startPump(), delayMs);
    this.#timer.unref?.();
  }

  #startPump(): Promise<void> {
    if (this.#pumping) return this.#pumpDone;
    this.#pumpDone = this.#pump();
    return this.#pumpDone;
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (!this.#stopped) {
        const next = this.#next();
        if (next === undefined) return;
        if ('wait' in next) {
          this.#pumping = false;
          this.#schedule(next.wait);
          return;
        }
        await this.#deliver(next.id, next.event);
      }
    } finally {
      this.#pumping = false;
    }
  }

  async #deliver(id: string, event: JobEvent): Promise<void> {
    const outbox = this.#outbox(id);
    let outcome: 'ack' | 'drop' | 'retry';
    let detail: string;
    // One controller per delivery (a signal derived from a long-lived one would stay attached to it).
    const controller = new AbortController();
    this.#inFlight = controller;
    const timer = setTimeout(
      () => controller.abort(new Error('request timed out')),
      this.#options.requestTimeoutMs ?? 10_000,
    );
    try {
      const response = await this.#fetch(`${this.#options.managerUrl}${MANAGER_JOB_EVENTS_PATH}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.#options.token ?? ''}` },
        body: JSON.stringify(event),
        signal: controller.signal,
      });
      await response.body?.cancel().catch(() => {});
      detail = `HTTP ${response.status}`;
      if (response.ok) outcome = 'ack';
      // Only an answer that the event itself is bad (malformed, too large, invalid) drops it: the manager will
      // never take it. Everything else is retried — 401/403 (a token being rotated), 404 (a manager not yet
      // upgraded, or a proxy in the way), 409, 429, 5xx — since dropping a final event loses a job's result.
      else if (DROP_STATUSES.includes(response.status)) outcome = 'drop';
      else outcome = 'retry';
    } catch (error) {
      outcome = 'retry';
      detail = (error as Error).message;
    } finally {
      clearTimeout(timer);
      this.#inFlight = undefined;
    }
    if (outcome === 'retry') {
      outbox.failures++;
      const cap = Math.min(
        this.#options.maxBackoffMs ?? 60_000,
        (this.#options.initialBackoffMs ?? 1000) * 2 ** (outbox.failures - 1),
      );
      outbox.retryAt = this.#now() + cap / 2 + (this.#random() * cap) / 2;
      const log =
        outbox.failures === 1 || outbox.failures % 10 === 0 ? this.#logger.warn : this.#logger.debug;
      log.call(this.#logger, 'job event not delivered; will retry', {
        job_id: id,
        event_id: event.event_id,
        type: event.type,
        attempt: outbox.failures,
        detail,
      });
      return;
    }
    if (outcome === 'drop') {
      this.#logger.error('manager refused a job event; dropped', {
        job_id: id,
        event_id: event.event_id,
        detail,
      });
    }
    outbox.failures = 0;
    outbox.retryAt = 0;
    if (event.type === 'progress') {
      outbox.lastProgressSentAt = this.#now();
      if (outbox.progress === event) outbox.progress = undefined;
      return;
    }
    if (outbox.finished === event) {
      this.#jobs.delete(id);
      this.#persist();
    }
  }

  /** Writes the unacknowledged final events: temp file, fsync, rename, directory fsync; one write at a time. */
  #persist(): void {
    const events = this.undelivered();
    this.#persisting = this.#persisting.then(() =>
      writeFileAtomically(this.#path, `${JSON.stringify({ version: 1, events })}\n`).then(
        () => undefined,
        (error: unknown) => {
          this.#logger.error('could not write the job event outbox', { file: this.#path, error });
          return error ?? new Error('unknown error');
        },
      ),
    );
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
