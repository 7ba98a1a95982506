'use client';
import type { JobListQuery, ManagedJob } from '@stowage/api/console';
import { TERMINAL_JOB_STATES } from '@stowage/api/console';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { api } from '../client';
import { usePaged } from '../ui';

export function useJobsPage(
  filter: Omit<JobListQuery, 'limit' | 'cursor'>,
  limit = 25,
  refetchInterval?: number,
) {
  return usePaged(
    ['jobs', filter],
    (cursor) => api().listJobs({ ...filter, limit, cursor }),
    refetchInterval,
  );
}

/**
 * How many jobs a page follows by their event streams at once. A browser opens at most six HTTP/1.1
 * connections to one host, and each stream holds one: more would stall every other request. The rest are
 * refreshed by polling their list.
 */
export const MAX_LIVE_STREAMS = 3;

/**
 * The job as it changes, from its Server-Sent Events stream (`GET /v1/jobs/{id}/events`); starts from the
 * job given and ends when it reaches a terminal state. A broken stream is reopened after a second.
 */
export function useLiveJob(initial: ManagedJob, enabled = true): ManagedJob {
  const [job, setJob] = useState(initial);
  const queries = useQueryClient();
  const terminal = TERMINAL_JOB_STATES.includes(initial.state);
  useEffect(() => {
    if (terminal || !enabled) return;
    const abort = new AbortController();
    (async () => {
      for (let attempt = 0; attempt < 30 && !abort.signal.aborted; attempt++) {
        try {
          for await (const next of api().jobEvents(initial.id, abort.signal)) {
            setJob(next);
            if (TERMINAL_JOB_STATES.includes(next.state)) {
              queries.invalidateQueries({ queryKey: ['backups'] });
              queries.invalidateQueries({ queryKey: ['volume'] });
              queries.invalidateQueries({ queryKey: ['dashboard'] });
              return;
            }
          }
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      }
    })();
    return () => abort.abort();
  }, [initial.id, terminal, enabled, queries]);
  if (!enabled || job.id !== initial.id) return initial;
  return job;
}
