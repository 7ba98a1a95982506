import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type ApiError, type ManagerClient, manifestKeyOf } from '@stowage/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertBackup } from './db/backups.js';
import { insertHost } from './db/hosts.js';
import { insertVolume } from './db/volumes.js';
import { scheduleOnce } from './loops/scheduler.js';
import type { RunningManager } from './server.js';
import { startTestManager, type TestManager } from './testing/manager.js';

describe('schedules, retention and the scheduler', () => {
  let system: TestManager;
  let home: string;
  let manager: RunningManager;
  let client: ManagerClient;
  let volumeId: string;
  let targetId: string;

  beforeAll(async () => {
    system = await startTestManager({ prefix: 'schedules' });
    ({ home, manager, admin: client } = system);
    const { db } = manager.ctx;
    mkdirSync(join(home, 'repo'));
    targetId = (
      await client.createTarget({ kind: 'filesystem', name: 'fs', filesystem: { path: join(home, 'repo') } })
    ).target.id;
    const hostId = randomUUID();
    // An agent nobody runs: backups the scheduler starts fail at once, which is what the scheduler test needs.
    await insertHost(db, {
      id: hostId,
      name: 'gone',
      url: 'http://127.0.0.1:9',
      agentToken: manager.ctx.secrets.sealText('x'.repeat(32), `host.agent_token:${hostId}`),
      backends: [],
      now: new Date(),
    });
    volumeId = randomUUID();
    await insertVolume(db, {
      id: volumeId,
      name: 'v',
      host_id: hostId,
      backend: 'local-file',
      locator: '/v/v.img',
      size: 1 << 20,
      state: 'available',
      backup_target_id: targetId,
    });
  }, 60_000);
  afterAll(async () => {
    await system?.stop();
  });

  it('refuses a bad cron with the parser’s reason and a bad zone, changing nothing', async () => {
    for (const [body, field] of [
      [{ cron: '61 * * * *' }, 'cron'],
      [{ cron: '0 0 * * * *' }, 'cron'],
      [{ cron: '0 2 * * *', timezone: 'Mars/Olympus' }, 'timezone'],
    ] as const) {
      const error = (await client.updateBackupSchedule(volumeId, body).catch((e: unknown) => e)) as ApiError;
      expect(error.code, JSON.stringify(body)).toBe('invalid_request');
      expect(JSON.stringify(error.details)).toContain(field);
    }
    expect((await client.getVolume(volumeId)).schedule).toMatchObject({
      cron: null,
      enabled: false,
      status: 'unscheduled',
    });
  });

  it('sets a schedule, shows its next fire time and previews the next ones', async () => {
    const volume = await client.updateBackupSchedule(volumeId, {
      cron: '30 2 * * *',
      timezone: 'Europe/Berlin',
    });
    expect(volume.schedule).toMatchObject({
      cron: '30 2 * * *',
      timezone: 'Europe/Berlin',
      enabled: true,
      status: 'waiting',
    });
    const next = new Date(volume.schedule.next_fire_at!);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    const preview = await client.previewBackupSchedule(volumeId, { count: 5 });
    expect(preview.fire_times).toHaveLength(5);
    expect(preview.fire_times[0]).toBe(volume.schedule.next_fire_at);
    for (let i = 1; i < 5; i++)
      expect(Date.parse(preview.fire_times[i]!)).toBeGreaterThan(Date.parse(preview.fire_times[i - 1]!));
    const other = await client.previewBackupSchedule(volumeId, {
      count: 2,
      cron: '0 * * * *',
      timezone: 'UTC',
    });
    expect(Date.parse(other.fire_times[1]!) - Date.parse(other.fire_times[0]!)).toBe(3600_000);
    // A partial update keeps the rest.
    const off = await client.updateBackupSchedule(volumeId, { enabled: false });
    expect(off.schedule).toMatchObject({
      cron: '30 2 * * *',
      timezone: 'Europe/Berlin',
      enabled: false,
      status: 'disabled',
    });
  });

  it('prunes with restic’s rules: a dry run says what would go and why, changing nothing; then it goes', async () => {
    const { db } = manager.ctx;
    const days = ['2026-11-01', '2026-11-02', '2026-11-02', '2026-11-03', '2026-11-04'];
    const ids: string[] = [];
    for (const [i, day] of days.entries()) {
      const id = randomUUID();
      ids.push(id);
      await insertBackup(db, {
        id,
        volume_id: volumeId,
        backup_target_id: targetId,
        state: 'completed',
        manifest_key: manifestKeyOf(volumeId, id),
        started_at: new Date(`${day}T0${i}:00:00Z`),
        finished_at: new Date(`${day}T0${i}:30:00Z`),
        size: 1 << 20,
      });
    }
    const failed = randomUUID();
    await insertBackup(db, {
      id: failed,
      volume_id: volumeId,
      backup_target_id: targetId,
      state: 'failed',
      manifest_key: manifestKeyOf(volumeId, failed),
      started_at: new Date('2026-11-05T00:00:00Z'),
    });
    const noPolicy = (await client
      .pruneVolume(volumeId, { dry_run: 'true' })
      .catch((e: unknown) => e)) as ApiError;
    expect(noPolicy.code).toBe('conflict');
    await client.updateBackupSchedule(volumeId, { retention: { keep_daily: 2, keep_last: 1 } });
    const plan = await client.pruneVolume(volumeId, { dry_run: 'true' });
    expect(plan.dry_run).toBe(true);
    expect(plan.keep.map((k) => [k.backup_id, k.reasons])).toEqual([
      [ids[4], ['last snapshot', 'daily snapshot']],
      [ids[3], ['daily snapshot']],
    ]);
    expect(plan.remove.map((r) => r.backup_id).sort()).toEqual([ids[0], ids[1], ids[2]].sort());
    expect(plan.ignored).toEqual([{ backup_id: failed, state: 'failed' }]);
    expect(plan.deleted).toBe(0);
    expect((await client.listBackups({ volume_id: volumeId })).items).toHaveLength(6);
    // A policy not saved yet can be previewed, but not applied.
    const preview = await client.pruneVolume(volumeId, { dry_run: 'true' }, { retention: { keep_last: 3 } });
    expect(preview.remove).toHaveLength(2);
    expect(
      (
        (await client
          .pruneVolume(volumeId, {}, { retention: { keep_last: 3 } })
          .catch((e: unknown) => e)) as ApiError
      ).code,
    ).toBe('invalid_request');
    const applied = await client.pruneVolume(volumeId);
    expect(applied.deleted).toBe(3);
    expect((await client.listBackups({ volume_id: volumeId })).items.map((b) => b.id).sort()).toEqual(
      [ids[3], ids[4], failed].sort(),
    );
  });

  it('starts a due backup once: a failed start waits for the next slot instead of retrying every tick', async () => {
    const { ctx } = manager;
    await client.updateBackupSchedule(volumeId, { cron: '* * * * *', timezone: 'UTC', enabled: true });
    // schedule_since is now; a minute later the first slot has passed.
    const later = { ...ctx, now: () => new Date(Date.now() + 61_000) };
    const first = await scheduleOnce(later);
    expect(first).toMatchObject({ started: 0, failed: 1 });
    const jobs = (await client.listJobs({ volume_id: volumeId })).items;
    expect(jobs[0]).toMatchObject({ state: 'failed', error: { code: 'unavailable' } });
    expect(await scheduleOnce(later)).toMatchObject({ started: 0, failed: 0 });
    expect((await client.listJobs({ volume_id: volumeId })).items).toHaveLength(jobs.length);
  });
});
