'use client';
import { type FormEvent, useState } from 'react';
import {
  useAcknowledgeAlert,
  useAlertsPage,
  useCreateWebhook,
  useDeleteWebhook,
  useTestWebhook,
  useWebhooksPage,
} from '../../lib/api/alerts';
import { when } from '../../lib/format';
import { Cli, ErrorText, State, Table } from '../../lib/ui';

/** Alerts (raised and resolved by the manager's alerts loop), acknowledged here; the webhooks told of them. */
export default function AlertsPage() {
  const [state, setState] = useState<'open' | 'resolved' | 'all'>('open');
  const { items, query, pager } = useAlertsPage({ state });
  const ack = useAcknowledgeAlert();
  return (
    <>
      <h1>Alerts</h1>
      <div className="toolbar">
        <label>
          Show
          <select value={state} onChange={(e) => setState(e.target.value as typeof state)}>
            <option value="open">open</option>
            <option value="resolved">resolved</option>
            <option value="all">all</option>
          </select>
        </label>
        <Cli command={`manager alert list --state ${state}\nmanager alert ack <alert id>`} />
      </div>
      <ErrorText error={query.error ?? ack.error} />
      <Table columns={['Opened', 'Severity', 'Kind', 'What', 'State', 'Acknowledged']}>
        {items.map((a) => (
          <tr key={a.id}>
            <td>{when(a.opened_at)}</td>
            <td className={a.severity === 'critical' ? 'error' : undefined}>{a.severity}</td>
            <td>{a.kind.replaceAll('_', ' ')}</td>
            <td>{a.message}</td>
            <td>
              <State value={a.state} />
              {a.resolved_at && <div className="muted">{when(a.resolved_at)}</div>}
            </td>
            <td>
              {a.acknowledged_at ? (
                `${a.acknowledged_by ?? ''} ${when(a.acknowledged_at)}`
              ) : (
                <button type="button" className="secondary" onClick={() => ack.mutate(a.id)}>
                  Acknowledge
                </button>
              )}
            </td>
          </tr>
        ))}
      </Table>
      {query.isSuccess && items.length === 0 && <p>No {state === 'all' ? '' : state} alerts.</p>}
      {pager}
      <Webhooks />
    </>
  );
}

function Webhooks() {
  const { items, query, pager } = useWebhooksPage();
  const create = useCreateWebhook();
  const remove = useDeleteWebhook();
  const test = useTestWebhook();
  const [url, setUrl] = useState('');
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const description = String(new FormData(event.currentTarget).get('description') ?? '').trim();
    create.mutate({ url, ...(description ? { description } : {}) });
  };
  return (
    <section aria-labelledby="webhooks-title">
      <h2 id="webhooks-title">Webhooks</h2>
      <ErrorText error={query.error ?? remove.error ?? test.error} />
      {test.data && (
        <p role="status">
          Test delivery: {test.data.ok ? 'delivered' : 'failed'}
          {test.data.status !== null && ` (HTTP ${test.data.status})`}
          {test.data.error && ` — ${test.data.error}`}
        </p>
      )}
      <Table columns={['URL', 'Events', 'Last delivery', 'Actions']}>
        {items.map((w) => (
          <tr key={w.id}>
            <td>
              <code>{w.url}</code>
              {w.description && <div className="muted">{w.description}</div>}
            </td>
            <td>{w.events.join(', ')}</td>
            <td>
              {when(w.last_attempt_at)} {w.last_status !== null && `HTTP ${w.last_status}`}
              {w.last_error && <div className="error">{w.last_error}</div>}
            </td>
            <td>
              <button type="button" className="secondary" onClick={() => test.mutate(w.id)}>
                Send a test
              </button>{' '}
              <button
                type="button"
                className="danger"
                onClick={() => window.confirm(`Remove the webhook to ${w.url}?`) && remove.mutate(w.id)}
              >
                Remove
              </button>
            </td>
          </tr>
        ))}
      </Table>
      {pager}
      <form className="inline" onSubmit={submit} aria-label="New webhook">
        <label>
          URL
          <input type="url" value={url} onChange={(e) => setUrl(e.target.value)} required />
        </label>
        <label>
          Description
          <input name="description" />
        </label>
        <button type="submit" disabled={create.isPending}>
          Add webhook
        </button>
      </form>
      <ErrorText error={create.error} />
      {create.data && (
        <p className="passphrase" role="status">
          Signing secret (shown once): <code>{create.data.secret}</code>
        </p>
      )}
      <Cli
        command={`manager webhook add ${url || 'URL'}\nmanager webhook test <webhook id>\nmanager webhook remove <webhook id>`}
      />
    </section>
  );
}
