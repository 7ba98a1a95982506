'use client';
import type { ManagedVolume, RetentionPolicy } from '@stowage/api/console';
import cronstrue from 'cronstrue';
import { type FormEvent, useEffect, useMemo, useState } from 'react';
import { useRetentionPreview } from '../../lib/api/backups';
import { useSchedulePreview, useUpdateSchedule } from '../../lib/api/volumes';
import { when } from '../../lib/format';
import { Cli, ErrorText } from '../../lib/ui';

const KEEP_FIELDS = [
  'keep_last',
  'keep_hourly',
  'keep_daily',
  'keep_weekly',
  'keep_monthly',
  'keep_yearly',
] as const;

/** A value that settles: typing a cron expression asks the API once it stops changing. */
function useSettled<T>(value: T, ms = 400): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

function reading(cron: string): string {
  try {
    return cronstrue.toString(cron, { use24HourTimeFormat: true, verbose: true });
  } catch (error) {
    return `not a cron expression: ${String(error)}`;
  }
}

export function ScheduleTab({ volume }: { volume: ManagedVolume }) {
  const [cron, setCron] = useState(volume.schedule.cron ?? '0 2 * * *');
  const [timezone, setTimezone] = useState(volume.schedule.timezone);
  const [enabled, setEnabled] = useState(volume.schedule.enabled || volume.schedule.cron === null);
  const [keep, setKeep] = useState<Record<string, string>>(() => {
    const r = volume.schedule.retention ?? {};
    return Object.fromEntries(
      [...KEEP_FIELDS, 'keep_within'].map((k) => [k, String((r as Record<string, unknown>)[k] ?? '')]),
    );
  });
  const zones = useMemo(() => ['UTC', ...Intl.supportedValuesOf('timeZone').filter((z) => z !== 'UTC')], []);
  const settledCron = useSettled(cron);
  const preview = useSchedulePreview(volume.id, settledCron, timezone);
  const retention = useMemo((): RetentionPolicy | undefined => {
    const policy: Record<string, number | string> = {};
    for (const k of KEEP_FIELDS) if (keep[k]) policy[k] = Number(keep[k]);
    if (keep.keep_within) policy.keep_within = keep.keep_within;
    return Object.keys(policy).length > 0 ? (policy as RetentionPolicy) : undefined;
  }, [keep]);
  const settledRetention = useSettled(retention);
  const dryRun = useRetentionPreview(volume.id, settledRetention);
  const save = useUpdateSchedule(volume.id);

  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    save.mutate({ cron, timezone, enabled, retention: retention ?? null });
  };
  const keeps = Object.entries(retention ?? {})
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => ` --${key.replace('_', '-')} ${value}`)
    .join('');
  const cli = `manager volume schedule ${volume.id} --cron '${cron}' --timezone ${timezone} ${enabled ? '--enable' : '--disable'}${keeps || ' --no-retention'}`;
  return (
    <form onSubmit={submit} aria-label="Schedule and retention">
      <div className="grid2">
        <fieldset>
          <legend>Schedule</legend>
          <label>
            Cron expression (minute hour day month weekday)
            <input value={cron} onChange={(e) => setCron(e.target.value)} aria-describedby="cron-reading" />
          </label>
          <p id="cron-reading" aria-live="polite">
            {reading(cron)}
          </p>
          <label>
            Time zone
            <select value={timezone} onChange={(e) => setTimezone(e.target.value)}>
              {zones.map((z) => (
                <option key={z}>{z}</option>
              ))}
            </select>
          </label>
          <label className="check">
            <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
            Enabled
          </label>
          <h3>Next five backups</h3>
          <ErrorText error={preview.error} />
          <ol aria-label="Next fire times">
            {preview.data?.fire_times.map((t) => (
              <li key={t}>{when(t)}</li>
            ))}
          </ol>
        </fieldset>
        <fieldset>
          <legend>Retention</legend>
          {KEEP_FIELDS.map((k) => (
            <label key={k}>
              {k.replace('_', ' ')}
              <input
                type="number"
                min={0}
                value={keep[k]}
                onChange={(e) => setKeep((old) => ({ ...old, [k]: e.target.value }))}
              />
            </label>
          ))}
          <label>
            keep within (e.g. 30d, 1y6m)
            <input
              value={keep.keep_within}
              onChange={(e) => setKeep((old) => ({ ...old, keep_within: e.target.value }))}
            />
          </label>
          <h3>With this policy</h3>
          <ErrorText error={dryRun.error} />
          {!retention && <p className="muted">No policy: every backup is kept.</p>}
          {dryRun.data && (
            <p aria-live="polite">
              would keep <strong>{dryRun.data.keep.length}</strong>, would prune{' '}
              <strong>{dryRun.data.remove.length}</strong> backup(s)
              {dryRun.data.ignored.length > 0 &&
                ` (${dryRun.data.ignored.length} running or failed, never counted)`}
            </p>
          )}
        </fieldset>
      </div>
      <div className="toolbar">
        <button type="submit" disabled={save.isPending}>
          Save schedule
        </button>
        {save.isSuccess && <span role="status">Saved.</span>}
      </div>
      <ErrorText error={save.error} />
      <Cli command={cli} />
    </form>
  );
}
