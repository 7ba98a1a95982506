'use client';
import { useHostsPage } from '../../lib/api/misc';
import { when } from '../../lib/format';
import { Cli, ErrorText, State, Table } from '../../lib/ui';

export default function HostsPage() {
  const { items, query, pager } = useHostsPage();
  return (
    <>
      <h1>Hosts</h1>
      <Cli command="manager host add NAME --agent-url URL --agent-token-file FILE" />
      <ErrorText error={query.error} />
      <Table columns={['Name', 'URL', 'Status', 'Last contact', 'Backends']}>
        {items.map((h) => (
          <tr key={h.id}>
            <td>{h.name}</td>
            <td>
              <code>{h.url}</code>
            </td>
            <td>
              <State value={h.status} />
              {h.last_error && <div className="error">{h.last_error}</div>}
            </td>
            <td>{when(h.last_contact_at)}</td>
            <td>{h.backends.map((b) => b.backend).join(', ')}</td>
          </tr>
        ))}
      </Table>
      {pager}
    </>
  );
}
