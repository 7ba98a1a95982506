'use client';
import { VOLUME_STATES, type VolumeState } from '@stowage/api/console';
import Link from 'next/link';
import { type FormEvent, useDeferredValue, useState } from 'react';
import { useAllHosts } from '../../lib/api/misc';
import { useAllTargets } from '../../lib/api/targets';
import { useCreateVolume, useVolumesPage } from '../../lib/api/volumes';
import { age, bytes } from '../../lib/format';
import { Choice, Cli, ErrorText, num, optionsOf, State, Table } from '../../lib/ui';

const SIZE_UNITS: Record<string, number> = { M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Volumes: filters by host, target, state and name, all the API's (so they hold across pages). */
export default function VolumesPage() {
  const [hostId, setHostId] = useState('');
  const [targetId, setTargetId] = useState('');
  const [state, setState] = useState('');
  const [search, setSearch] = useState('');
  // Typing asks the API once the input settles, not once per keystroke.
  const name = useDeferredValue(search.trim());
  const hosts = useAllHosts();
  const targets = useAllTargets();
  const filter = {
    ...(hostId ? { host_id: hostId } : {}),
    ...(targetId ? { backup_target_id: targetId } : {}),
    ...(state ? { state: state as VolumeState } : {}),
    ...(name ? { name } : {}),
  };
  const { items, query, pager } = useVolumesPage(filter);
  const hostName = (id: string | null) => hosts.data?.items.find((h) => h.id === id)?.name ?? '—';
  const now = Date.now();
  return (
    <>
      <h1>Volumes</h1>
      <form className="toolbar" aria-label="Filter volumes" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search by name
          <input type="search" value={search} onChange={(e) => setSearch(e.target.value)} />
        </label>
        <Choice
          label="Host"
          value={hostId}
          onChange={setHostId}
          none="any"
          options={optionsOf(hosts.data?.items)}
        />
        <Choice
          label="Target"
          value={targetId}
          onChange={setTargetId}
          none="any"
          options={optionsOf(targets.data?.items)}
        />
        <Choice label="State" value={state} onChange={setState} none="any" options={VOLUME_STATES} />
      </form>
      <Cli
        command={`manager volume list${hostId ? ` --host ${hostName(hostId)}` : ''}${state ? ` --state ${state}` : ''}${name ? ` --name '${name}'` : ''}`}
      />
      <ErrorText error={query.error} />
      <Table columns={['Name', 'Host', 'State', num('Size'), 'Schedule', 'Last backup']}>
        {items.map((v) => {
          const stale =
            v.last_backup_at !== null && now - new Date(v.last_backup_at).getTime() > 2 * 86_400_000;
          return (
            <tr key={v.id}>
              <td>
                <Link href={`/volume?id=${v.id}`}>{v.name}</Link>
              </td>
              <td>{hostName(v.host_id)}</td>
              <td>
                <State value={v.state} />
              </td>
              <td className="num">{bytes(v.size)}</td>
              <td>{v.schedule.cron ? `${v.schedule.cron} (${v.schedule.status})` : 'none'}</td>
              <td className={v.last_backup_at === null || stale ? 'error' : undefined}>
                {age(v.last_backup_at, now)}
              </td>
            </tr>
          );
        })}
      </Table>
      {query.isSuccess && items.length === 0 && <p>No volumes match.</p>}
      {pager}
      <NewVolume />
    </>
  );
}

function NewVolume() {
  const hosts = useAllHosts();
  const targets = useAllTargets();
  const create = useCreateVolume();
  const [cli, setCli] = useState('manager volume create NAME --host HOST --size 1G');
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const size = String(form.get('size')).trim().toUpperCase();
    const match = /^(\d+)([MGT])?$/.exec(size);
    const n = match ? Number(match[1]) * (match[2] ? SIZE_UNITS[match[2]]! : 1) : Number.NaN;
    const target = String(form.get('target'));
    create.mutate(
      {
        name: String(form.get('name')),
        host_id: String(form.get('host')),
        backend: 'local-file',
        size: n,
        snapshot: form.get('snapshot') === 'copy' ? 'copy' : true,
        ...(target ? { backup_target_id: target } : {}),
      },
      { onSuccess: (volume) => window.location.assign(`/volume?id=${volume.id}`) },
    );
  };
  const update = (event: FormEvent<HTMLFormElement>) => {
    const form = new FormData(event.currentTarget);
    const host = hosts.data?.items.find((h) => h.id === form.get('host'))?.name ?? 'HOST';
    const target = targets.data?.items.find((t) => t.id === form.get('target'))?.name;
    setCli(
      `manager volume create ${form.get('name') || 'NAME'} --host ${host} --size ${form.get('size') || '1G'}${target ? ` --target ${target}` : ''}`,
    );
  };
  return (
    <section>
      <h2>New volume</h2>
      <form className="inline" onSubmit={submit} onChange={update} aria-label="New volume">
        <label>
          Name
          <input name="name" required pattern="[A-Za-z0-9_][A-Za-z0-9._-]*" />
        </label>
        <label>
          Host
          <select name="host" required>
            {hosts.data?.items.map((h) => (
              <option key={h.id} value={h.id}>
                {h.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Size (e.g. 64M, 10G)
          <input name="size" required defaultValue="64M" />
        </label>
        <label>
          Target
          <select name="target">
            <option value="">none</option>
            {targets.data?.items.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Snapshot
          <select name="snapshot" defaultValue="copy">
            <option value="snapshot">reflink (fails without one)</option>
            <option value="copy">reflink or copy</option>
          </select>
        </label>
        <button type="submit" disabled={create.isPending}>
          Create volume
        </button>
      </form>
      <Cli command={cli} />
      <ErrorText error={create.error} />
    </section>
  );
}
