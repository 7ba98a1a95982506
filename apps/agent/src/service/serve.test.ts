import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Job, JobEvent } from '@stowage/api';
import { Repository } from '@stowage/engine';
import {
  seededBytes,
  sha256File,
  TEST_CHUNKER_PARAMS,
  TEST_KDF,
  TEST_PASSPHRASE,
  writeImage,
  writeTestVolume,
} from '@stowage/engine/testing';
import { decodePackIndex, PACK_INDEX_PREFIX } from '@stowage/format';
import { LocalFileBackend } from '@stowage/host-backends';
import { openObjectStore } from '@stowage/object-store';
import {
  cephUnavailableReason,
  startCeph,
  startS3rver,
  type TestS3Server,
} from '@stowage/object-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultyS3Proxy } from './testing/faulty-s3-proxy.js';

// A real `agent serve` process (run from source through tsx, as the CLI tests do), a real S3 server, real
// files, and a small HTTP server standing in for the manager that records the job events it is sent.

const main = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const healthcheck = fileURLToPath(new URL('../../bin/healthcheck.cjs', import.meta.url));
const TOKEN = 'e2e-agent-token-0123456789abcdef0123456789';
const MANAGER_TOKEN = 'e2e-manager-token-0123456789abcdef01234567';
const BUCKET = 'agent-e2e';

class RecordingManager {
  readonly events: JobEvent[] = [];
  server!: Server;
  url = '';
  async start() {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        if (req.headers.authorization !== `Bearer ${MANAGER_TOKEN}`) {
          res.writeHead(401).end();
          return;
        }
        this.events.push(JobEvent.parse(JSON.parse(body)));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  finished(jobId: string): JobEvent | undefined {
    return this.events.find((e) => e.job.id === jobId && e.type === 'finished');
  }
  stop() {
    return new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface Agent {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function startAgent(env: Record<string, string>): Promise<Agent> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', main, 'serve'], {
    env: {
      ...process.env,
      AGENT_TOKEN: TOKEN,
      AGENT_LISTEN: '127.0.0.1:0',
      AGENT_THREADS: '2',
      AGENT_MANAGER_TOKEN: MANAGER_TOKEN,
      AGENT_SHUTDOWN_GRACE_SECONDS: '2',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (data: Buffer) => {
      stderr += data;
      const match = /"msg":"listening".*?"url":"([^"]+)"/.exec(stderr);
      if (match) resolve(match[1]!);
    });
    void exited.then((code) => reject(new Error(`agent exited (${code}) before listening:\n${stderr}`)));
  });
  return { url, child, stderr: () => stderr, exited };
}

async function api(agent: Agent, method: string, path: string, body?: unknown, token = TOKEN) {
  const response = await fetch(`${agent.url}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>),
  };
}

async function waitForJob(
  agent: Agent,
  id: string,
  until: (job: Job) => boolean,
  timeoutMs = 90_000,
): Promise<Job> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await api(agent, 'GET', `/v1/jobs/${id}`);
    const job = body as unknown as Job;
    if (until(job)) return job;
    if (Date.now() > end) throw new Error(`job ${id} still ${job.state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
const finished = (job: Job) => job.finished_at !== null;

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

interface World {
  dir: string;
  roots: string;
  state: string;
  manager: RecordingManager;
  server: TestS3Server;
  targetKey: string;
  repository: (endpoint?: string) => {
    repository: string;
    credentials: { access_key_id: string; secret_access_key: string };
    target_key: string;
  };
  /** Chunks the repository's index objects name: what a re-run of a killed backup can take as stored. */
  countIndexed: () => Promise<number>;
}

async function setUp(server: TestS3Server): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-agent-e2e-'));
  const roots = join(dir, 'volumes');
  await mkdir(roots);
  const manager = new RecordingManager();
  await manager.start();
  const credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
  const url = (endpoint: string) =>
    `s3://${BUCKET}/repo?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&path_style=true`;
  const store = openObjectStore(url(server.endpoint), { credentials });
  const created = await Repository.init(store, {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  const targetKey = Buffer.from(created.targetKey).toString('base64');
  return {
    dir,
    roots,
    state: join(dir, 'state'),
    manager,
    server,
    targetKey,
    repository: (endpoint = server.endpoint) => ({
      repository: url(endpoint),
      credentials: { access_key_id: server.accessKeyId, secret_access_key: server.secretAccessKey },
      target_key: targetKey,
    }),
    countIndexed: async () => {
      let n = 0;
      for await (const { key } of store.list(PACK_INDEX_PREFIX)) {
        n += decodePackIndex(created.keys, key, await store.get(key)).count;
      }
      return n;
    },
  };
}

function agentEnv(world: World, extra: Record<string, string> = {}) {
  return {
    AGENT_LOCAL_FILE_ROOTS: world.roots,
    AGENT_STATE_DIR: world.state,
    AGENT_MANAGER_URL: world.manager.url,
    ...extra,
  };
}

async function provision(agent: Agent, name: string, size: number, fill: (path: string) => Promise<void>) {
  const { status, body } = await api(agent, 'POST', '/v1/volumes', { backend: 'local-file', name, size });
  expect(status).toBe(201);
  const locator = body!.locator as string;
  await fill(locator);
  return locator;
}

function backupBody(world: World, locator: string, extra: Record<string, unknown> = {}) {
  return {
    job_id: randomUUID(),
    volume: { backend: 'local-file', locator },
    volume_name: 'vol',
    // The temp directory's filesystem may have no reflinks; a copy is what these tests can have.
    snapshot: 'copy',
    target: world.repository(),
    ...extra,
  };
}

function restoreBody(world: World, job: Job, name: string, target = world.repository()) {
  const result = job.result as { volume_id: string; backup_id: string; manifest_key: string };
  return {
    job_id: randomUUID(),
    backup: { volume_id: result.volume_id, backup_id: result.backup_id, manifest_key: result.manifest_key },
    destination: { backend: 'local-file', name },
    target,
  };
}

/** The round trip every S3 server must pass: backup → restore to a new volume → byte-exact, events sent. */
function roundTrip(name: string, startServer: () => Promise<TestS3Server>) {
  describe(`agent serve on ${name}`, () => {
    let world: World;
    let agent: Agent;
    beforeAll(async () => {
      world = await setUp(await startServer());
      agent = await startAgent(agentEnv(world));
    }, 120_000);
    afterAll(async () => {
      agent?.child.kill('SIGKILL');
      await world?.manager.stop();
      await world?.server.stop();
      if (world) await rm(world.dir, { recursive: true, force: true });
    });

    it('backs up a volume, restores it to a newly provisioned volume byte-exact, and reports both jobs', async () => {
      const source = await provision(agent, 'web-1', 12 << 20, (path) =>
        writeTestVolume(path, 12 << 20, 'e2e'),
      );
      const backup = backupBody(world, source);
      const accepted = await api(agent, 'POST', '/v1/storage/backup', backup);
      expect(accepted.status).toBe(202);
      const done = await waitForJob(agent, backup.job_id, finished);
      expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
      expect(done.result).toMatchObject({
        size: 12 << 20,
        bytes_read: 12 << 20,
        snapshot: expect.stringMatching(/reflink|copy/),
      });
      // The job's snapshot is gone once the job is.
      const snaps = await api(
        agent,
        'GET',
        `/v1/snapshots?backend=local-file&volume=${encodeURIComponent(source)}`,
      );
      expect(snaps.body).toEqual([]);

      const restore = restoreBody(world, done, 'web-1-restored');
      expect((await api(agent, 'POST', '/v1/storage/restore', restore)).status).toBe(202);
      const restored = await waitForJob(agent, restore.job_id, finished);
      expect(restored.state, JSON.stringify(restored.error)).toBe('succeeded');
      const volume = restored.destination!.volume!;
      expect(await sha256File(volume.locator)).toBe(await sha256File(source));

      await until(
        () => world.manager.finished(restore.job_id) !== undefined,
        'the restore result at the manager',
      );
      const result = world.manager.finished(backup.job_id)!;
      expect(result.job.result).toEqual(done.result);
      expect(result.agent_id.length).toBeGreaterThan(0);

      const metrics = await fetch(`${agent.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      const text = await metrics.text();
      expect(text).toMatch(/stowage_agent_bytes_read_total \d{8}/);
      expect(text).toMatch(/stowage_agent_backup_chunks_total\{result="new"\} [1-9]/);
      expect(text).toMatch(/stowage_agent_job_duration_seconds_count\{kind="restore",state="succeeded"\} 1/);

      // The job's secrets went through the agent; none of them reached its log.
      const log = agent.stderr();
      expect(log).toContain('"msg":"job succeeded"');
      for (const secret of [world.targetKey, world.server.secretAccessKey, TOKEN, MANAGER_TOKEN]) {
        expect(log).not.toContain(secret);
      }
    });
  });
}

roundTrip('s3rver (in-process S3)', () => startS3rver({ buckets: [BUCKET] }));
faultsCrashesAndCancels('s3rver (in-process S3)', () => startS3rver({ buckets: [BUCKET] }));

// CI sets STOWAGE_REQUIRE_CEPH=1: there a missing radosgw is a failure, never a skip.
const cephMissing = await cephUnavailableReason();
if (cephMissing === undefined) {
  roundTrip('Ceph RGW', () => startCeph({ buckets: [BUCKET] }));
  faultsCrashesAndCancels('Ceph RGW', () => startCeph({ buckets: [BUCKET] }));
} else if (process.env.STOWAGE_REQUIRE_CEPH === '1') {
  describe('agent serve on Ceph RGW', () => {
    it('needs radosgw (STOWAGE_REQUIRE_CEPH=1)', () => {
      expect.fail(`Ceph cannot run here: ${cephMissing}`);
    });
  });
} else {
  describe.skip(`agent serve on Ceph RGW (skipped: ${cephMissing})`, () => {
    it('round trip', () => {});
    it('faults, crashes, cancels and bad requests', () => {});
  });
}

function faultsCrashesAndCancels(name: string, startServer: () => Promise<TestS3Server>): void {
  describe(`agent serve on ${name}: faults, crashes, cancels and bad requests`, () => {
    let world: World;
    beforeAll(async () => {
      world = await setUp(await startServer());
    }, 120_000);
    afterAll(async () => {
      await world?.manager.stop();
      await world?.server.stop();
      if (world) await rm(world.dir, { recursive: true, force: true });
    });

    it('refuses a wrong token (401) and paths outside its roots (4xx), reading nothing', async () => {
      const agent = await startAgent(agentEnv(world));
      try {
        expect((await api(agent, 'GET', '/v1/backends', undefined, 'wrong')).status).toBe(401);
        expect((await fetch(`${agent.url}/healthz`)).status).toBe(200);
        await mkdir(join(world.dir, 'outside'), { recursive: true });
        await writeImage(join(world.dir, 'outside', 'secret.img'), 1 << 20, [
          { offset: 0, data: seededBytes('secret', 4096) },
        ]);
        await symlink(join(world.dir, 'outside', 'secret.img'), join(world.roots, 'sneaky.img'));
        for (const locator of [
          '/etc/shadow',
          // Spelled out, not joined: path.join would fold the `..` away before the agent saw it.
          `${world.roots}/../outside/secret.img`,
          `${world.roots}/../../../../etc/shadow`,
          join(world.roots, 'sneaky.img'),
        ]) {
          const q = `backend=local-file&locator=${encodeURIComponent(locator)}`;
          const { status } = await api(agent, 'GET', `/v1/volume?${q}`);
          expect([400, 403]).toContain(status);
          const backup = await api(agent, 'POST', '/v1/storage/backup', backupBody(world, locator));
          // Either refused at once, or the job fails before reading: confinement is the backend's, checked first.
          if (backup.status === 202) {
            const job = await waitForJob(agent, backup.body!.job_id as string, finished);
            expect(job.state).toBe('failed');
            expect(['forbidden', 'invalid_request']).toContain(job.error?.code);
          } else expect([400, 403]).toContain(backup.status);
        }
        const repo = await api(agent, 'POST', '/v1/storage/backup', {
          ...backupBody(world, join(world.roots, 'x.img')),
          target: { repository: 'file:///etc/stowage-repo', target_key: world.targetKey },
        });
        expect(repo.status).toBe(403);
      } finally {
        agent.child.kill('SIGKILL');
      }
    });

    it('after SIGKILL mid-backup, a restarted agent reports the first job failed and the rerun stores only what no index names', async () => {
      // An index object per pack: the killed backup leaves its progress in the bucket at the finest grain.
      const env = agentEnv(world, { AGENT_PACKS_PER_INDEX: '1' });
      let agent = await startAgent(env);
      const source = await provision(agent, 'killed', 48 << 20, (path) =>
        writeImage(path, 48 << 20, [{ offset: 0, data: seededBytes('killed', 48 << 20) }]),
      );
      const indexedBefore = await world.countIndexed();
      const first = backupBody(world, source, { volume_name: 'killed' });
      expect((await api(agent, 'POST', '/v1/storage/backup', first)).status).toBe(202);
      await until(
        async () => (await world.countIndexed()) - indexedBefore >= 20,
        'some chunks stored and indexed',
        60_000,
      );
      agent.child.kill('SIGKILL');
      await agent.exited;
      const landed = (await world.countIndexed()) - indexedBefore;

      agent = await startAgent(env);
      try {
        await until(() => world.manager.finished(first.job_id) !== undefined, 'the killed job reported');
        const report = world.manager.finished(first.job_id)!;
        expect(report.job.state).toBe('failed');
        expect(report.job.error?.message).toMatch(/agent stopped while the job was running.*snapshot.*done/);
        // Its snapshot was cleaned up on start.
        const snaps = await api(
          agent,
          'GET',
          `/v1/snapshots?backend=local-file&volume=${encodeURIComponent(source)}`,
        );
        expect(snaps.body).toEqual([]);

        const rerun = backupBody(world, source, { volume_name: 'killed' });
        await api(agent, 'POST', '/v1/storage/backup', rerun);
        const done = await waitForJob(agent, rerun.job_id, finished);
        expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
        const result = done.result as { chunks: number; chunks_new: number };
        expect(landed).toBeGreaterThan(0);
        expect(landed).toBeLessThan(result.chunks);
        expect(result.chunks_new).toBe(result.chunks - landed);
      } finally {
        agent.child.kill('SIGKILL');
      }
    }, 180_000);

    it('cancelling a restore mid-way reports the new volume removed and removes its data', async () => {
      // The restore reads through a proxy that stalls after a few requests, so it is cancelled part-way
      // however fast the server is.
      const proxy = await startFaultyS3Proxy(world.server.endpoint, { faultRate: 0 });
      const agent = await startAgent(agentEnv(world));
      try {
        const source = await provision(agent, 'to-cancel', 48 << 20, (path) =>
          writeImage(path, 48 << 20, [{ offset: 0, data: seededBytes('cancel', 48 << 20) }]),
        );
        const backup = backupBody(world, source, { volume_name: 'to-cancel' });
        await api(agent, 'POST', '/v1/storage/backup', backup);
        const done = await waitForJob(agent, backup.job_id, finished);
        expect(done.state).toBe('succeeded');

        const restore = restoreBody(world, done, 'cancelled-restore', world.repository(proxy.endpoint));
        proxy.holdAfter(20); // the repository's config and the manifest, then some of the ≈ 48 chunks
        await api(agent, 'POST', '/v1/storage/restore', restore);
        // Stalled part-way: the volume is provisioned and partly written, the rest of its chunks held.
        await until(() => proxy.stats.held > 0, 'the restore stalled part-way', 60_000);
        expect((await api(agent, 'GET', `/v1/jobs/${restore.job_id}`)).body!.state).toBe('running');
        expect((await readdir(world.roots)).some((name) => name.includes('cancelled-restore'))).toBe(true);
        const cancel = await api(agent, 'POST', `/v1/jobs/${restore.job_id}/cancel`);
        expect(cancel.status).toBe(202);
        const job = await waitForJob(agent, restore.job_id, finished);
        expect(job.state).toBe('cancelled');
        expect(job.destination?.state).toBe('removed');
        await expect(stat(job.destination!.volume!.locator)).rejects.toMatchObject({ code: 'ENOENT' });
        expect((await readdir(world.roots)).filter((name) => name.includes('cancelled-restore'))).toEqual([]);
        await until(() => world.manager.finished(restore.job_id) !== undefined, 'the cancel reported');
        expect(world.manager.finished(restore.job_id)!.job.destination?.state).toBe('removed');
      } finally {
        agent.child.kill('SIGKILL');
        await proxy.close();
      }
    }, 120_000);

    it('retries injected S3 faults, and fails a job with the cause once the retries run out', async () => {
      const proxy = await startFaultyS3Proxy(world.server.endpoint, { faultRate: 0.15, seed: 7 });
      const agent = await startAgent(agentEnv(world, { AGENT_RETRY_ATTEMPTS: '8' }));
      try {
        const source = await provision(agent, 'flaky', 8 << 20, (path) =>
          writeTestVolume(path, 8 << 20, 'flaky'),
        );
        const backup = backupBody(world, source, {
          volume_name: 'flaky',
          target: world.repository(proxy.endpoint),
        });
        await api(agent, 'POST', '/v1/storage/backup', backup);
        const done = await waitForJob(agent, backup.job_id, finished);
        expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
        const restore = restoreBody(world, done, 'flaky-restored', world.repository(proxy.endpoint));
        await api(agent, 'POST', '/v1/storage/restore', restore);
        const restored = await waitForJob(agent, restore.job_id, finished);
        expect(restored.state, JSON.stringify(restored.error)).toBe('succeeded');
        expect(await sha256File(restored.destination!.volume!.locator)).toBe(await sha256File(source));
        expect(proxy.stats.slowDowns + proxy.stats.resets).toBeGreaterThan(3);
        const metrics = await (
          await fetch(`${agent.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })
        ).text();
        expect(metrics).toMatch(
          /stowage_agent_object_store_retries_total\{op="\w+",kind="transient"\} [1-9]/,
        );

        proxy.setFaultRate(1);
        const doomed = backupBody(world, source, {
          volume_name: 'doomed',
          target: world.repository(proxy.endpoint),
        });
        await api(agent, 'POST', '/v1/storage/backup', doomed);
        const failed = await waitForJob(agent, doomed.job_id, finished);
        expect(failed.state).toBe('failed');
        expect(failed.error?.message).toMatch(/503|SlowDown|socket|reset|ECONNRESET|connection/i);
      } finally {
        agent.child.kill('SIGKILL');
        await proxy.close();
      }
    }, 120_000);

    it('serves HTTPS from a certificate and key', async () => {
      const cert = join(world.dir, 'agent.crt');
      const key = join(world.dir, 'agent.key');
      const made = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ]);
      expect(made.status, made.stderr.toString()).toBe(0);
      const agent = await startAgent(agentEnv(world, { AGENT_TLS_CERT_FILE: cert, AGENT_TLS_KEY_FILE: key }));
      try {
        expect(agent.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
        const ca = await readFile(cert);
        const get = (path: string, headers: Record<string, string> = {}) =>
          new Promise<{ status: number; body: string }>((resolve, reject) => {
            const request = httpsRequest(`${agent.url}${path}`, { ca, headers }, (response) => {
              let body = '';
              response.on('data', (d) => {
                body += d;
              });
              response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
            });
            request.on('error', reject);
            request.end();
          });
        expect((await get('/healthz')).status).toBe(200);
        expect((await get('/v1/backends')).status).toBe(401);
        const backends = await get('/v1/backends', { Authorization: `Bearer ${TOKEN}` });
        expect(JSON.parse(backends.body)).toEqual([
          { backend: 'local-file', capabilities: { provision: true, snapshot: true } },
        ]);
        await expect(fetch(`${agent.url.replace('https:', 'http:')}/healthz`)).rejects.toThrow();
        // The container's HEALTHCHECK finds it from the same variables, HTTPS included; a wrong port fails.
        const port = new URL(agent.url).port;
        const probe = (env: Record<string, string>) =>
          spawnSync(process.execPath, [healthcheck], { env: { PATH: process.env.PATH ?? '', ...env } })
            .status;
        expect(probe({ AGENT_LISTEN: `0.0.0.0:${port}`, AGENT_TLS_CERT_FILE: cert })).toBe(0);
        expect(probe({ AGENT_LISTEN: `0.0.0.0:${port}` })).toBe(1);
        expect(probe({ AGENT_LISTEN: '127.0.0.1:1', AGENT_TLS_CERT_FILE: cert })).toBe(1);
        const configFile = join(world.dir, 'agent.json');
        await writeFile(configFile, JSON.stringify({ listen: `0.0.0.0:${port}`, tls: { cert_file: cert } }));
        expect(probe({ AGENT_CONFIG: configFile })).toBe(0);
      } finally {
        agent.child.kill('SIGKILL');
      }
    });

    it('on SIGTERM cancels a running job, removes its snapshot, and exits 0', async () => {
      const agent = await startAgent(agentEnv(world, { AGENT_SHUTDOWN_GRACE_SECONDS: '0' }));
      const source = await provision(agent, 'sigterm', 48 << 20, (path) =>
        writeImage(path, 48 << 20, [{ offset: 0, data: seededBytes('sigterm', 48 << 20) }]),
      );
      const backup = backupBody(world, source, { volume_name: 'sigterm' });
      await api(agent, 'POST', '/v1/storage/backup', backup);
      await waitForJob(agent, backup.job_id, (job) => job.state === 'running');
      agent.child.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
      expect(agent.stderr()).toContain('"msg":"stopped"');
      expect(await new LocalFileBackend({ roots: [world.roots] }).listSnapshots(source)).toEqual([]);
      await until(() => world.manager.finished(backup.job_id) !== undefined, 'the cancelled job reported');
      const report = world.manager.finished(backup.job_id)!;
      expect(report.job.state).toBe('cancelled');
      expect(report.job.error?.message).toContain('shutting down');
    }, 120_000);
  });
}
