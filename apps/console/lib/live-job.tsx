'use client';
import type { ManagedJob } from '@stowage/api/console';
import { useLiveJob } from './api/jobs';
import { bytes, errorText } from './format';
import { Progress, State } from './ui';

/** A job followed live: its progress bar from the SSE stream, and its error in words. */
export function LiveJob({ job: initial }: { job: ManagedJob }) {
  const job = useLiveJob(initial);
  return (
    <div className="card" aria-live="polite">
      {job.kind} job <State value={job.state} />{' '}
      <Progress
        done={job.progress.bytes_done}
        total={job.progress.bytes_total}
        complete={job.state === 'succeeded'}
        label={`${job.kind} progress`}
      />{' '}
      <span className="muted">
        {job.progress.phase ?? ''} {bytes(job.progress.bytes_done)} of {bytes(job.progress.bytes_total)}
      </span>
      {job.error && <p className="error">{errorText(job.error)}</p>}
    </div>
  );
}
