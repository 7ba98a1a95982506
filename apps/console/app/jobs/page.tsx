'use client';
import { JOB_KINDS, type JobKind, type ManagedJob } from '@stowage/api/console';
import Link from 'next/link';
import { useState } from 'react';
import { MAX_LIVE_STREAMS, useJobsPage, useLiveJob } from '../../lib/api/jobs';
import { useAllHosts } from '../../lib/api/misc';
import { bytes, errorText, when } from '../../lib/format';
import { Choice, Cli, ErrorText, Progress, State, Table } from '../../lib/ui';

/** Running jobs (live progress from each one's event stream) and recent ones, with their errors in words. */
export default function JobsPage() {
  const [kind, setKind] = useState('');
  // Rows beyond the streamed ones follow by polling (see MAX_LIVE_STREAMS).
  const running = useJobsPage({ state: 'running' }, 25, 2000);
  const recent = useJobsPage(kind ? { kind: kind as JobKind } : {}, 25);
  const hosts = useAllHosts();
  const hostName = (id: string | null) => hosts.data?.items.find((h) => h.id === id)?.name ?? '—';
  return (
    <>
      <h1>Jobs</h1>
      <h2>Running</h2>
      <ErrorText error={running.query.error} />
      <JobTable jobs={running.items} hostName={hostName} label="Running jobs" />
      {running.query.isSuccess && running.items.length === 0 && <p>Nothing is running.</p>}
      {running.pager}
      <h2>Recent</h2>
      <div className="toolbar">
        <Choice label="Kind" value={kind} onChange={setKind} none="any" options={JOB_KINDS} />
        <Cli command={`manager job list${kind ? ` --kind ${kind}` : ''}`} />
      </div>
      <ErrorText error={recent.query.error} />
      <JobTable jobs={recent.items} hostName={hostName} label="Recent jobs" />
      {recent.pager}
    </>
  );
}

function JobTable({
  jobs,
  hostName,
  label,
}: {
  jobs: ManagedJob[];
  hostName: (id: string | null) => string;
  label: string;
}) {
  return (
    <Table columns={['Kind', 'Volume', 'Host', 'Created', 'State and progress']} label={label}>
      {jobs.map((job, i) => (
        <JobRow key={job.id} job={job} live={i < MAX_LIVE_STREAMS} hostName={hostName} />
      ))}
    </Table>
  );
}

function JobRow({
  job: initial,
  live,
  hostName,
}: {
  job: ManagedJob;
  live: boolean;
  hostName: (id: string | null) => string;
}) {
  const job = useLiveJob(initial, live);
  return (
    <tr>
      <td>{job.kind}</td>
      <td>
        {job.volume_id ? <Link href={`/volume?id=${job.volume_id}`}>{job.volume_id.slice(0, 8)}</Link> : '—'}
      </td>
      <td>{hostName(job.host_id)}</td>
      <td>{when(job.created_at)}</td>
      <td>
        <State value={job.state} />{' '}
        {job.state === 'running' && (
          <>
            <Progress
              done={job.progress.bytes_done}
              total={job.progress.bytes_total}
              label={`${job.kind} progress`}
            />{' '}
            <span className="muted">
              {bytes(job.progress.bytes_done)} of {bytes(job.progress.bytes_total)}
              {job.progress.eta_seconds != null && `, ${Math.round(job.progress.eta_seconds)} s left`}
            </span>
          </>
        )}
        {job.error && <div className="error">{errorText(job.error)}</div>}
        {job.state === 'running' && <Cli command={`manager job watch ${job.id}`} />}
      </td>
    </tr>
  );
}
