import { formatServerSentEvent, SSE_KEEP_ALIVE } from '@stowage/api';
import { getJob, TERMINAL_STATES } from '../db/jobs.js';
import type { ManagerContext } from '../services/context.js';
import { jobJson } from './representations.js';

/** How often a stream re-reads its job when no local change woke it (another replica applied an event). */
const POLL_MS = 1_000;
const KEEP_ALIVE_MS = 15_000;

export interface JobWatchers {
  /** Wakes the streams of a job (called after each change this process makes). */
  notify(jobId: string): void;
  wait(jobId: string, ms: number, signal: AbortSignal): Promise<void>;
}

export function createJobWatchers(): JobWatchers {
  const waiting = new Map<string, Set<() => void>>();
  return {
    notify(jobId) {
      const set = waiting.get(jobId);
      if (set === undefined) return;
      waiting.delete(jobId);
      for (const wake of set) wake();
    },
    wait(jobId, ms, signal) {
      return new Promise((resolve) => {
        const set = waiting.get(jobId) ?? new Set();
        waiting.set(jobId, set);
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          set.delete(done);
          if (set.size === 0 && waiting.get(jobId) === set) waiting.delete(jobId);
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener('abort', done, { once: true });
        set.add(done);
      });
    },
  };
}

/**
 * `GET /v1/jobs/:id/events`: the job now, then again after each change (`event: job`, one ManagedJob as
 * data), closing after a terminal state. Changes made here wake the stream at once; those another replica
 * makes are seen within a second by polling the row.
 */
export function jobEventStream(
  ctx: ManagerContext,
  watchers: JobWatchers,
  jobId: string,
  signal: AbortSignal,
): Response {
  const encoder = new TextEncoder();
  const stop = new AbortController();
  signal.addEventListener('abort', () => stop.abort(), { once: true });
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      let last = '';
      let lastWrite = Date.now();
      try {
        while (!stop.signal.aborted) {
          const row = await getJob(ctx.db, jobId);
          if (row === undefined) break;
          const data = JSON.stringify(jobJson(row));
          if (data !== last) {
            controller.enqueue(encoder.encode(formatServerSentEvent('job', data)));
            last = data;
            lastWrite = Date.now();
          } else if (Date.now() - lastWrite >= KEEP_ALIVE_MS) {
            controller.enqueue(encoder.encode(SSE_KEEP_ALIVE));
            lastWrite = Date.now();
          }
          if (TERMINAL_STATES.includes(row.state)) break;
          await watchers.wait(jobId, POLL_MS, stop.signal);
        }
      } catch (error) {
        ctx.logger.warn('job stream ended by an error', { job_id: jobId, error });
      } finally {
        try {
          controller.close();
        } catch {
          // already closed by the client going away
        }
      }
    },
    cancel() {
      stop.abort();
    },
  });
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' },
  });
}
