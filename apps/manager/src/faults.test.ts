import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { ManagedJob, ManagerClient } from '@stowage/api';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { jsonLogger } from './log.js';
import { startManager } from './server.js';
import { startTestSystem, TEST_KDF, type TestSystem } from './testing/embedded.js';

const MiB = 1024 * 1024;

/** A volume big enough that its backup is still running when the test strikes. */
async function bigVolume(system: TestSystem, name: string) {
  const { client } = system;
  const [host] = (await client.listHosts()).items;
  const [target] = (await client.listTargets()).items;
  const volume = await client.createVolume({
    name,
    host_id: host!.id,
    backend: 'local-file',
    size: 768 * MiB,
    backup_target_id: target!.id,
    snapshot: false,
  });
  const fd = openSync(volume.locator!, 'r+');
  try {
    const block = randomBytes(8 * MiB);
    for (let offset = 0; offset < 768 * MiB; offset += block.length) {
      block.writeUInt32LE(offset, 0); // every block differs: nothing deduplicates
      writeSync(fd, block, 0, block.length, offset);
    }
  } finally {
    closeSync(fd);
  }
  return volume;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const running = (client: ManagerClient, id: string) => async (): Promise<ManagedJob | undefined> => {
  const job = await client.getJob(id);
  return job.state === 'running' && job.progress.bytes_done > 0 ? job : undefined;
};
const finished = (client: ManagerClient, id: string) => async (): Promise<ManagedJob | undefined> => {
  const job = await client.getJob(id);
  return ['succeeded', 'failed', 'cancelled'].includes(job.state) ? job : undefined;
};

describe('faults mid-job', () => {
  let system: TestSystem | undefined;
  afterEach(async () => {
    await system?.stop();
    system = undefined;
  });

  it('records a backup whose agent was killed as failed, with the cause, once the agent is back', async () => {
    system = await startTestSystem();
    const { client, embedded } = system;
    const volume = await bigVolume(system, 'killed');
    const { job, backup } = await client.backupNow(volume.id);
    await until('the backup to run', running(client, job.id));
    const pid = embedded.agent.pid()!;
    process.kill(pid, 'SIGKILL');
    // The supervisor restarts the agent; its journal makes it report the dead job failed.
    const ended = await until('the job to end', finished(client, job.id));
    expect(embedded.agent.pid()).not.toBe(pid);
    expect(ended.state).toBe('failed');
    expect(ended.error?.message).toMatch(/agent stopped while the job was running/);
    expect(await client.getBackup(backup.id)).toMatchObject({ state: 'failed' });
    // Nothing is left running: the next backup is accepted and completes.
    const again = await client.backupNow(volume.id);
    expect((await until('the re-run to end', finished(client, again.job.id))).state).toBe('succeeded');
  }, 180_000);

  it('completes a backup that finished while the manager was down, from the agent’s retried event', async () => {
    system = await startTestSystem();
    const { client, embedded } = system;
    const volume = await bigVolume(system, 'restarted');
    const { job, backup } = await client.backupNow(volume.id);
    await until('the backup to run', running(client, job.id));
    const port = new URL(embedded.manager.url).port;
    await embedded.manager.stop();
    // The agent finishes on its own meanwhile and keeps its result in its outbox until the manager answers.
    const config = parseConfig({ STOWAGE_HOME: system.home, PORT: port });
    const again = await startManager(config, { logger: jsonLogger({ write: () => {} }), kdf: TEST_KDF });
    try {
      const { ManagerClient } = await import('@stowage/api');
      const restarted = new ManagerClient({ baseUrl: again.url, token: embedded.adminToken });
      const ended = await until('the job to be recorded', finished(restarted, job.id), 120_000);
      expect(ended.state).toBe('succeeded');
      expect(await restarted.getBackup(backup.id)).toMatchObject({ state: 'completed', size: 768 * MiB });
    } finally {
      await again.stop();
    }
  }, 240_000);

  it('cancels a running backup through its agent: the job ends cancelled and the backup failed', async () => {
    system = await startTestSystem();
    const { client } = system;
    const volume = await bigVolume(system, 'cancelled');
    const { job, backup } = await client.backupNow(volume.id);
    await until('the backup to run', running(client, job.id));
    const answer = await client.cancelJob(job.id);
    expect(answer.id).toBe(job.id);
    const ended = await until('the job to end', finished(client, job.id));
    expect(ended).toMatchObject({ state: 'cancelled', error: { code: 'cancelled' } });
    expect(await client.getBackup(backup.id)).toMatchObject({
      state: 'failed',
      error: { code: 'cancelled' },
    });
    const again = (await client.cancelJob(job.id).catch((e: unknown) => e)) as { code?: string };
    expect(again.code).toBe('conflict');
  }, 180_000);
});
