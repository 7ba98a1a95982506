import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiError,
  ApiErrorBody,
  type BackendKind,
  type BackupRequest,
  Job,
  type JobAccepted,
  type RestoreRequest,
  type VerifyRequest,
  Volume,
} from '@stowage/api';
import { BlockBackend, type HostBackend, LocalFileBackend } from '@stowage/host-backends';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobRunner } from '../contracts.js';
import { createJsonLogger } from '../log.js';
import { AgentMetrics } from '../metrics.js';
import { VolumeLocks } from '../volume-locks.js';
import { createAgentApp } from './app.js';

const TOKEN = 'test-token-0123456789abcdef0123456789abcdef';
const auth = { Authorization: `Bearer ${TOKEN}` };
const json = { ...auth, 'Content-Type': 'application/json' };

/**
 * Records what the HTTP layer hands the job runner. The real runner has its own tests and runs behind the
 * real server in serve.test.ts; here only routing, validation, auth and the error shape are under test.
 */
class RecordingRunner implements JobRunner {
  readonly submitted: (BackupRequest | RestoreRequest | VerifyRequest)[] = [];
  readonly jobs = new Map<string, Job>();

  #accept(id: string, kind: Job['kind']): JobAccepted {
    const job: Job = {
      id,
      kind,
      state: 'queued',
      created_at: new Date(0).toISOString(),
      started_at: null,
      finished_at: null,
      progress: { bytes_done: 0, bytes_total: 0, rate: 0, eta_seconds: null },
      error: null,
      result: null,
      destination: null,
    };
    this.jobs.set(id, job);
    return { job_id: id, state: 'queued' };
  }
  async submitBackup(request: BackupRequest): Promise<JobAccepted> {
    this.submitted.push(request);
    return this.#accept(request.job_id, 'backup');
  }
  async submitRestore(request: RestoreRequest): Promise<JobAccepted> {
    this.submitted.push(request);
    return this.#accept(request.job_id, 'restore');
  }
  async submitVerify(request: VerifyRequest): Promise<JobAccepted> {
    this.submitted.push(request);
    return this.#accept(request.job_id, 'verify');
  }
  isActive(id: string): boolean {
    const job = this.jobs.get(id);
    return job !== undefined && (job.state === 'queued' || job.state === 'running');
  }
  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }
  list(): Job[] {
    return [...this.jobs.values()];
  }
  cancel(id: string): Job {
    const job = this.jobs.get(id);
    if (job === undefined) throw new ApiError('not_found', 'no such job');
    const cancelled: Job = { ...job, state: 'cancelled' };
    this.jobs.set(id, cancelled);
    return cancelled;
  }
  async shutdown(): Promise<Job[]> {
    return [];
  }
}

let root: string;
let outside: string;
let runner: RecordingRunner;
let logLines: string[];
let app: ReturnType<typeof createAgentApp>;
let locks: VolumeLocks;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-agent-http-'));
  outside = await mkdtemp(join(tmpdir(), 'stowage-agent-outside-'));
  await writeFile(join(outside, 'secret.img'), 'not for the agent');
  runner = new RecordingRunner();
  logLines = [];
  const backends = new Map<BackendKind, HostBackend>([
    ['local-file', new LocalFileBackend({ roots: [root] })],
  ]);
  locks = new VolumeLocks();
  app = createAgentApp({
    token: TOKEN,
    backends,
    runner,
    locks,
    metrics: new AgentMetrics(),
    logger: createJsonLogger({ level: 'debug', write: (line) => logLines.push(line) }),
  });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function errorOf(response: Response, status: number, code: string): Promise<ApiErrorBody> {
  expect(response.status).toBe(status);
  const body = ApiErrorBody.parse(await response.json());
  expect(body.code).toBe(code);
  expect(body.message.length).toBeGreaterThan(0);
  return body;
}

const target = { repository: 's3://bucket/prefix', target_key: Buffer.alloc(32, 7).toString('base64') };

describe('agent HTTP API: authentication', () => {
  it('answers the health check without a token', async () => {
    const response = await app.request('/healthz');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('refuses every other route without the right token, logging the attempt but never the token', async () => {
    for (const [path, headers] of [
      ['/v1/backends', {}],
      ['/v1/backends', { Authorization: 'Bearer wrong-token' }],
      ['/v1/backends', { Authorization: `Basic ${TOKEN}` }],
      ['/metrics', {}],
      ['/v1/no-such-route', {}],
    ] as const) {
      const response = await app.request(path, { headers });
      await errorOf(response, 401, 'unauthorized');
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect(logLines.filter((line) => line.includes('unauthorized request'))).toHaveLength(5);
    expect(logLines.join('')).not.toContain(TOKEN);
    expect(runner.submitted).toHaveLength(0);
  });
});

describe('agent HTTP API: volumes and snapshots on local-file', () => {
  it('provisions, lists, stats, snapshots and deletes', async () => {
    const created = await app.request('/v1/volumes', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ backend: 'local-file', name: 'vol-a', size: 1 << 20 }),
    });
    expect(created.status).toBe(201);
    const volume = Volume.parse(await created.json());
    expect(volume).toMatchObject({ backend: 'local-file', name: 'vol-a', size: 1 << 20 });

    const list = await app.request('/v1/volumes?backend=local-file', { headers: auth });
    expect(((await list.json()) as Volume[]).map((v) => v.locator)).toEqual([volume.locator]);

    const q = `backend=local-file&locator=${encodeURIComponent(volume.locator)}`;
    expect(await (await app.request(`/v1/volume?${q}`, { headers: auth })).json()).toEqual(volume);

    // A point-in-time snapshot or none: where the filesystem has no reflinks, a copy must be asked for.
    const instant = await app.request('/v1/snapshots', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ backend: 'local-file', volume: volume.locator, name: 'instant' }),
    });
    if (instant.status !== 201) {
      const refused = await errorOf(instant, 501, 'unsupported');
      expect(refused.message).toMatch(/reflinks/);
    } else {
      expect(((await instant.json()) as { method: string }).method).toBe('reflink');
      await app.request(
        `/v1/snapshot?backend=local-file&locator=${encodeURIComponent(join(root, '.stowage-snapshots', 'vol-a@instant'))}`,
        { method: 'DELETE', headers: auth },
      );
    }
    const snap = await app.request('/v1/snapshots', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        backend: 'local-file',
        volume: volume.locator,
        name: 'before',
        allow_copy: true,
      }),
    });
    expect(snap.status).toBe(201);
    const snapshot = (await snap.json()) as { locator: string; method: string };
    expect(['reflink', 'copy']).toContain(snapshot.method);

    const snaps = await app.request(
      `/v1/snapshots?backend=local-file&volume=${encodeURIComponent(volume.locator)}`,
      {
        headers: auth,
      },
    );
    expect(((await snaps.json()) as unknown[]).length).toBe(1);

    // A volume with snapshots is busy; deleting the snapshot first makes the delete work.
    await errorOf(await app.request(`/v1/volume?${q}`, { method: 'DELETE', headers: auth }), 409, 'conflict');
    const sq = `backend=local-file&locator=${encodeURIComponent(snapshot.locator)}`;
    expect((await app.request(`/v1/snapshot?${sq}`, { method: 'DELETE', headers: auth })).status).toBe(204);
    expect((await app.request(`/v1/volume?${q}`, { method: 'DELETE', headers: auth })).status).toBe(204);
    await errorOf(await app.request(`/v1/volume?${q}`, { headers: auth }), 404, 'not_found');
  });

  it('takes no volume changes while the agent stops, and still answers reads', async () => {
    const backend = new LocalFileBackend({ roots: [root] });
    const existing = await backend.provision({ name: 'kept', size: 1 << 20 });
    let stopping = false;
    const stoppable = createAgentApp({
      token: TOKEN,
      backends: new Map<BackendKind, HostBackend>([['local-file', backend]]),
      runner,
      locks,
      metrics: new AgentMetrics(),
      logger: createJsonLogger({ level: 'debug', write: (line) => logLines.push(line) }),
      isStopping: () => stopping,
    });
    stopping = true;
    const q = `backend=local-file&locator=${encodeURIComponent(existing.locator)}`;
    const changes = [
      () =>
        stoppable.request('/v1/volumes', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ backend: 'local-file', name: 'new', size: 1 << 20 }),
        }),
      () =>
        stoppable.request('/v1/snapshots', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ backend: 'local-file', volume: existing.locator, name: 'late' }),
        }),
      () => stoppable.request(`/v1/volume?${q}`, { method: 'DELETE', headers: auth }),
      () => stoppable.request(`/v1/snapshot?${q}`, { method: 'DELETE', headers: auth }),
    ];
    for (const change of changes) await errorOf(await change(), 503, 'unavailable');
    expect((await backend.list()).map((v) => v.name)).toEqual(['kept']);
    expect(await backend.listSnapshots(existing.locator)).toEqual([]);
    expect((await stoppable.request(`/v1/volume?${q}`, { headers: auth })).status).toBe(200);
    expect(await (await stoppable.request('/healthz')).json()).toEqual({ status: 'stopping' });
  });

  it('refuses paths outside its roots with 4xx, whatever the spelling', async () => {
    await mkdir(join(root, 'sub'));
    await symlink(join(outside, 'secret.img'), join(root, 'link.img'));
    await symlink(outside, join(root, 'sub', 'dir-link'));
    const cases: [string, number, string][] = [
      ['/etc/shadow', 403, 'forbidden'],
      [join(outside, 'secret.img'), 403, 'forbidden'],
      [join(root, 'link.img'), 403, 'forbidden'],
      [join(root, 'sub', 'dir-link', 'secret.img'), 403, 'forbidden'],
      [`${root}/../${outside.split('/').pop()}/secret.img`, 400, 'invalid_request'],
      ['relative/path.img', 400, 'invalid_request'],
      ['', 400, 'invalid_request'],
    ];
    for (const [locator, status, code] of cases) {
      const q = `backend=local-file&locator=${encodeURIComponent(locator)}`;
      await errorOf(await app.request(`/v1/volume?${q}`, { headers: auth }), status, code);
      await errorOf(await app.request(`/v1/volume?${q}`, { method: 'DELETE', headers: auth }), status, code);
    }
    const snap = await app.request('/v1/snapshots', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ backend: 'local-file', volume: join(root, 'link.img'), name: 'x' }),
    });
    await errorOf(snap, 403, 'forbidden');
  });
});

describe('agent HTTP API: bad input gets a clear 4xx and changes nothing', () => {
  const provision = (body: string, headers: Record<string, string> = json) =>
    app.request('/v1/volumes', { method: 'POST', headers, body });

  it('rejects malformed JSON, unknown fields, negative sizes, bad names and wrong content types', async () => {
    await errorOf(await provision('{"backend":'), 400, 'invalid_request');
    const unknown = await errorOf(
      await provision(JSON.stringify({ backend: 'local-file', name: 'v', size: 1, colour: 'red' })),
      400,
      'invalid_request',
    );
    expect(JSON.stringify(unknown.details)).toContain('colour');
    const negative = await errorOf(
      await provision(JSON.stringify({ backend: 'local-file', name: 'v', size: -1 })),
      400,
      'invalid_request',
    );
    expect(negative.message).toMatch(/^size:/);
    await errorOf(
      await provision(JSON.stringify({ backend: 'local-file', name: '../v', size: 1 })),
      400,
      'invalid_request',
    );
    await errorOf(
      await provision(JSON.stringify({ backend: 'zfs', name: 'v', size: 1 })),
      400,
      'invalid_request',
    );
    await errorOf(
      await provision(JSON.stringify({ backend: 'local-file', name: 'v', size: 1 }), {
        ...auth,
        'Content-Type': 'text/plain',
      }),
      400,
      'invalid_request',
    );
    await errorOf(
      await provision(JSON.stringify({ backend: 'block', name: 'v', size: 1 })),
      404,
      'not_found',
    );
    await errorOf(await provision(JSON.stringify({ pad: 'x'.repeat(100_000) })), 413, 'payload_too_large');
    const list = await app.request('/v1/volumes?backend=local-file', { headers: auth });
    expect(await list.json()).toEqual([]);
  });

  it('validates job requests before the runner sees them', async () => {
    const backup = (body: unknown) =>
      app.request('/v1/storage/backup', { method: 'POST', headers: json, body: JSON.stringify(body) });
    const good = {
      job_id: randomUUID(),
      volume: { backend: 'local-file', locator: join(root, 'v.img') },
      volume_name: 'v',
      target,
    };
    await errorOf(await backup({ ...good, job_id: 'not-a-uuid' }), 400, 'invalid_request');
    await errorOf(
      await backup({ ...good, target: { ...target, target_key: 'c2hvcnQ=' } }),
      400,
      'invalid_request',
    );
    await errorOf(
      await backup({ ...good, volume: { backend: 'block', locator: '/dev/sda' } }),
      404,
      'not_found',
    );
    const [volumeId, backupId] = [randomUUID(), randomUUID()];
    const restoreToNew = {
      job_id: randomUUID(),
      backup: { volume_id: volumeId, backup_id: backupId, manifest_key: `manifests/${volumeId}/${backupId}` },
      destination: { backend: 'block', name: 'new-volume' },
      target,
    };
    // A manifest key is where the ids say it is, nothing else: not a path into the repository's directory.
    for (const manifestKey of [
      '../../etc/shadow',
      'manifests/x/y',
      `manifests/${volumeId}/${randomUUID()}`,
    ]) {
      const wrongKey = await app.request('/v1/storage/restore', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({
          ...restoreToNew,
          backup: { ...restoreToNew.backup, manifest_key: manifestKey },
          destination: { backend: 'local-file', name: 'new-volume' },
        }),
      });
      const body = await errorOf(wrongKey, 400, 'invalid_request');
      expect(body.message).toContain('manifest_key');
    }
    const blockApp = createAgentApp({
      token: TOKEN,
      backends: new Map<BackendKind, HostBackend>([
        ['block', new BlockBackend({ devices: ['/dev/null-device'] })],
      ]),
      runner,
      locks,
      metrics: new AgentMetrics(),
      logger: createJsonLogger({ write: () => {} }),
    });
    const refused = await blockApp.request('/v1/storage/restore', {
      method: 'POST',
      headers: json,
      body: JSON.stringify(restoreToNew),
    });
    await errorOf(refused, 501, 'unsupported');
    expect(runner.submitted).toHaveLength(0);

    const accepted = await backup(good);
    expect(accepted.status).toBe(202);
    expect(await accepted.json()).toEqual({ job_id: good.job_id, state: 'queued' });
    expect(runner.submitted).toHaveLength(1);

    const job = await app.request(`/v1/jobs/${good.job_id}`, { headers: auth });
    expect(Job.parse(await job.json()).state).toBe('queued');
    const cancel = await app.request(`/v1/jobs/${good.job_id}/cancel`, { method: 'POST', headers: auth });
    expect(cancel.status).toBe(202);
    expect(Job.parse(await cancel.json()).state).toBe('cancelled');
    await errorOf(await app.request(`/v1/jobs/${randomUUID()}`, { headers: auth }), 404, 'not_found');
    await errorOf(await app.request('/v1/jobs/42', { headers: auth }), 400, 'invalid_request');
  });

  it('validates verify requests: the manifest key, the sample, the target', async () => {
    const verify = (body: unknown, on = app) =>
      on.request('/v1/storage/verify', { method: 'POST', headers: json, body: JSON.stringify(body) });
    const [volumeId, backupId] = [randomUUID(), randomUUID()];
    const good = {
      job_id: randomUUID(),
      backup: { volume_id: volumeId, backup_id: backupId, manifest_key: `manifests/${volumeId}/${backupId}` },
      sample_percent: 5,
      target,
    };
    for (const sample of [0, -1, 100.5, 'ten']) {
      const body = await errorOf(await verify({ ...good, sample_percent: sample }), 400, 'invalid_request');
      expect(body.message).toContain('sample_percent');
    }
    const wrongKey = await verify({ ...good, backup: { ...good.backup, manifest_key: 'manifests/x/y' } });
    expect((await errorOf(wrongKey, 400, 'invalid_request')).message).toContain('manifest_key');
    await errorOf(await verify({ ...good, volume: 'extra' }), 400, 'invalid_request');
    const refusing = createAgentApp({
      token: TOKEN,
      backends: new Map(),
      runner,
      locks,
      metrics: new AgentMetrics(),
      logger: createJsonLogger({ write: () => {} }),
      checkTarget: () => {
        throw new ApiError('forbidden', 'file:///elsewhere is outside the repository roots');
      },
    });
    await errorOf(await verify(good, refusing), 403, 'forbidden');
    expect(runner.submitted).toHaveLength(0);

    const accepted = await verify(good);
    expect(accepted.status).toBe(202);
    expect(await accepted.json()).toEqual({ job_id: good.job_id, state: 'queued' });
    expect(runner.submitted).toEqual([good]);
    const job = await app.request(`/v1/jobs/${good.job_id}`, { headers: auth });
    expect(Job.parse(await job.json()).kind).toBe('verify');
  });

  it('serves Prometheus metrics to a caller with the token', async () => {
    const response = await app.request('/metrics', { headers: auth });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    for (const name of [
      'stowage_agent_bytes_read_total',
      'stowage_agent_bytes_uploaded_total',
      'stowage_agent_bytes_downloaded_total',
      'stowage_agent_jobs{state="queued"}',
    ]) {
      expect(text).toContain(name);
    }
  });
});
