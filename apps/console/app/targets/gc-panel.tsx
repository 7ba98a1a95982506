'use client';
import type { BackupTarget } from '@stowage/api/console';
import { useState } from 'react';
import { useGcRunsPage, useStartGc } from '../../lib/api/targets';
import { bytes, when } from '../../lib/format';
import { Cli, ErrorText, num, State, Table } from '../../lib/ui';

/** A target's garbage collection: its runs, newest first, and "run GC now" (optionally a dry run). */
export function GcPanel({ target }: { target: BackupTarget }) {
  const [dryRun, setDryRun] = useState(true);
  const start = useStartGc(target.id);
  const { items, query, pager } = useGcRunsPage(target.id);
  return (
    <section aria-labelledby="gc-title">
      <h2 id="gc-title">Garbage collection of {target.name}</h2>
      <div className="toolbar">
        <label className="check">
          <input type="checkbox" checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} />
          Dry run (plan only, delete nothing)
        </label>
        <button type="button" onClick={() => start.mutate(dryRun)} disabled={start.isPending}>
          Run GC now
        </button>
      </div>
      <Cli command={`manager target gc ${target.name}${dryRun ? ' --dry-run' : ''}`} />
      <ErrorText error={start.error ?? query.error} />
      <Table
        columns={['Started', 'State', 'Phase', 'Trigger', 'Dry run', num('Packs deleted'), num('Freed')]}
      >
        {items.map((r) => (
          <tr key={r.id}>
            <td>{when(r.started_at)}</td>
            <td>
              <State value={r.state} />
              {r.error && <div className="error">{r.error.message}</div>}
            </td>
            <td>{r.phase}</td>
            <td>{r.trigger}</td>
            <td>{r.dry_run ? 'yes' : 'no'}</td>
            <td className="num">{r.packs_deleted}</td>
            <td className="num">{bytes(r.bytes_freed)}</td>
          </tr>
        ))}
      </Table>
      {query.isSuccess && items.length === 0 && <p>No runs yet.</p>}
      {pager}
    </section>
  );
}
