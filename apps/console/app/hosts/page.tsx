'use client';
import { useHostsPage } from '../../lib/api/misc';
import { when } from '../../lib/format';
import { Cli, ErrorText, State } from '../../lib/ui';

export default function HostsPage() {
  const { items, query, pager } = useHostsPage();
  return (
    <>
      <h1>Hosts</h1>
      <Cli command="manager host add NAME --agent-url URL --agent-token-file FILE" />
      <ErrorText error={query.error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">URL</th>
            <th scope="col">Status</th>
            <th scope="col">Last contact</th>
            <th scope="col">Backends</th>
          </tr>
        </thead>
        <tbody>
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
        </tbody>
      </table>
      {pager}
    </>
  );
}
