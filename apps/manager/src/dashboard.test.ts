import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ApiError, ManagerClient } from '@stowage/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertBackup } from './db/backups.js';
import { insertHost } from './db/hosts.js';
import type { NewVolume } from './db/schema.js';
import { insertVolume } from './db/volumes.js';
import type { RunningManager } from './server.js';
import { startTestManager, type TestManager } from './testing/manager.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

/** GET /v1/dashboard over rows written straight into the database: one volume of each class. */
describe('the dashboard', () => {
  let system: TestManager;
  let home: string;
  let manager: RunningManager;
  let admin: ManagerClient;
  let viewer: ManagerClient;

  beforeAll(async () => {
    system = await startTestManager({ prefix: 'dashboard' });
    ({ home, manager, admin } = system);
    viewer = await system.clientFor('viewer');
  }, 60_000);
  afterAll(async () => {
    await system?.stop();
  });

  it('counts hosts, volumes by class, the last 24 h of backups and each target’s usage', async () => {
    const db = manager.ctx.db;
    const now = Date.now();
    const at = (ms: number) => new Date(now - ms);
    const { target } = await admin.createTarget({
      kind: 'filesystem',
      name: 'dir',
      filesystem: { path: join(home, 'repo') },
    });
    const host = await insertHost(db, {
      id: randomUUID(),
      name: 'h1',
      url: 'http://127.0.0.1:1',
      agentToken: new Uint8Array(40),
      backends: [],
      now: new Date(),
    });
    const down = await insertHost(db, {
      id: randomUUID(),
      name: 'h2',
      url: 'http://127.0.0.1:2',
      agentToken: new Uint8Array(40),
      backends: [],
      now: new Date(),
    });
    await db.updateTable('host').set({ status: 'down' }).where('id', '=', down.id).execute();

    const volume = async (name: string, extra: Partial<NewVolume> = {}) =>
      (
        await insertVolume(db, {
          id: randomUUID(),
          name,
          host_id: host.id,
          backend: 'local-file',
          locator: `/v/${name}`,
          size: 1000,
          state: 'available',
          backup_target_id: target.id,
          backup_cron: '0 * * * *',
          schedule_enabled: true,
          schedule_since: at(3 * 24 * HOUR),
          created_at: at(3 * 24 * HOUR),
          updated_at: at(3 * 24 * HOUR),
          ...extra,
        })
      ).id;
    const backup = (volumeId: string, state: 'completed' | 'failed', ago: number) =>
      insertBackup(db, {
        id: randomUUID(),
        volume_id: volumeId,
        backup_target_id: target.id,
        state,
        manifest_key: `manifests/${volumeId}/${randomUUID()}`,
        started_at: at(ago),
        finished_at: at(ago - MIN),
        size: state === 'completed' ? 1000 : null,
        bytes_uploaded: state === 'completed' ? 250 : null,
        chunks: state === 'completed' ? 10 : null,
        chunks_new: state === 'completed' ? 5 : null,
      });

    await backup(await volume('fresh'), 'completed', 5 * MIN); // protected
    await backup(await volume('late'), 'completed', 2 * 24 * HOUR); // overdue: its slots passed since
    const failing = await volume('failing');
    await backup(failing, 'completed', 2 * 24 * HOUR);
    await backup(failing, 'failed', HOUR);
    await backup(
      await volume('manual', { backup_cron: null, schedule_enabled: false }),
      'completed',
      30 * HOUR,
    );
    await volume('never'); // unprotected: scheduled, never backed up
    await volume('gone', { state: 'archived', locator: null });

    for (const resolved of [null, new Date()]) {
      await db
        .insertInto('alert')
        .values({
          id: randomUUID(),
          kind: 'backup_failed',
          subject_key: failing,
          severity: 'critical',
          message: 'the last backup failed',
          subject: JSON.stringify({ volume_id: failing }),
          opened_at: at(HOUR),
          last_seen_at: at(MIN),
          resolved_at: resolved,
        })
        .execute();
    }

    const dashboard = await viewer.request('getDashboard', {});
    expect(dashboard.hosts).toEqual({ up: 1, down: 1, unknown: 0 });
    expect(dashboard.volumes).toEqual({ total: 5, protected: 1, unprotected: 2, overdue: 1, failing: 1 });
    expect(dashboard.backups_24h).toEqual({
      completed: 1,
      failed: 1,
      running: 0,
      logical_bytes: 1000,
      uploaded_bytes: 250,
    });
    expect(dashboard.jobs).toEqual({ queued: 0, running: 0 });
    expect(dashboard.targets).toEqual([
      {
        id: target.id,
        name: 'dir',
        kind: 'filesystem',
        backups: 4,
        logical_bytes: 4000,
        stored_bytes: 1000,
        total_ratio: 4,
        dedup_ratio: 2,
        compression_ratio: 2,
      },
    ]);
    expect(dashboard.open_alerts).toBe(1);
  });

  it('needs a credential', async () => {
    const anonymous = new ManagerClient({ baseUrl: manager.url, token: 'stw_nobody' });
    await expect(anonymous.request('getDashboard', {})).rejects.toBeInstanceOf(ApiError);
  });
});
