'use client';
import Link from 'next/link';
import { useDashboard } from '../lib/api/dashboard';
import { bytes, ratio, when } from '../lib/format';
import { ErrorText, num, Table } from '../lib/ui';

function Card({
  label,
  n,
  tone,
  href,
}: {
  label: string;
  n: number;
  tone?: 'ok' | 'warn' | 'bad';
  href?: string;
}) {
  const body = (
    <>
      <span className="n">{n}</span>
      {label}
    </>
  );
  return (
    <li className={`card ${n > 0 && tone ? tone : ''}`}>{href ? <Link href={href}>{body}</Link> : body}</li>
  );
}

export default function DashboardPage() {
  const { data, error, isPending } = useDashboard();
  return (
    <>
      <h1>Dashboard</h1>
      <ErrorText error={error} />
      {isPending && <p>Loading…</p>}
      {data && (
        <>
          <h2>Volumes</h2>
          <ul className="cards" aria-label="Volumes by protection">
            <Card label="protected" n={data.volumes.protected} tone="ok" href="/volumes" />
            <Card label="unprotected" n={data.volumes.unprotected} tone="warn" href="/volumes" />
            <Card label="overdue" n={data.volumes.overdue} tone="bad" href="/volumes" />
            <Card label="failing" n={data.volumes.failing} tone="bad" href="/volumes" />
          </ul>
          <div className="grid2">
            <section>
              <h2>Hosts</h2>
              <ul className="cards" aria-label="Hosts">
                <Card label="up" n={data.hosts.up} tone="ok" href="/hosts" />
                <Card label="down" n={data.hosts.down} tone="bad" href="/hosts" />
                <Card label="unknown" n={data.hosts.unknown} tone="warn" href="/hosts" />
              </ul>
            </section>
            <section>
              <h2>Last 24 hours</h2>
              <ul className="cards" aria-label="Backups of the last 24 hours">
                <Card label="backups completed" n={data.backups_24h.completed} tone="ok" />
                <Card label="backups failed" n={data.backups_24h.failed} tone="bad" />
                <Card label="jobs running" n={data.jobs.running + data.jobs.queued} href="/jobs" />
                <Card label="open alerts" n={data.open_alerts} tone="bad" href="/alerts" />
              </ul>
              <p className="muted">
                {bytes(data.backups_24h.logical_bytes)} backed up, {bytes(data.backups_24h.uploaded_bytes)}{' '}
                uploaded.
              </p>
            </section>
          </div>
          <h2>Targets</h2>
          <Table
            columns={[
              'Target',
              'Kind',
              num('Backups'),
              num('Logical'),
              num('Stored'),
              num('Dedup'),
              num('Compression'),
              num('Overall'),
            ]}
            caption="Stored against logical bytes; ratios are estimates (docs/console.md)"
          >
            {data.targets.map((t) => (
              <tr key={t.id}>
                <td>
                  <Link href={`/targets?id=${t.id}`}>{t.name}</Link>
                </td>
                <td>{t.kind}</td>
                <td className="num">{t.backups}</td>
                <td className="num">{bytes(t.logical_bytes)}</td>
                <td className="num">{bytes(t.stored_bytes)}</td>
                <td className="num">{t.dedup_ratio === null ? '—' : ratio(t.dedup_ratio, 1)}</td>
                <td className="num">{t.compression_ratio === null ? '—' : ratio(t.compression_ratio, 1)}</td>
                <td className="num">{ratio(t.logical_bytes, t.stored_bytes)}</td>
              </tr>
            ))}
          </Table>
          <p className="muted">Updated {when(data.generated_at)}.</p>
        </>
      )}
    </>
  );
}
