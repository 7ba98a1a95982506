import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError, ManagerClient, managerOpenApiDocument } from '@stowage/api';
import {
  cephUnavailableReason,
  startCeph,
  startS3rver,
  type TestS3Server,
} from '@stowage/object-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertHost } from './db/hosts.js';
import { insertJob } from './db/jobs.js';
import type { RunningManager } from './server.js';
import { issueToken, startTestManager, type TestManager } from './testing/manager.js';

/** The API without an agent: targets, tokens, documents, metrics and job events posted by hand. */
describe('the manager API', () => {
  let system: TestManager;
  let home: string;
  let manager: RunningManager;
  let client: ManagerClient;
  let s3: TestS3Server;

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ['api'] });
    // No console here (console-assets.test.ts serves it): `/` is the API's index, built console or not.
    system = await startTestManager({
      prefix: 'api',
      env: (dir) => ({ MANAGER_CONSOLE_DIR: join(dir, 'no-console') }),
    });
    ({ home, manager, admin: client } = system);
  }, 60_000);
  afterAll(async () => {
    await system?.stop();
    await s3?.stop();
  });

  const s3Target = (
    name: string,
    overrides: { bucket?: string; secret?: string; endpoint?: string } = {},
  ) => ({
    kind: 's3' as const,
    name,
    s3: {
      endpoint: overrides.endpoint ?? s3.endpoint,
      bucket: overrides.bucket ?? 'api',
      prefix: name,
      path_style: true,
    },
    credentials: { access_key_id: s3.accessKeyId, secret_access_key: overrides.secret ?? s3.secretAccessKey },
  });

  it('answers GET / with an index of the API, without a token, when there is no console', async () => {
    const response = await fetch(`${manager.url}/`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ api: '/v1', openapi: '/v1/openapi.json' });
  });

  it('serves its OpenAPI document, the one generated from the route table', async () => {
    const served = await client.getOpenApi();
    expect(served).toEqual(JSON.parse(JSON.stringify(managerOpenApiDocument())));
  });

  it('refuses a bucket that already holds a repository, pointing at import', async () => {
    await client.createTarget({ ...s3Target('twice'), passphrase: 'a long passphrase' });
    const error = await client
      .createTarget({ ...s3Target('twice-again'), s3: s3Target('twice').s3 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).code).toBe('conflict');
    expect((error as ApiError).message).toMatch(/already holds a Stowage repository; import it/);
    expect((await client.listTargets()).items.map((t) => t.name)).toEqual(['twice']);
  });

  it('returns a generated passphrase once and a given one never', async () => {
    const generated = await client.createTarget(s3Target('generated'));
    expect(generated.recovery_passphrase).toEqual(expect.any(String));
    const given = await client.createTarget({
      ...s3Target('given'),
      passphrase: 'correct horse battery staple',
    });
    expect(given.recovery_passphrase).toBeNull();
    expect(JSON.stringify(await client.getTarget(given.target.id))).not.toContain('correct horse');
  });

  it('says precisely why a target cannot be used', async () => {
    const target = (await client.createTarget(s3Target('probe'))).target;
    expect(await client.testTarget(target.id)).toMatchObject({ ok: true, error: null });
    // The target is saved with its bucket; a target row pointing at a missing bucket or a dead endpoint:
    const { db } = manager.ctx;
    await db
      .updateTable('backup_target')
      .set({ bucket: 'no-such-bucket' })
      .where('id', '=', target.id)
      .execute();
    expect((await client.testTarget(target.id)).error).toMatchObject({
      cause: 'missing_bucket',
      s3_code: 'NoSuchBucket',
    });
    await db
      .updateTable('backup_target')
      .set({ bucket: 'api', endpoint: 'http://127.0.0.1:9' })
      .where('id', '=', target.id)
      .execute();
    expect((await client.testTarget(target.id)).error).toMatchObject({ cause: 'unreachable', s3_code: null });
    // A bucket emptied underneath: the probe passes but the repository is gone.
    await db
      .updateTable('backup_target')
      .set({ endpoint: s3.endpoint, prefix: 'elsewhere' })
      .where('id', '=', target.id)
      .execute();
    expect((await client.testTarget(target.id)).error).toMatchObject({ cause: 'not_a_repository' });
  });

  it('tests a location before any target is saved there, recording nothing', async () => {
    const before = (await client.listTargets()).items.length;
    const location = ({ kind, s3: where, credentials }: ReturnType<typeof s3Target>) => ({
      kind,
      s3: where,
      credentials,
    });
    const good = await client.testTargetLocation(location(s3Target('unsaved')));
    expect(good).toMatchObject({ ok: true, error: null });
    expect(good.steps.map((s) => s.step)).toEqual(['write', 'read', 'list', 'delete']);
    expect(
      (await client.testTargetLocation(location(s3Target('x', { bucket: 'no-such-bucket' })))).error,
    ).toMatchObject({ cause: 'missing_bucket', s3_code: 'NoSuchBucket' });
    const dead = await client.testTargetLocation(location(s3Target('x', { endpoint: 'http://127.0.0.1:9' })));
    expect(dead.error?.cause).toBe('unreachable');
    const dir = join(home, 'unsaved-dir');
    expect(await client.testTargetLocation({ kind: 'filesystem', filesystem: { path: dir } })).toMatchObject({
      ok: true,
    });
    expect((await client.listTargets()).items).toHaveLength(before);
    // Nothing was made there: a target can still be created at the location tested.
    await client.createTarget(s3Target('unsaved'));
  });

  it('makes, lists and revokes tokens; a revoked token is refused', async () => {
    const made = await client.createToken({ name: 'ci', role: 'viewer' });
    expect(made.secret).toMatch(/^stw_[A-Za-z0-9_-]{43}$/);
    const viewer = new ManagerClient({ baseUrl: manager.url, token: made.secret });
    expect((await viewer.listVolumes()).items).toEqual([]);
    const forbidden = await viewer.createToken({ name: 'escalate' }).catch((e: unknown) => e);
    expect((forbidden as ApiError).code).toBe('forbidden');
    await client.revokeToken(made.token.id);
    const listed = (await client.listTokens()).items.find((t) => t.id === made.token.id);
    expect(listed?.revoked_at).not.toBeNull();
    expect(((await viewer.listVolumes().catch((e: unknown) => e)) as ApiError).code).toBe('unauthorized');
  });

  it('applies a job event once: a duplicate, an older one and a late one after the end change nothing', async () => {
    const { db } = manager.ctx;
    const host = await insertHost(db, {
      id: randomUUID(),
      name: `h-${randomUUID().slice(0, 6)}`,
      url: 'http://127.0.0.1:9',
      agentToken: new Uint8Array(40),
      backends: [],
      now: new Date(),
    });
    const agent = new ManagerClient({
      baseUrl: manager.url,
      token: await issueToken(db, 'agent', 'agent', host.id),
    });
    const jobId = randomUUID();
    await insertJob(db, { id: jobId, kind: 'restore', state: 'queued', host_id: host.id });
    const at = new Date().toISOString();
    const event = (seq: number, state: 'running' | 'failed', done: number) => ({
      event_id: `${jobId}:${seq}`,
      agent_id: 'a1',
      seq,
      type: state === 'running' ? ('progress' as const) : ('finished' as const),
      at,
      job: {
        id: jobId,
        kind: 'restore' as const,
        state,
        created_at: at,
        started_at: at,
        finished_at: state === 'running' ? null : at,
        progress: { bytes_done: done, bytes_total: 100, rate: 1, eta_seconds: null },
        error: state === 'running' ? null : { code: 'no_space' as const, message: 'the disk is full' },
        result: null,
        destination: null,
      },
    });
    await agent.postJobEvent(event(10, 'running', 40));
    await agent.postJobEvent(event(10, 'running', 40));
    await agent.postJobEvent(event(9, 'running', 20));
    expect((await client.getJob(jobId)).progress.bytes_done).toBe(40);
    await agent.postJobEvent(event(12, 'failed', 50));
    await agent.postJobEvent(event(13, 'running', 60));
    const job = await client.getJob(jobId);
    expect(job).toMatchObject({ state: 'failed', error: { code: 'no_space' }, progress: { bytes_done: 50 } });
    expect(job.last_event_at).not.toBeNull();
    expect((await client.getHost(host.id)).agent_id).toBe('a1');
    // Another host's agent may not report this job.
    const other = await insertHost(db, {
      id: randomUUID(),
      name: `o-${randomUUID().slice(0, 6)}`,
      url: 'http://127.0.0.1:9',
      agentToken: new Uint8Array(40),
      backends: [],
      now: new Date(),
    });
    const intruder = new ManagerClient({
      baseUrl: manager.url,
      token: await issueToken(db, 'agent', 'other', other.id),
    });
    expect(
      ((await intruder.postJobEvent(event(20, 'running', 1)).catch((e: unknown) => e)) as ApiError).code,
    ).toBe('forbidden');
  });

  it('answers 503 naming the agent when a host to register cannot be reached, and stores nothing', async () => {
    const error = (await client
      .registerHost({ name: 'nowhere', url: 'http://127.0.0.1:9', token: 'x'.repeat(32) })
      .catch((e: unknown) => e)) as ApiError;
    expect(error.code).toBe('unavailable');
    expect(error.message).toMatch(/the agent at http:\/\/127\.0\.0\.1:9 is unreachable/);
    expect((await client.listHosts()).items.some((h) => h.name === 'nowhere')).toBe(false);
  });

  it('exports Prometheus metrics', async () => {
    const text = await client.getMetrics();
    for (const name of [
      'stowage_manager_http_request_duration_seconds',
      'stowage_manager_backups',
      'stowage_manager_backup_bytes_uploaded',
      'stowage_manager_agent_up',
      'stowage_manager_job_duration_seconds',
      'stowage_manager_volume_last_success_timestamp_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name}`);
    }
    expect(text).toMatch(/stowage_manager_agent_up\{host_id="[0-9a-f-]+",host="h-[^"]+"\} [01]/);
  });

  it('keeps a filesystem target inside a directory it can create', async () => {
    const dir = join(home, 'fs-target');
    mkdirSync(dir);
    const made = await client.createTarget({ kind: 'filesystem', name: 'dir', filesystem: { path: dir } });
    expect(made.target.repository).toBe(`file://${dir}`);
    expect((await client.testTarget(made.target.id)).ok).toBe(true);
    await client.deleteTarget(made.target.id);
    expect(((await client.getTarget(made.target.id).catch((e: unknown) => e)) as ApiError).code).toBe(
      'not_found',
    );
  });
});

// CI sets STOWAGE_REQUIRE_CEPH=1 (the object-store suites fail there without radosgw); s3rver checks no
// signatures, so wrong credentials are tried on Ceph RGW only.
const cephUnavailable = await cephUnavailableReason();
describe.skipIf(cephUnavailable !== undefined)(
  `target credentials on Ceph RGW${cephUnavailable === undefined ? '' : ` (skipped: ${cephUnavailable})`}`,
  () => {
    let system: TestManager;
    let ceph: TestS3Server;
    let client: ManagerClient;
    beforeAll(async () => {
      ceph = await startCeph({ buckets: ['creds'] });
      system = await startTestManager({ prefix: 'api-ceph' });
      client = system.admin;
    }, 120_000);
    afterAll(async () => {
      await system?.stop();
      await ceph?.stop();
    });

    it('reports rotated-away credentials as bad_credentials with the S3 code, and works again once rotated back', async () => {
      const credentials = { access_key_id: ceph.accessKeyId, secret_access_key: ceph.secretAccessKey };
      const { target } = await client.createTarget({
        kind: 's3',
        name: 'creds',
        s3: { endpoint: ceph.endpoint, bucket: 'creds', path_style: true },
        credentials,
      });
      expect((await client.testTarget(target.id)).ok).toBe(true);
      await client.updateTarget(target.id, {
        credentials: { ...credentials, secret_access_key: 'not-the-secret' },
      });
      const bad = await client.testTarget(target.id);
      expect(bad).toMatchObject({
        ok: false,
        error: { cause: 'bad_credentials', s3_code: 'SignatureDoesNotMatch', status: 403 },
      });
      expect(bad.steps).toEqual([{ step: 'write', ok: false, ms: expect.any(Number) }]);
      await client.updateTarget(target.id, { credentials });
      expect((await client.testTarget(target.id)).ok).toBe(true);
    });
  },
);
