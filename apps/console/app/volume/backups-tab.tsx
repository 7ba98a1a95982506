'use client';
import {
  type ManagedBackup,
  type ManagedJob,
  type ManagedVolume,
  VERIFY_STATES,
  type VerifyState,
} from '@stowage/api/console';
import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { type FormEvent, useEffect, useState } from 'react';
import { useBackupsPage, useDeleteBackup, useRestore } from '../../lib/api/backups';
import { useAllHosts } from '../../lib/api/misc';
import { useBackupNow, useVolume } from '../../lib/api/volumes';
import { bytes, when } from '../../lib/format';
import { LiveJob } from '../../lib/live-job';
import { Choice, Cli, Dialog, ErrorText, num, optionsOf, State, Table } from '../../lib/ui';

export function BackupsTab({ volume }: { volume: ManagedVolume }) {
  const [verifyState, setVerifyState] = useState('');
  const { items, query, pager } = useBackupsPage(
    volume.id,
    (verifyState || undefined) as VerifyState | undefined,
  );
  const backupNow = useBackupNow(volume.id);
  const [job, setJob] = useState<ManagedJob>();
  const [deleting, setDeleting] = useState<ManagedBackup>();
  const [restoring, setRestoring] = useState<ManagedBackup>();
  return (
    <>
      <div className="toolbar">
        <button
          type="button"
          disabled={backupNow.isPending}
          onClick={() => backupNow.mutate(undefined, { onSuccess: (started) => setJob(started.job) })}
        >
          Back up now
        </button>
        <Cli command={`manager backup now ${volume.id} --watch`} />
        <Choice
          label="Verified"
          value={verifyState}
          onChange={setVerifyState}
          none="any"
          options={VERIFY_STATES}
        />
      </div>
      <ErrorText error={backupNow.error} />
      {job && <LiveJob job={job} />}
      <ErrorText error={query.error} />
      <Table
        columns={['Started', 'State', num('Size'), num('Uploaded'), num('Duration'), 'Verified', 'Actions']}
        caption="Backups, newest first"
      >
        {items.map((b) => (
          <tr key={b.id}>
            <td>{when(b.started_at)}</td>
            <td>
              <State value={b.state} />
              {b.error && <div className="error">{b.error.message}</div>}
            </td>
            <td className="num">{bytes(b.size)}</td>
            <td className="num">{bytes(b.bytes_uploaded)}</td>
            <td className="num">
              {b.duration_seconds === null ? '—' : `${b.duration_seconds.toFixed(1)} s`}
            </td>
            <td>{b.verification.state}</td>
            <td>
              <button
                type="button"
                className="secondary"
                disabled={b.state !== 'completed'}
                onClick={() => setRestoring(b)}
              >
                Restore…
              </button>{' '}
              <button
                type="button"
                className="danger"
                disabled={b.state === 'running'}
                onClick={() => setDeleting(b)}
              >
                Delete…
              </button>
            </td>
          </tr>
        ))}
      </Table>
      {query.isSuccess && items.length === 0 && <p>No backups yet.</p>}
      {pager}
      {deleting && <DeleteDialog backup={deleting} onClose={() => setDeleting(undefined)} />}
      {restoring && (
        <RestoreDialog backup={restoring} volume={volume} onClose={() => setRestoring(undefined)} />
      )}
    </>
  );
}

function DeleteDialog({ backup, onClose }: { backup: ManagedBackup; onClose: () => void }) {
  const remove = useDeleteBackup();
  return (
    <Dialog open title="Delete this backup?" onClose={onClose}>
      <p>
        The backup of {when(backup.started_at)} ({bytes(backup.size)}) will be gone for good; its chunks are
        freed by the next garbage collection.
      </p>
      <Cli command={`manager backup delete ${backup.id}`} />
      <ErrorText error={remove.error} />
      <div className="toolbar">
        <button
          type="button"
          className="danger"
          onClick={() => remove.mutate(backup.id, { onSuccess: onClose })}
        >
          Delete backup
        </button>
        <button type="button" className="secondary" onClick={onClose}>
          Cancel
        </button>
      </div>
    </Dialog>
  );
}

function RestoreDialog({
  backup,
  volume,
  onClose,
}: {
  backup: ManagedBackup;
  volume: ManagedVolume;
  onClose: () => void;
}) {
  const hosts = useAllHosts();
  const restore = useRestore();
  const [name, setName] = useState(`${volume.name}-restored`);
  const [hostId, setHostId] = useState(volume.host_id ?? '');
  const started = restore.data;
  const fresh = useVolume(started?.volume.id ?? null);
  const router = useRouter();
  const ready = fresh.data?.state === 'available' ? fresh.data.id : undefined;
  // The new volume opens by itself once its restore is done (the link below stays for a slow browser).
  useEffect(() => {
    if (ready !== undefined) router.push(`/volume?id=${ready}`);
  }, [ready, router]);
  const host = hosts.data?.items.find((h) => h.id === hostId)?.name ?? 'HOST';
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    restore.mutate({ id: backup.id, body: { name, ...(hostId ? { host_id: hostId } : {}) } });
  };
  return (
    <Dialog open title="Restore onto a new volume" onClose={onClose}>
      {!started && (
        <form onSubmit={submit} className="inline" aria-label="Restore">
          <Choice label="Host" value={hostId} onChange={setHostId} options={optionsOf(hosts.data?.items)} />
          <label>
            New volume name
            <input value={name} onChange={(e) => setName(e.target.value)} required />
          </label>
          <button type="submit" disabled={restore.isPending}>
            Restore
          </button>
        </form>
      )}
      <Cli command={`manager backup restore ${backup.id} --host ${host} --name ${name} --watch`} />
      <ErrorText error={restore.error} />
      {started && <LiveJob job={started.job} />}
      {fresh.data?.state === 'available' && (
        <p>
          Ready: <Link href={`/volume?id=${fresh.data.id}`}>open volume {fresh.data.name}</Link>
        </p>
      )}
      {fresh.data?.state === 'failed' && <ErrorText error={fresh.data.error ?? 'the restore failed'} />}
      <button type="button" className="secondary" onClick={onClose}>
        Close
      </button>
    </Dialog>
  );
}
