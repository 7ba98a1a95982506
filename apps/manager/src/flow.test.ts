import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError, type ManagedJob, type ManagerClient } from '@stowage/api';
import { openObjectStore } from '@stowage/object-store';
import {
  cephUnavailableReason,
  startCeph,
  startS3rver,
  type TestS3Server,
} from '@stowage/object-store/testing';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTarget } from './db/targets.js';
import { secretPlace } from './secrets/envelope.js';
import { startTestSystem, type TestSystem } from './testing/embedded.js';
import { postgresUnavailableReason, startPostgres, type TestPostgres } from './testing/postgres.js';

const MiB = 1024 * 1024;

async function waitForJob(client: ManagerClient, id: string): Promise<ManagedJob> {
  let last: ManagedJob | undefined;
  for await (const job of client.jobEvents(id)) last = job;
  // The stream closes after a terminal state; a get confirms what it ended on.
  const job = await client.getJob(id);
  expect(last?.state).toBe(job.state);
  return job;
}

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

/** Every row of every table, as text: compared before and after a bad request to show nothing changed. */
async function snapshotDatabase(system: TestSystem): Promise<string> {
  const { db } = system.embedded.manager.ctx;
  const tables = ['host', 'api_token', 'backup_target', 'volume', 'job', 'backup'];
  const parts: string[] = [];
  for (const table of tables) {
    const rows = await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(table)} ORDER BY id`.execute(
      db,
    );
    // last_used_at and a host's last contact move with every authenticated call and agent answer.
    parts.push(
      JSON.stringify(rows.rows.map(({ last_used_at, last_contact_at, updated_at, ...rest }) => rest)),
    );
  }
  return parts.join('\n');
}

function describeFlow(
  name: string,
  databaseUrl: () => Promise<string | undefined>,
  startS3: () => Promise<TestS3Server> = () => startS3rver({ buckets: ['flow'] }),
) {
  describe(`the whole flow on ${name}`, () => {
    let system: TestSystem;
    let s3: TestS3Server;
    beforeAll(async () => {
      s3 = await startS3();
      const url = await databaseUrl();
      system = await startTestSystem(url === undefined ? {} : { databaseUrl: url });
    }, 120_000);
    afterAll(async () => {
      await system?.stop();
      await s3?.stop();
    });

    it('creates an S3 target, backs a volume up, restores it byte-exact and deletes the backup', async () => {
      const { client } = system;
      const created = await client.createTarget({
        kind: 's3',
        name: 'flow-s3',
        s3: { endpoint: s3.endpoint, bucket: 'flow', prefix: 'repo', path_style: true },
        credentials: { access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey },
      });
      expect(created.recovery_passphrase).toMatch(/^[0-9a-z]{5}(-[0-9a-z]{1,5}){5}$/);
      expect((await client.testTarget(created.target.id)).ok).toBe(true);

      const [host] = (await client.listHosts()).items;
      expect(host?.status).toBe('up');
      const volume = await client.createVolume({
        name: 'flow-data',
        host_id: host!.id,
        backend: 'local-file',
        size: 8 * MiB,
        backup_target_id: created.target.id,
        // /tmp may have no reflinks; the volume is idle while it is backed up.
        snapshot: 'copy',
      });
      expect(volume.state).toBe('available');
      const data = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(2 * MiB), randomBytes(3 * MiB)]);
      writeFileSync(volume.locator!, data);

      const started = await client.backupNow(volume.id);
      expect(started.backup.state).toBe('running');
      expect(started.backup.manifest_key).toBe(`manifests/${volume.id}/${started.backup.id}`);
      const done = await waitForJob(client, started.job.id);
      expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
      expect(done.progress.bytes_done).toBe(done.progress.bytes_total);
      const backup = await client.getBackup(started.backup.id);
      expect(backup).toMatchObject({ state: 'completed', size: 8 * MiB, error: null });
      expect(backup.bytes_uploaded).toBeGreaterThan(6 * MiB);
      expect(backup.chunks).toBeGreaterThan(0);
      expect((await client.getVolume(volume.id)).last_backup_id).toBe(backup.id);
      const usage = (await client.getTarget(created.target.id)).usage;
      expect(usage).toMatchObject({ backups: 1, logical_bytes: 8 * MiB });

      const restore = await client.restoreBackup(backup.id, { name: 'flow-restored' });
      expect(restore.volume).toMatchObject({ state: 'restoring', locator: null, name: 'flow-restored' });
      expect((await waitForJob(client, restore.job.id)).state).toBe('succeeded');
      const restored = await client.getVolume(restore.volume.id);
      expect(restored.state).toBe('available');
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      expect(sha(readFileSync(restored.locator!))).toBe(sha(data));

      // A restore the agent refuses at once leaves its new volume failed, with the cause.
      const refused = await apiError(
        client.restoreBackup(backup.id, { name: 'flow-nowhere', backend: 'block' }),
      );
      const orphan = (await client.listVolumes({ state: 'failed' })).items.find(
        (v) => v.name === 'flow-nowhere',
      );
      expect(orphan?.error?.code).toBe(refused.code);

      const store = openObjectStore(
        `s3://flow/repo?endpoint=${encodeURIComponent(s3.endpoint)}&region=us-east-1&path_style=true`,
        {
          credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
        },
      );
      expect(await store.head(backup.manifest_key)).toBeDefined();
      await client.deleteBackup(backup.id);
      expect(await store.head(backup.manifest_key)).toBeUndefined();
      expect((await apiError(client.getBackup(backup.id))).code).toBe('not_found');
      (store as { destroy?: () => void }).destroy?.();
    });

    it('runs one backup of a volume at a time: the second request is a 409 naming the running job', async () => {
      const { client } = system;
      const [host] = (await client.listHosts()).items;
      const [target] = (await client.listTargets()).items.filter((t) => t.name === 'local');
      const volume = await client.createVolume({
        name: 'flow-once',
        host_id: host!.id,
        backend: 'local-file',
        size: 4 * MiB,
        backup_target_id: target!.id,
        snapshot: 'copy',
      });
      const answers = await Promise.allSettled([client.backupNow(volume.id), client.backupNow(volume.id)]);
      const ok = answers.filter((a) => a.status === 'fulfilled');
      const refused = answers.filter((a): a is PromiseRejectedResult => a.status === 'rejected');
      expect(ok).toHaveLength(1);
      expect(refused).toHaveLength(1);
      const error = refused[0]!.reason as ApiError;
      expect(error.code).toBe('conflict');
      const winner = (ok[0] as PromiseFulfilledResult<Awaited<ReturnType<ManagerClient['backupNow']>>>).value;
      expect(error.details?.job_id).toBe(winner.job.id);
      expect((await waitForJob(client, winner.job.id)).state).toBe('succeeded');
    });

    it('refuses bad input with a 400 and changes nothing', async () => {
      const { client, embedded } = system;
      const before = await snapshotDatabase(system);
      const post = (path: string, body: string) =>
        fetch(`${embedded.manager.url}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${embedded.adminToken}`, 'content-type': 'application/json' },
          body,
        });
      const [host] = (await client.listHosts()).items;
      const cases: [string, string][] = [
        ['/v1/volumes', '{"name": "x", '],
        ['/v1/volumes', JSON.stringify({ name: 'x', host_id: host!.id, backend: 'local-file', size: -1 })],
        ['/v1/volumes', JSON.stringify({ name: 'x', host_id: 'not-a-uuid', backend: 'local-file', size: 1 })],
        [
          '/v1/volumes',
          JSON.stringify({ name: 'x', host_id: host!.id, backend: 'local-file', size: 1, extra: true }),
        ],
        [
          '/v1/backup_targets',
          JSON.stringify({ kind: 'filesystem', name: 'x', filesystem: { path: 'relative/dir' } }),
        ],
        [
          '/v1/backup_targets',
          JSON.stringify({
            kind: 's3',
            name: 'x',
            s3: { bucket: 'Bad_Bucket' },
            credentials: { access_key_id: 'a', secret_access_key: 'b' },
          }),
        ],
        ['/v1/volumes/not-a-uuid/backup', '{}'],
      ];
      for (const [path, body] of cases) {
        const response = await post(path, body);
        const answer = (await response.json()) as { code: string; message: string };
        expect(response.status, `${path} ${body}`).toBe(400);
        expect(answer.code).toBe('invalid_request');
        expect(answer.message.length).toBeGreaterThan(0);
      }
      const unknown = await fetch(`${embedded.manager.url}/v1/volumes?hots_id=x`, {
        headers: { authorization: `Bearer ${embedded.adminToken}` },
      });
      expect(unknown.status).toBe(400);
      expect(await snapshotDatabase(system)).toBe(before);
    });

    it('answers 401 without a valid token and 403 to an agent token on an admin route', async () => {
      const { embedded } = system;
      const url = `${embedded.manager.url}/v1/volumes`;
      expect((await fetch(url)).status).toBe(401);
      expect((await fetch(url, { headers: { authorization: 'Bearer stw_wrong' } })).status).toBe(401);
      const agentToken = readFileSync(join(system.home, 'agent', 'manager.token'), 'utf8').trim();
      const forbidden = await fetch(url, { headers: { authorization: `Bearer ${agentToken}` } });
      expect(forbidden.status).toBe(403);
      expect(((await forbidden.json()) as { code: string }).code).toBe('forbidden');
      expect((await fetch(`${embedded.manager.url}/healthz`)).status).toBe(200);
    });

    it('never logs or returns a secret', async () => {
      const { embedded, client } = system;
      const { ctx } = embedded.manager;
      const targets = (await client.listTargets()).items;
      const secrets = [
        embedded.adminToken,
        readFileSync(join(system.home, 'agent', 'agent.token'), 'utf8').trim(),
        readFileSync(join(system.home, 'agent', 'manager.token'), 'utf8').trim(),
      ];
      for (const t of targets) {
        const row = (await getTarget(ctx.db, t.id))!;
        secrets.push(
          Buffer.from(
            ctx.secrets.open(row.target_key, secretPlace('backup_target', 'target_key', row.id)),
          ).toString('base64'),
        );
      }
      secrets.push(readFileSync(join(system.home, 'recovery-passphrase'), 'utf8').trim());
      const answers = JSON.stringify([
        targets,
        await client.listHosts(),
        await client.listTokens(),
        await client.listVolumes(),
        await client.listBackups(),
        await client.listJobs(),
      ]);
      const logs = system.logs.join('') + system.agentLogs.join('');
      for (const secret of secrets) {
        expect(secret.length).toBeGreaterThan(15);
        expect(answers.includes(secret), 'a secret in an answer').toBe(false);
        expect(logs.includes(secret), 'a secret in the logs').toBe(false);
      }
    });

    it('fails a backup at once, with a 503, when the agent cannot be reached', async () => {
      const { client, embedded } = system;
      const [host] = (await client.listHosts()).items;
      const [target] = (await client.listTargets()).items.filter((t) => t.name === 'local');
      const volume = await client.createVolume({
        name: 'flow-down',
        host_id: host!.id,
        backend: 'local-file',
        size: MiB,
        backup_target_id: target!.id,
      });
      await embedded.agent.stop();
      const error = await apiError(client.backupNow(volume.id));
      expect(error.code).toBe('unavailable');
      expect(error.status).toBe(503);
      expect(error.message).toMatch(/agent at http:\/\/127\.0\.0\.1:\d+ is unreachable/);
      const jobs = (await client.listJobs({ volume_id: volume.id })).items;
      expect(jobs).toHaveLength(1);
      expect(jobs[0]).toMatchObject({ state: 'failed', error: { code: 'unavailable' } });
      const backups = (await client.listBackups({ volume_id: volume.id })).items;
      expect(backups[0]).toMatchObject({ state: 'failed' });
      expect((await client.getHost(host!.id)).status).toBe('down');
    });
  });
}

describeFlow('PGlite', async () => undefined);

// CI sets STOWAGE_REQUIRE_POSTGRES=1: there a missing PostgreSQL is a failure (testing/databases.ts has the test).
const unavailable = postgresUnavailableReason();
let server: TestPostgres | undefined;
describe.skipIf(unavailable !== undefined)(
  `PostgreSQL${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    afterAll(async () => server?.stop());
    describeFlow('PostgreSQL', async () => {
      server = await startPostgres();
      return server.createDatabase('flow');
    });
  },
);

// The real parts CI runs: PostgreSQL and Ceph RGW (STOWAGE_REQUIRE_CEPH=1 there makes a missing radosgw fail).
const cephUnavailable = await cephUnavailableReason();
const requireCeph = process.env.STOWAGE_REQUIRE_CEPH === '1';
describe.runIf(requireCeph && cephUnavailable !== undefined)(
  'the flow on Ceph RGW (required by STOWAGE_REQUIRE_CEPH=1)',
  () => {
    it('has radosgw installed', () => {
      expect.fail(`STOWAGE_REQUIRE_CEPH=1 but Ceph cannot run here: ${cephUnavailable}`);
    });
  },
);
let cephServer: TestPostgres | undefined;
describe.skipIf(unavailable !== undefined || cephUnavailable !== undefined)(
  `PostgreSQL and Ceph RGW${(unavailable ?? cephUnavailable) ? ` (skipped: ${unavailable ?? cephUnavailable})` : ''}`,
  () => {
    afterAll(async () => cephServer?.stop());
    describeFlow(
      'PostgreSQL and Ceph RGW',
      async () => {
        cephServer = await startPostgres();
        return cephServer.createDatabase('flow_ceph');
      },
      () => startCeph({ buckets: ['flow'] }),
    );
  },
);
