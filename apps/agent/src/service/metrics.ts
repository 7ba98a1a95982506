import { JOB_STATES, type Job } from '@stowage/api';
import { isObjectStoreError, type RetryEvent, type StoreEvent } from '@stowage/object-store';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JobEventSink, StoreEventSink } from './contracts.js';

/**
 * The agent's Prometheus metrics, fed by job changes and object-store events; its own registry (never the
 * global one), so two agents in one process — tests — do not share counters.
 *
 * Byte counters move while a job runs: bytes read from progress deltas, bytes uploaded and downloaded from
 * the store's own events (so a failed or cancelled job's traffic counts too). Chunk counts and durations
 * arrive with a job's result.
 */
export class AgentMetrics implements JobEventSink, StoreEventSink {
  readonly registry = new Registry();
  readonly #bytesRead: Counter;
  readonly #bytesUploaded: Counter;
  readonly #bytesDownloaded: Counter;
  readonly #chunks: Counter<'result'>;
  readonly #storeRequests: Counter<'op' | 'outcome'>;
  readonly #storeErrors: Counter<'op' | 'kind'>;
  readonly #storeRetries: Counter<'op' | 'kind'>;
  readonly #jobDuration: Histogram<'kind' | 'state'>;
  readonly #jobsFinished: Counter<'kind' | 'state'>;
  /** Per running job: bytes already counted from its progress, to count only the delta next time. */
  readonly #counted = new Map<string, number>();
  #jobStates: () => readonly Job['state'][] = () => [];

  constructor() {
    const registers = [this.registry];
    this.#bytesRead = new Counter({
      name: 'stowage_agent_bytes_read_total',
      help: 'Bytes read from volumes by backup jobs.',
      registers,
    });
    this.#bytesUploaded = new Counter({
      name: 'stowage_agent_bytes_uploaded_total',
      help: 'Bytes of objects written to repositories (chunks and manifests).',
      registers,
    });
    this.#bytesDownloaded = new Counter({
      name: 'stowage_agent_bytes_downloaded_total',
      help: 'Bytes of objects read from repositories.',
      registers,
    });
    this.#chunks = new Counter({
      name: 'stowage_agent_backup_chunks_total',
      help: 'Data chunks of finished backups: new (uploaded) or deduplicated (already in the repository).',
      labelNames: ['result'],
      registers,
    });
    this.#storeRequests = new Counter({
      name: 'stowage_agent_object_store_requests_total',
      help: 'Object-store operations by outcome after retries (each retry is counted in retries_total).',
      labelNames: ['op', 'outcome'],
      registers,
    });
    this.#storeErrors = new Counter({
      name: 'stowage_agent_object_store_errors_total',
      help: 'Object-store operations that failed after their retries, by operation and error kind.',
      labelNames: ['op', 'kind'],
      registers,
    });
    this.#storeRetries = new Counter({
      name: 'stowage_agent_object_store_retries_total',
      help: 'Object-store attempts that failed and were retried, by operation and error kind.',
      labelNames: ['op', 'kind'],
      registers,
    });
    this.#jobDuration = new Histogram({
      name: 'stowage_agent_job_duration_seconds',
      help: 'Wall time of finished jobs, from start to end (queueing excluded).',
      labelNames: ['kind', 'state'],
      buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 48 * 3600],
      registers,
    });
    this.#jobsFinished = new Counter({
      name: 'stowage_agent_jobs_finished_total',
      help: 'Jobs that ended, by kind and final state.',
      labelNames: ['kind', 'state'],
      registers,
    });
    const states = () => this.#jobStates();
    new Gauge({
      name: 'stowage_agent_jobs',
      help: 'Jobs this agent knows (running, queued, and its recent history), by state.',
      labelNames: ['state'],
      registers,
      collect() {
        for (const state of JOB_STATES) this.set({ state }, 0);
        for (const state of states()) this.inc({ state });
      },
    });
  }

  /** Where the jobs gauge reads from at scrape time (the runner's own list: no second copy to keep bounded). */
  observeJobs(states: () => readonly Job['state'][]): void {
    this.#jobStates = states;
  }

  /** Called once per change; a job reaches a final state once, so its end is counted once. */
  jobChanged(job: Job, _change: 'progress' | 'state'): void {
    if (job.kind === 'backup') {
      const counted = this.#counted.get(job.id) ?? 0;
      const done =
        job.result !== null && 'bytes_read' in job.result ? job.result.bytes_read : job.progress.bytes_done;
      if (done > counted) {
        this.#bytesRead.inc(done - counted);
        this.#counted.set(job.id, done);
      }
    }
    if (job.state !== 'succeeded' && job.state !== 'failed' && job.state !== 'cancelled') return;
    this.#counted.delete(job.id);
    this.#jobsFinished.inc({ kind: job.kind, state: job.state });
    if (job.started_at !== null && job.finished_at !== null) {
      const seconds = (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
      this.#jobDuration.observe({ kind: job.kind, state: job.state }, Math.max(0, seconds));
    }
    if (job.result !== null && 'chunks_new' in job.result) {
      this.#chunks.inc({ result: 'new' }, job.result.chunks_new);
      this.#chunks.inc({ result: 'deduplicated' }, job.result.chunks - job.result.chunks_new);
    }
  }

  storeEvent(event: StoreEvent): void {
    this.#storeRequests.inc({ op: event.op, outcome: event.outcome });
    if (event.outcome === 'error') {
      this.#storeErrors.inc({ op: event.op, kind: event.errorKind });
      return;
    }
    if (event.op === 'put') this.#bytesUploaded.inc(event.bytes);
    else if (event.op === 'get') this.#bytesDownloaded.inc(event.bytes);
  }

  storeRetry(event: RetryEvent): void {
    const kind = isObjectStoreError(event.error) ? event.error.kind : 'unknown';
    this.#storeRetries.inc({ op: event.op, kind });
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
