import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { ApiError, type ManagedBackup, type ManagedJob, type ManagerClient } from '@stowage/api';
import { type ObjectStore, openObjectStore } from '@stowage/object-store';
import { startS3rver, type TestS3Server } from '@stowage/object-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertJob } from './db/jobs.js';
import { verifyScheduleOnce } from './loops/verify.js';
import { runCli } from './testing/cli.js';
import { startTestSystem, type TestSystem } from './testing/embedded.js';

const MiB = 1024 * 1024;
const DAY = 86_400_000;

const cli = (argv: string[], env: NodeJS.ProcessEnv = {}) => runCli(argv, env);

async function waitForJob(client: ManagerClient, id: string): Promise<ManagedJob> {
  for await (const _ of client.jobEvents(id));
  return client.getJob(id);
}

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

async function keys(store: ObjectStore, prefix: string): Promise<Set<string>> {
  const found = new Set<string>();
  for await (const info of store.list(prefix)) found.add(info.key);
  return found;
}

/**
 * Verify jobs through the real parts: a manager on PGlite, its real `agent serve` process, s3rver. Two
 * backups of one volume share packs; one of those packs is deleted from the bucket; a verify of the second
 * backup marks both damaged in the API, and a backup of another volume, which does not use the pack, stays
 * as it was.
 */
describe('verify jobs', () => {
  let system: TestSystem;
  let s3: TestS3Server;
  let store: ObjectStore;
  let client: ManagerClient;
  let targetId: string;
  let first: ManagedBackup;
  let second: ManagedBackup;
  let other: ManagedBackup;
  let lost: string[];

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ['verify'] });
    system = await startTestSystem();
    client = system.client;
    store = openObjectStore(
      `s3://verify/repo?endpoint=${encodeURIComponent(s3.endpoint)}&region=us-east-1&path_style=true`,
      { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
    );
    const created = await client.createTarget({
      kind: 's3',
      name: 'verify-s3',
      s3: { endpoint: s3.endpoint, bucket: 'verify', prefix: 'repo', path_style: true },
      credentials: { access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey },
    });
    targetId = created.target.id;
    const [host] = (await client.listHosts()).items;
    const volume = (name: string, size: number) =>
      client.createVolume({
        name,
        host_id: host!.id,
        backend: 'local-file',
        size,
        backup_target_id: targetId,
        snapshot: 'copy',
      });
    const backUp = async (volumeId: string) => {
      const started = await client.backupNow(volumeId);
      const job = await waitForJob(client, started.job.id);
      expect(job.state, JSON.stringify(job.error)).toBe('succeeded');
      return client.getBackup(started.backup.id);
    };
    const a = await volume('verify-a', 8 * MiB);
    writeFileSync(a.locator!, randomBytes(8 * MiB));
    first = await backUp(a.id);
    const firstPacks = await keys(store, 'packs/');
    // The second backup rewrites the last MiB only: the rest it names in the first backup's packs.
    const fd = openSync(a.locator!, 'r+');
    writeSync(fd, randomBytes(MiB), 0, MiB, 7 * MiB);
    closeSync(fd);
    second = await backUp(a.id);
    expect(second.chunks_new).toBeLessThan(second.chunks!);
    const b = await volume('verify-b', 2 * MiB);
    writeFileSync(b.locator!, randomBytes(2 * MiB));
    other = await backUp(b.id);
    lost = [...firstPacks];
    expect(lost.length).toBeGreaterThan(0);
  }, 180_000);

  afterAll(async () => {
    (store as { destroy?: () => void } | undefined)?.destroy?.();
    await system?.stop();
    await s3?.stop();
  });

  it('start unverified, and refuse a bad sample, an unknown backup, a second verify at once', async () => {
    expect(first.verification).toEqual({
      state: 'unverified',
      verified_at: null,
      sample_percent: null,
      damaged_chunks: null,
      damage_found_at: null,
      job_id: null,
      error: null,
    });
    for (const sample of ['0', '-5', '100.5', 'ten', '']) {
      const error = await apiError(
        client.request('verifyBackup', { params: { id: first.id }, query: { sample: sample as never } }),
      );
      expect(error.code, sample).toBe('invalid_request');
      expect(error.message).toContain('sample');
    }
    expect((await apiError(client.verifyBackup(first.id, { host_id: 'nope' }))).code).toBe('invalid_request');
    expect((await apiError(client.verifyBackup(crypto.randomUUID()))).code).toBe('not_found');
    // None of that started anything.
    expect((await client.listJobs({ kind: 'verify' })).items).toEqual([]);

    const started = await client.verifyBackup(other.id, { sample: 50 });
    const again = await client.verifyBackup(other.id).then(
      () => undefined,
      (e: unknown) => e as ApiError,
    );
    // The first may already be done on a fast machine; if not, the second is refused naming it.
    if (again !== undefined) {
      expect(again.code).toBe('conflict');
      expect(again.details).toMatchObject({ job_id: started.job.id });
    }
    expect((await waitForJob(client, started.job.id)).state).toBe('succeeded');
    const jobs = (await client.listJobs({ kind: 'verify' })).items;
    await Promise.all(jobs.map((job) => waitForJob(client, job.id)));
  });

  it('verify a healthy backup with a sample: ok, with the share read and when', async () => {
    const before = Date.now();
    const started = await client.verifyBackup(other.id, { sample: 10 });
    expect(started.job).toMatchObject({ kind: 'verify', backup_id: other.id, volume_id: other.volume_id });
    expect(started.backup.id).toBe(other.id);
    const job = await waitForJob(client, started.job.id);
    expect(job.state, JSON.stringify(job.error)).toBe('succeeded');
    const verified = await client.getBackup(other.id);
    expect(verified.verification).toMatchObject({
      state: 'ok',
      sample_percent: 10,
      damaged_chunks: null,
      job_id: started.job.id,
      error: null,
    });
    expect(Date.parse(verified.verification.verified_at!)).toBeGreaterThanOrEqual(before - 1000);
  });

  it('find a deleted pack two backups share and mark both damaged, the other backup not', async () => {
    for (const key of lost) await store.delete(key);
    const started = await client.verifyBackup(second.id);
    const job = await waitForJob(client, started.job.id);
    expect(job.state, JSON.stringify(job.error)).toBe('succeeded');

    const verified = await client.getBackup(second.id);
    expect(verified.verification).toMatchObject({ state: 'damaged', sample_percent: 100, job_id: job.id });
    expect(verified.verification.damaged_chunks).toBeGreaterThan(0);
    expect(verified.verification.verified_at).not.toBeNull();
    expect(verified.verification.damage_found_at).toBe(verified.verification.verified_at);

    // The first backup was never verified itself; the second's verify found it names the lost pack.
    const marked = await client.getBackup(first.id);
    expect(marked.verification).toMatchObject({ state: 'damaged', verified_at: null, job_id: job.id });
    expect(marked.verification.damaged_chunks).toBeGreaterThanOrEqual(verified.verification.damaged_chunks!);
    expect(marked.verification.damage_found_at).not.toBeNull();

    const untouched = await client.getBackup(other.id);
    expect(untouched.verification.state).toBe('ok');
    expect(untouched.verification.job_id).not.toBe(job.id);
    // The bucket says so too: both damaged backups have damage records (docs/format.md §12).
    expect(await keys(store, 'damage/')).toEqual(
      new Set([`damage/${first.volume_id}/${first.id}`, `damage/${second.volume_id}/${second.id}`]),
    );
  });

  it('`manager backup verify --watch` exits 1 for a damaged backup and 0 for a whole one', async () => {
    const env = { MANAGER_URL: system.embedded.manager.url, MANAGER_TOKEN: system.embedded.adminToken };
    const damaged = await cli(['backup', 'verify', second.id, '--watch'], env);
    expect(damaged.code, damaged.stderr).toBe(1);
    expect(damaged.stdout).toMatch(
      new RegExp(`backup ${second.id}: DAMAGED: \\d+ chunk\\(s\\) missing or corrupt`),
    );
    const whole = await cli(['backup', 'verify', other.id, '--sample', '10', '--watch', '--json'], env);
    expect(whole.code, whole.stderr).toBe(0);
    expect(JSON.parse(whole.stdout.trim().split('\n').at(-1)!)).toMatchObject({
      state: 'ok',
      sample_percent: 10,
    });
    expect((await cli(['backup', 'verify', other.id, '--sample', '0'], env)).code).toBe(2);
    // What will not restore whole is one query away, in the API and the CLI.
    const ids = async (verify_state: 'ok' | 'damaged' | 'unverified') =>
      (await client.listBackups({ verify_state })).items.map((b) => b.id).sort();
    expect(await ids('damaged')).toEqual([first.id, second.id].sort());
    expect(await ids('ok')).toEqual([other.id]);
    expect(await ids('unverified')).toEqual([]);
    const listed = await cli(['backup', 'list', '--verify-state', 'damaged', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(
      JSON.parse(listed.stdout)
        .items.map((b: { id: string }) => b.id)
        .sort(),
    ).toEqual([first.id, second.id].sort());
    const wrong = await cli(['backup', 'list', '--verify-state', 'broken'], env);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/verify-state.*unverified, ok, damaged/);
  });

  it('re-verify on the target schedule the backups not verified within the period', async () => {
    await client.updateTarget(targetId, { verify_every_days: 1, verify_sample_percent: 25 });
    const ctx = system.embedded.manager.ctx;
    // Now nothing is due: the newest verify or backup is minutes old.
    expect((await verifyScheduleOnce(ctx)).started).toBe(0);
    // Two days on (a fake clock), every backup is due; one verify per host at a time, most overdue first:
    // the first backup, never verified.
    const later = { ...ctx, now: () => new Date(Date.now() + 2 * DAY) };
    const tick = await verifyScheduleOnce(later);
    expect(tick).toMatchObject({ candidates: 3, started: 1, deferred: 2, failed: 0 });
    // Newest first, whatever its state by now: a 25 % sample of a small backup can be done in milliseconds.
    const newestVerify = async () => (await client.listJobs({ kind: 'verify', limit: 1 })).items[0];
    const scheduled = await newestVerify();
    expect(scheduled?.backup_id).toBe(first.id);
    expect((await waitForJob(client, scheduled!.id)).state).toBe('succeeded');
    const reverified = await client.getBackup(first.id);
    expect(reverified.verification).toMatchObject({
      state: 'damaged',
      sample_percent: 25,
      job_id: scheduled!.id,
    });
    expect(reverified.verification.verified_at).not.toBeNull();
    // While a verify is in flight on the host, a tick starts nothing more there. The real one may be over
    // already, so a verify row in flight on that host stands in for it (the loop counts rows, not agents).
    const inFlight = randomUUID();
    await insertJob(ctx.db, { id: inFlight, kind: 'verify', state: 'running', host_id: scheduled!.host_id });
    expect((await verifyScheduleOnce(later)).started).toBe(0);
    await ctx.db.updateTable('job').set({ state: 'failed' }).where('id', '=', inFlight).execute();
    // The next tick takes the next most overdue: the backup verified longest ago (the fake clock is two days
    // on, so all three are due again, the one just verified last).
    const next = await verifyScheduleOnce(later);
    expect(next.started).toBe(1);
    const second2 = await newestVerify();
    expect(second2?.id).not.toBe(scheduled!.id);
    expect(second2?.backup_id).not.toBe(first.id);
    await waitForJob(client, second2!.id);
  });
});
