'use client';
import { useSearchParams } from 'next/navigation';
import { Suspense, useState } from 'react';
import { useAllTargets } from '../../lib/api/targets';
import { useVolume } from '../../lib/api/volumes';
import { bytes, when } from '../../lib/format';
import { ErrorText, State } from '../../lib/ui';
import { BackupsTab } from './backups-tab';
import { ScheduleTab } from './schedule-tab';

/** `/volume?id=…` (a query parameter, not a dynamic segment, so the static export has one page for all). */
export default function VolumePageRoute() {
  return (
    <Suspense fallback={<p>Loading…</p>}>
      <VolumePage />
    </Suspense>
  );
}

function VolumePage() {
  const id = useSearchParams().get('id');
  const volume = useVolume(id);
  const targets = useAllTargets();
  const [tab, setTab] = useState<'backups' | 'schedule'>('backups');
  if (id === null) return <p role="alert">No volume given (/volume?id=…).</p>;
  if (volume.error) return <ErrorText error={volume.error} />;
  if (!volume.data) return <p>Loading…</p>;
  const v = volume.data;
  const target = targets.data?.items.find((t) => t.id === v.backup_target_id);
  return (
    <>
      <h1>
        Volume {v.name} <State value={v.state} />
      </h1>
      <dl className="cards">
        <div className="card">
          <dt>Size</dt>
          <dd>{bytes(v.size)}</dd>
        </div>
        <div className="card">
          <dt>Target</dt>
          <dd>{target?.name ?? (v.backup_target_id ? v.backup_target_id : 'none')}</dd>
        </div>
        <div className="card">
          <dt>Last backup</dt>
          <dd>{when(v.last_backup_at)}</dd>
        </div>
        <div className="card">
          <dt>Next scheduled</dt>
          <dd>{when(v.schedule.next_fire_at)}</dd>
        </div>
      </dl>
      {v.error && <ErrorText error={v.error} />}
      <div className="tabs" role="tablist" aria-label="Volume">
        <button
          type="button"
          role="tab"
          id="tab-backups"
          aria-selected={tab === 'backups'}
          aria-controls="panel"
          onClick={() => setTab('backups')}
        >
          Backups
        </button>
        <button
          type="button"
          role="tab"
          id="tab-schedule"
          aria-selected={tab === 'schedule'}
          aria-controls="panel"
          onClick={() => setTab('schedule')}
        >
          Schedule and retention
        </button>
      </div>
      <div role="tabpanel" id="panel" aria-labelledby={`tab-${tab}`}>
        {tab === 'backups' ? <BackupsTab key={v.id} volume={v} /> : <ScheduleTab key={v.id} volume={v} />}
      </div>
    </>
  );
}
