'use client';
import { useState } from 'react';
import { useAuditPage } from '../../lib/api/misc';
import { when } from '../../lib/format';
import { Choice, Cli, ErrorText, Table } from '../../lib/ui';

/** The audit log: every state-changing call, newest first (admins only). */
export default function AuditPage() {
  const [actor, setActor] = useState('');
  const [outcome, setOutcome] = useState('');
  const { items, query, pager } = useAuditPage({
    ...(actor ? { actor } : {}),
    ...(outcome ? { outcome: outcome as 'ok' | 'error' } : {}),
  });
  return (
    <>
      <h1>Audit log</h1>
      <form className="toolbar" aria-label="Filter the audit log" onSubmit={(e) => e.preventDefault()}>
        <label>
          Who (user or token name)
          <input value={actor} onChange={(e) => setActor(e.target.value)} />
        </label>
        <Choice label="Outcome" value={outcome} onChange={setOutcome} none="any" options={['ok', 'error']} />
      </form>
      <Cli
        command={`manager audit list${actor ? ` --actor ${actor}` : ''}${outcome === 'error' ? ' --failed' : ''}`}
      />
      <ErrorText error={query.error} />
      <Table columns={['When', 'Who', 'What', 'On', 'Outcome']}>
        {items.map((e) => (
          <tr key={e.id}>
            <td>{when(e.at)}</td>
            <td>
              {e.actor.name ?? e.actor.kind} {e.actor.role && <span className="muted">({e.actor.role})</span>}
            </td>
            <td>
              {e.action} <code className="muted">{`${e.method} ${e.path}`}</code>
            </td>
            <td>
              <code>{Object.values(e.resource).join(', ') || '—'}</code>
            </td>
            <td className={e.outcome === 'error' ? 'error' : undefined}>
              {e.outcome} {e.error_code && `(${e.error_code})`}
              {e.repeats > 1 && (
                <div className="muted">
                  ×{e.repeats} until {when(e.last_at ?? e.at)}
                </div>
              )}
            </td>
          </tr>
        ))}
      </Table>
      {pager}
    </>
  );
}
