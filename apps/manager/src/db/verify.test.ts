import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { describeOnDatabases } from '../testing/databases.js';
import { getBackup, insertBackup } from './backups.js';
import { type Db, uniqueViolation } from './conn.js';
import { insertHost } from './hosts.js';
import { insertJob } from './jobs.js';
import { insertTarget } from './targets.js';
import {
  backupsBeingVerified,
  recordVerifyChecked,
  recordVerifyFailed,
  runningVerifiesByHost,
  verifyCandidates,
} from './verify.js';
import { insertVolume } from './volumes.js';

const DAY = 86_400_000;
const T0 = new Date('2026-06-01T12:00:00Z');

async function seed(db: Db, verifyEveryDays: number | null) {
  const target = await insertTarget(db, {
    id: randomUUID(),
    name: `t-${randomUUID().slice(0, 8)}`,
    kind: 'filesystem',
    path: '/srv/backups',
    target_key: new Uint8Array(60),
    repository_id: randomUUID(),
    chunker: JSON.stringify({ min_size: 262144, avg_size: 1048576, max_size: 4194304 }),
    verify_every_days: verifyEveryDays,
    verify_sample_percent: 20,
  });
  const host = await insertHost(db, {
    id: randomUUID(),
    name: `h-${randomUUID().slice(0, 8)}`,
    url: 'http://127.0.0.1:1',
    agentToken: new Uint8Array(40),
    backends: [],
    now: T0,
  });
  const volume = await insertVolume(db, {
    id: randomUUID(),
    name: 'vol',
    host_id: host.id,
    backend: 'local-file',
    locator: `/images/${randomUUID()}.img`,
    size: 1 << 20,
    state: 'available',
    backup_target_id: target.id,
    created_at: T0,
    updated_at: T0,
  });
  const backup = async (finishedDaysAgo: number, fields: { verified_at?: Date } = {}) => {
    const id = randomUUID();
    const at = new Date(T0.getTime() - finishedDaysAgo * DAY);
    return insertBackup(db, {
      id,
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'completed',
      manifest_key: `manifests/${volume.id}/${id}`,
      started_at: at,
      finished_at: at,
      ...fields,
    });
  };
  return { target, host, volume, backup };
}

describeOnDatabases('verify records', (subject) => {
  it('mark the verified backup and the others it names, only in its own target', async () => {
    const { db } = subject().database;
    const a = await seed(db, null);
    const b = await seed(db, null);
    const verified = await a.backup(3);
    const sibling = await a.backup(2);
    const healthy = await a.backup(1);
    // Same ids named under another target's rows must not be touched: a verify speaks of its own bucket.
    const elsewhere = await b.backup(1);
    const jobId = randomUUID();
    await recordVerifyChecked(
      db,
      { id: jobId, backup_id: verified.id },
      {
        at: T0,
        samplePercent: 100,
        damagedChunks: 4,
        others: [
          { volume_id: a.volume.id, backup_id: sibling.id, damaged_chunks: 9, manifest_damaged: false },
          { volume_id: b.volume.id, backup_id: elsewhere.id, damaged_chunks: 1, manifest_damaged: false },
        ],
      },
    );
    expect(await getBackup(db, verified.id)).toMatchObject({
      verify_state: 'damaged',
      verified_at: T0,
      verify_sample_percent: 100,
      damaged_chunks: 4,
      damage_found_at: T0,
      verify_job_id: jobId,
    });
    expect(await getBackup(db, sibling.id)).toMatchObject({
      verify_state: 'damaged',
      verified_at: null,
      damaged_chunks: 9,
      damage_found_at: T0,
      verify_job_id: jobId,
    });
    expect(await getBackup(db, healthy.id)).toMatchObject({ verify_state: null, verify_job_id: null });
    expect(await getBackup(db, elsewhere.id)).toMatchObject({ verify_state: null, damaged_chunks: null });

    // Found again later: the first finding's time stays. Then repaired: ok, and the damage is gone.
    const later = new Date(T0.getTime() + DAY);
    await recordVerifyChecked(
      db,
      { id: randomUUID(), backup_id: verified.id },
      { at: later, samplePercent: 10, damagedChunks: 2, others: [] },
    );
    expect(await getBackup(db, verified.id)).toMatchObject({ damaged_chunks: 2, damage_found_at: T0 });
    await recordVerifyFailed(db, { id: jobId, backup_id: verified.id }, JSON.stringify({ code: 'internal' }));
    expect((await getBackup(db, verified.id))?.verify_error).toEqual({ code: 'internal' });
    await recordVerifyChecked(
      db,
      { id: randomUUID(), backup_id: verified.id },
      { at: later, samplePercent: 100, damagedChunks: null, others: [] },
    );
    expect(await getBackup(db, verified.id)).toMatchObject({
      verify_state: 'ok',
      damaged_chunks: null,
      damage_found_at: null,
      verify_error: null,
    });
  });

  it('list as due exactly the backups of scheduled targets not verified within the period', async () => {
    const { db } = subject().database;
    const weekly = await seed(db, 7);
    const unscheduled = await seed(db, null);
    const old = await weekly.backup(8);
    const recent = await weekly.backup(6);
    const verifiedLongAgo = await weekly.backup(30, { verified_at: new Date(T0.getTime() - 7 * DAY) });
    await weekly.backup(30, { verified_at: new Date(T0.getTime() - DAY) });
    await unscheduled.backup(100);
    // Oldest first, by the last verify or else the backup's end.
    const due = await verifyCandidates(db, T0, 100);
    expect(due.map((row) => row.backup_id)).toEqual([old.id, verifiedLongAgo.id]);
    expect(due[0]).toMatchObject({
      host_id: weekly.host.id,
      verify_every_days: 7,
      verify_sample_percent: 20,
    });
    expect((await verifyCandidates(db, new Date(T0.getTime() + DAY), 100)).map((r) => r.backup_id)).toEqual([
      old.id,
      verifiedLongAgo.id,
      recent.id,
    ]);
    expect(await verifyCandidates(db, T0, 1)).toHaveLength(1);
  });

  it('allow one verify of a backup at a time, counted per host', async () => {
    const { db } = subject().database;
    const { host, volume, backup } = await seed(db, null);
    const one = await backup(1);
    const job = (state: 'queued' | 'running' | 'succeeded') =>
      insertJob(db, {
        id: randomUUID(),
        kind: 'verify',
        state,
        host_id: host.id,
        volume_id: volume.id,
        backup_id: one.id,
      });
    await job('succeeded');
    await job('running');
    const second = await job('queued').then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(uniqueViolation(second)).toBe('job_one_verify');
    expect(await runningVerifiesByHost(db)).toEqual(new Map([[host.id, 1]]));
    expect(await backupsBeingVerified(db)).toEqual(new Set([one.id]));
  });
});
