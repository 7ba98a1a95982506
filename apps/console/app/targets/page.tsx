'use client';

import Link from 'next/link';
import { useSearchParams } from 'next/navigation';
import { Suspense } from 'react';
import { useTargetsPage } from '../../lib/api/targets';
import { bytes, ratio } from '../../lib/format';
import { ErrorText, num, Table } from '../../lib/ui';
import { GcPanel } from './gc-panel';
import { NewTarget } from './new-target';

export default function TargetsRoute() {
  return (
    <Suspense fallback={<p>Loading…</p>}>
      <TargetsPage />
    </Suspense>
  );
}

function TargetsPage() {
  const selected = useSearchParams().get('id');
  const { items, query, pager } = useTargetsPage();
  const target = items.find((t) => t.id === selected);
  return (
    <>
      <h1>Backup targets</h1>
      <ErrorText error={query.error} />
      <Table columns={['Name', 'Where', num('Backups'), num('Logical'), num('Stored'), num('Ratio'), 'GC']}>
        {items.map((t) => (
          <tr key={t.id}>
            <td>
              <Link href={`/targets?id=${t.id}`} aria-current={t.id === selected ? 'true' : undefined}>
                {t.name}
              </Link>
            </td>
            <td>
              <code>{t.repository}</code>
            </td>
            <td className="num">{t.usage.backups}</td>
            <td className="num">{bytes(t.usage.logical_bytes)}</td>
            <td className="num">{bytes(t.usage.stored_bytes)}</td>
            <td className="num">{ratio(t.usage.logical_bytes, t.usage.stored_bytes)}</td>
            <td>{t.gc_enabled ? `daily at ${t.gc_hour}:00 ${t.timezone}` : 'off'}</td>
          </tr>
        ))}
      </Table>
      {pager}
      {target && <GcPanel key={target.id} target={target} />}
      <NewTarget />
    </>
  );
}
