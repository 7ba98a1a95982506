import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, type ManagedJob, ManagerClient } from '@stowage/api';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ManagerDatabase, openDatabase } from './db/database.js';
import { insertToken } from './db/tokens.js';
import { loadMasterKey } from './secrets/master-key.js';
import { generateToken, hashToken } from './secrets/tokens.js';
import { AGENT_SOURCE_ARGS, AGENT_SOURCE_MAIN } from './testing/embedded.js';
import { postgresUnavailableReason, startPostgres, type TestPostgres } from './testing/postgres.js';

/**
 * Issue 10, point 8: two real `manager serve` processes on one real PostgreSQL, one real `agent serve`, a
 * filesystem target. The agent's manager URL is a switch in this process that forwards each request to the
 * replica chosen at that moment, so a job started through one replica can report to the other.
 */

const MANAGER_SOURCE_MAIN = fileURLToPath(new URL('./cli/main.ts', import.meta.url));
/** The loops' tick in both replicas (MANAGER_LOOP_INTERVAL_MS): many passes of each within seconds. */
const LOOP_MS = 200;
const KiB = 1024;

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [key: string]: unknown;
}

interface Process {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Its stderr as JSON lines (the manager's and the agent's logs). */
  readonly lines: LogLine[];
  readonly text: string[];
  stop(): Promise<void>;
}

/** Collects a child's stderr as JSON log lines (and the raw text, for a failure's message). */
function watchLogs(proc: ChildProcess, lines: LogLine[], text: string[]): void {
  let partial = '';
  proc.stderr!.on('data', (data: Buffer) => {
    const chunk = data.toString('utf8');
    text.push(chunk);
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const part of parts) {
      if (part.trim() === '') continue;
      try {
        lines.push(JSON.parse(part) as LogLine);
      } catch {
        lines.push({ level: 'raw', msg: part });
      }
    }
  });
}

function stopper(proc: ChildProcess): () => Promise<void> {
  return async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
}

const BASE_ENV = {
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: process.env.HOME ?? '/',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

/** `manager serve --json` from source; resolves with its URL once it prints it. */
async function startManagerProcess(
  name: string,
  env: Record<string, string>,
): Promise<Process & { url: string }> {
  const proc = spawn(process.execPath, [...AGENT_SOURCE_ARGS, MANAGER_SOURCE_MAIN, 'serve', '--json'], {
    env: { ...BASE_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const text: string[] = [];
  watchLogs(proc, lines, text);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${text.join('')}`)), 60_000);
    proc.stdout!.on('data', (data: Buffer) => {
      out += data.toString('utf8');
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line === undefined || !out.includes('\n')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${text.join('')}`));
    });
  });
  return { name, proc, lines, text, url, stop: stopper(proc) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** `agent serve` from source on `port`; resolves once its health check answers. */
async function startAgentProcess(port: number, env: Record<string, string>): Promise<Process> {
  const proc = spawn(process.execPath, [...AGENT_SOURCE_ARGS, AGENT_SOURCE_MAIN, 'serve'], {
    env: { ...BASE_ENV, ...env, AGENT_LISTEN: `127.0.0.1:${port}` },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: LogLine[] = [];
  const text: string[] = [];
  watchLogs(proc, lines, text);
  const end = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the agent exited with ${proc.exitCode}:\n${text.join('')}`);
    try {
      const answer = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (answer.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`the agent did not start:\n${text.join('')}`);
    await sleep(100);
  }
  return { name: 'agent', proc, lines, text, stop: stopper(proc) };
}

interface Delivery {
  readonly upstream: 'A' | 'B';
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** A job event's job id and state (`POST /v1/agent/job-events`). */
  readonly jobId?: string;
  readonly state?: string;
}

/**
 * The agent's manager URL: forwards every request to the replica chosen now (`route`), recording where each
 * went and what it answered — the load balancer in front of two replicas, made steerable.
 */
async function startSwitch(upstreams: { A: string; B: string }) {
  let current: 'A' | 'B' = 'A';
  const deliveries: Delivery[] = [];
  const server: Server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const upstream = current;
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const h of ['authorization', 'content-type', 'accept']) {
        const v = req.headers[h];
        if (typeof v === 'string') headers[h] = v;
      }
      void (async () => {
        try {
          const answer = await fetch(`${upstreams[upstream]}${req.url}`, {
            method: req.method!,
            headers,
            ...(body.length > 0 ? { body } : {}),
          });
          const payload = Buffer.from(await answer.arrayBuffer());
          let event: { job?: { id?: string; state?: string } } = {};
          if (req.url === '/v1/agent/job-events') {
            try {
              event = JSON.parse(body.toString('utf8')) as typeof event;
            } catch {
              // recorded without its job
            }
          }
          deliveries.push({
            upstream,
            method: req.method!,
            path: req.url!,
            status: answer.status,
            ...(event.job?.id === undefined ? {} : { jobId: event.job.id, state: event.job.state }),
          });
          const type = answer.headers.get('content-type');
          res.writeHead(answer.status, type === null ? {} : { 'content-type': type });
          res.end(payload);
        } catch (error) {
          res.writeHead(502, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ code: 'unavailable', message: String(error) }));
        }
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    deliveries,
    route(to: 'A' | 'B') {
      current = to;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const TERMINAL = ['succeeded', 'failed', 'cancelled'];
async function finished(client: ManagerClient, id: string): Promise<ManagedJob> {
  return until(`job ${id} to end`, async () => {
    const job = await client.getJob(id);
    return TERMINAL.includes(job.state) ? job : undefined;
  });
}

/** Follows a job's event stream on one replica to its end. */
async function streamed(client: ManagerClient, id: string): Promise<ManagedJob | undefined> {
  let last: ManagedJob | undefined;
  for await (const job of client.jobEvents(id, AbortSignal.timeout(30_000))) last = job;
  return last;
}

// CI sets STOWAGE_REQUIRE_POSTGRES=1: there a missing PostgreSQL server is a failure, never a skip.
const required = process.env.STOWAGE_REQUIRE_POSTGRES === '1';
const unavailable = postgresUnavailableReason();

describe.runIf(required && unavailable !== undefined)('manager replicas (PostgreSQL required)', () => {
  it('has a PostgreSQL server', () => {
    expect.fail(`STOWAGE_REQUIRE_POSTGRES=1 but PostgreSQL cannot run here: ${unavailable}`);
  });
});

describe.skipIf(unavailable !== undefined)(
  `two manager replicas on one PostgreSQL${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    let postgres: TestPostgres;
    let database: ManagerDatabase;
    let dir: string;
    let A: Process & { url: string };
    let B: Process & { url: string };
    let agent: Process;
    let agentSwitch: Awaited<ReturnType<typeof startSwitch>>;
    let adminToken: string;
    let a: ManagerClient;
    let b: ManagerClient;
    let hostId: string;
    let targetId: string;
    let dailyGcTargets: string[];
    let volumesRoot: string;
    let repositoriesRoot: string;
    const replicas = () => [A, B];

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'stowage-replicas-'));
      volumesRoot = join(dir, 'volumes');
      repositoriesRoot = join(dir, 'targets');
      for (const d of [volumesRoot, repositoriesRoot, join(dir, 'agent')]) mkdirSync(d, { recursive: true });
      // The agent is registered as an operator would: started, added (the manager calls it and answers
      // with the agent's manager token), then restarted with that token and the manager's URL. Its first
      // start runs meanwhile the database and the replicas start.
      const agentToken = generateToken();
      const agentPort = await freePort();
      const agentEnv = {
        AGENT_TOKEN: agentToken,
        AGENT_ID: 'replicas-agent',
        AGENT_STATE_DIR: join(dir, 'agent'),
        AGENT_LOCAL_FILE_ROOTS: volumesRoot,
        AGENT_REPOSITORY_ROOTS: repositoriesRoot,
        AGENT_LOG_LEVEL: 'info',
        // Tiny volumes: one worker thread per job is plenty, and each costs a start on two shared cores.
        AGENT_THREADS: '1',
        AGENT_CONCURRENCY: '4',
      };
      const firstAgent = startAgentProcess(agentPort, agentEnv);
      // Known to afterAll as soon as it runs, so a failed start of the rest does not leave it behind.
      firstAgent.then(
        (started) => {
          agent = started;
        },
        () => {},
      );
      postgres = await startPostgres();
      const url = await postgres.createDatabase('replicas');
      // One master key for both replicas, made as an operator would (never generated beside a shared database).
      const masterKeyFile = join(dir, 'master.key');
      loadMasterKey(masterKeyFile, { create: true });
      const env = (home: string) => ({
        STOWAGE_HOME: join(dir, home),
        PORT: '0',
        HOST: '127.0.0.1',
        DATABASE_URL: url,
        MANAGER_MASTER_KEY_FILE: masterKeyFile,
        LOG_LEVEL: 'debug',
        MANAGER_LOOP_INTERVAL_MS: String(LOOP_MS),
      });
      // Both start at once on an empty database: the advisory lock lets one of them apply the migrations.
      [A, B] = await Promise.all([
        startManagerProcess('A', env('home-a')),
        startManagerProcess('B', env('home-b')),
      ]);
      database = await openDatabase({ url });
      adminToken = generateToken();
      await insertToken(database.db, {
        id: randomUUID(),
        name: 'replicas test admin',
        role: 'admin',
        hostId: null,
        hash: hashToken(adminToken),
      });
      a = new ManagerClient({ baseUrl: A.url, token: adminToken });
      b = new ManagerClient({ baseUrl: B.url, token: adminToken });
      agentSwitch = await startSwitch({ A: A.url, B: B.url });
      agent = await firstAgent;
      const registered = await a.registerHost({
        name: 'replicas-host',
        url: `http://127.0.0.1:${agentPort}`,
        token: agentToken,
      });
      hostId = registered.host.id;
      await agent.stop();
      // The targets' repositories are made meanwhile (each costs the manager a full-strength scrypt). The
      // main one runs no daily GC: an hour turning during the test must not start one. The daily GC targets'
      // hour is now's, so their next window opens tomorrow, until the test moves their creation back.
      const hour = new Date().getUTCHours();
      const [restarted, main, ...daily] = await Promise.all([
        startAgentProcess(agentPort, {
          ...agentEnv,
          AGENT_MANAGER_URL: agentSwitch.url,
          AGENT_MANAGER_TOKEN: registered.manager_token,
        }),
        b.createTarget({
          kind: 'filesystem',
          name: 'replicas',
          filesystem: { path: join(repositoriesRoot, 'main') },
          gc_enabled: false,
        }),
        ...[1, 2].map((n) =>
          (n % 2 ? a : b).createTarget({
            kind: 'filesystem',
            name: `replicas-daily-gc-${n}`,
            filesystem: { path: join(repositoriesRoot, `daily-gc-${n}`) },
            gc_hour: hour,
            timezone: 'UTC',
          }),
        ),
      ]);
      agent = restarted;
      targetId = main.target.id;
      dailyGcTargets = daily.map((t) => t.target.id);
    }, 120_000);

    afterAll(async () => {
      // REPLICAS_LOG_DIR=<dir>: the three processes' logs kept there, to read after a failure.
      if (process.env.REPLICAS_LOG_DIR) {
        for (const r of [A, B, agent])
          writeFileSync(join(process.env.REPLICAS_LOG_DIR, `${r.name}.log`), r.text.join(''));
      }
      await agent?.stop();
      await Promise.all([A?.stop(), B?.stop()]);
      await agentSwitch?.stop();
      await database?.close();
      await postgres?.stop();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    async function volume(name: string, client: ManagerClient, size = 256 * KiB) {
      const v = await client.createVolume({
        name,
        host_id: hostId,
        backend: 'local-file',
        size,
        backup_target_id: targetId,
        snapshot: 'copy',
      });
      writeFileSync(v.locator!, randomBytes(size));
      return v;
    }

    const eventsOf = (jobId: string) => agentSwitch.deliveries.filter((d) => d.jobId === jobId);
    const logged = (msg: string, key: string, value: string) =>
      replicas().flatMap((r) => r.lines.filter((l) => l.msg === msg && l[key] === value).map(() => r.name));

    it('migrated the database once, though both replicas started on it at once', async () => {
      const applied = replicas().map(
        (r) =>
          (r.lines.find((l) => l.msg === 'database ready')?.migrations_applied as string[] | undefined) ?? [],
      );
      const files = await sql<{ name: string }>`SELECT name FROM manager_migration ORDER BY name`.execute(
        database.db,
      );
      expect(files.rows.length).toBeGreaterThan(0);
      // Each file applied by exactly one of them; the other found it applied.
      expect([...applied[0]!, ...applied[1]!].sort()).toEqual(files.rows.map((r) => r.name));
    });

    it('serves the same API from both replicas: what one writes the other answers', async () => {
      const v = await volume('replicas-api', a);
      const fromB = await b.getVolume(v.id);
      expect(fromB).toEqual(await a.getVolume(v.id));
      for (const read of [
        (c: ManagerClient) => c.listHosts(),
        (c: ManagerClient) => c.listTargets(),
        (c: ManagerClient) => c.listVolumes(),
        (c: ManagerClient) => c.getTarget(targetId),
        (c: ManagerClient) => c.getOpenApi(),
      ]) {
        const [fromA, fromOther] = await Promise.all([read(a), read(b)]);
        expect(fromOther).toEqual(fromA);
      }
      expect((await b.listHosts()).items).toEqual([expect.objectContaining({ id: hostId, status: 'up' })]);
      // A bad request is refused alike by both.
      for (const c of [a, b]) {
        const error = await c.getVolume(randomUUID()).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ApiError);
        expect((error as ApiError).code).toBe('not_found');
      }
    });

    it('finishes a job started through one replica from the events the agent sends to the other', async () => {
      const v = await volume('replicas-events', a, 2 * 1024 * KiB);
      for (const [start, report, startName, reportName] of [
        [a, b, 'A', 'B'],
        [b, a, 'B', 'A'],
      ] as const) {
        agentSwitch.route(reportName);
        const { job, backup } = await start.backupNow(v.id);
        // Followed on the replica that started it, which hears of the events only through the database.
        const [last, done] = await Promise.all([streamed(start, job.id), finished(report, job.id)]);
        expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
        expect(last?.state).toBe('succeeded');
        expect(await start.getBackup(backup.id)).toMatchObject({ state: 'completed', size: 2 * 1024 * KiB });
        const events = eventsOf(job.id);
        expect(events.length).toBeGreaterThan(0);
        expect(events.every((e) => e.upstream === reportName && e.status === 204)).toBe(true);
        expect(events.some((e) => e.state === 'succeeded')).toBe(true);
        // The commit fence was asked of the other replica too, and granted.
        const commits = agentSwitch.deliveries.filter((d) => d.path === `/v1/agent/jobs/${job.id}/commit`);
        expect(commits.map((c) => [c.upstream, c.status])).toEqual([[reportName, 200]]);
        expect(logged('backup started', 'job_id', job.id)).toEqual([startName]);
        expect(logged('job finished', 'job_id', job.id)).toEqual([reportName]);
      }
    }, 60_000);

    it('fires a due schedule once, though both schedulers tick every 200 ms', async () => {
      agentSwitch.route('A');
      const volumes = await Promise.all([
        volume('replicas-cron-1', a),
        volume('replicas-cron-2', b),
        volume('replicas-cron-3', a),
      ]);
      // Yearly: due once now, then not again for months, so a second backup can only be a double fire.
      for (const [i, v] of volumes.entries()) {
        const updated = await (i % 2 ? b : a).updateBackupSchedule(v.id, {
          cron: '0 0 1 1 *',
          timezone: 'UTC',
        });
        expect(updated.schedule?.status).not.toBe('due');
      }
      await sleep(5 * LOOP_MS);
      const ids = volumes.map((v) => v.id);
      const backups = () =>
        database.db
          .selectFrom('backup')
          .select(['volume_id', 'state'])
          .where('volume_id', 'in', ids)
          .execute();
      expect(await backups()).toEqual([]);
      // As if the schedules were set last year and the managers were down at the new year: due now.
      const since = Date.now();
      await database.db
        .updateTable('volume')
        .set({ schedule_since: sql`now() - interval '400 days'` })
        .where('id', 'in', ids)
        .execute();
      await until('every scheduled backup to complete', async () => {
        const rows = await backups();
        return rows.filter((r) => r.state === 'completed').length >= ids.length ? rows : undefined;
      });
      // Many more ticks of both schedulers, then count.
      await sleep(10 * LOOP_MS);
      const rows = await backups();
      for (const id of ids) expect(rows.filter((r) => r.volume_id === id)).toEqual([expect.anything()]);
      const jobs = await database.db
        .selectFrom('job')
        .select('volume_id')
        .where('volume_id', 'in', ids)
        .execute();
      expect(jobs).toHaveLength(ids.length);
      // Both schedulers saw the volumes due after the change (their passes are logged at debug).
      for (const r of replicas()) {
        const passes = r.lines.filter(
          (l) => l.msg === 'scheduler pass' && Date.parse(l.time as string) > since,
        );
        expect(passes.length, `${r.name}'s scheduler passes`).toBeGreaterThan(10);
      }
      for (const id of ids) expect(logged('scheduled backup started', 'volume_id', id)).toHaveLength(1);
      const next = (await b.getVolume(ids[0]!)).schedule?.next_fire_at;
      expect(new Date(next!).getUTCMonth()).toBe(0);
      expect(new Date(next!).getUTCDate()).toBe(1);
    }, 60_000);

    it('runs one GC of a target, whichever replicas are asked at once: one 202, one 409 naming it', async () => {
      // A backup holding its lease keeps the winning run in its wait phase, so the loser surely sees it.
      agentSwitch.route('B');
      const v = await volume('replicas-gc', b, 32 * 1024 * KiB);
      const { job } = await a.backupNow(v.id);
      await until('the backup to run', async () => {
        const j = await a.getJob(job.id);
        return j.state === 'running' ? j : undefined;
      });
      const post = (url: string) =>
        fetch(`${url}/v1/backup_targets/${targetId}/gc`, {
          method: 'POST',
          headers: { authorization: `Bearer ${adminToken}` },
        });
      const answers = await Promise.all([post(A.url), post(B.url)]);
      const bodies = (await Promise.all(answers.map((r) => r.json()))) as Record<string, unknown>[];
      const statuses = answers.map((r) => r.status);
      expect([...statuses].sort()).toEqual([202, 409]);
      const won = bodies[statuses.indexOf(202)] as { id: string; state: string };
      const lost = bodies[statuses.indexOf(409)] as { code: string; details: { gc_run_id: string } };
      expect(won.state).toBe('running');
      expect(lost.code).toBe('conflict');
      expect(lost.details.gc_run_id).toBe(won.id);
      const winner = statuses.indexOf(202) === 0 ? A : B;
      const loser = winner === A ? B : A;
      expect(logged('GC run started', 'gc_run_id', won.id)).toEqual([winner.name]);
      // The backup ends (its commit granted through B), then the run sweeps and ends; both agree on it.
      expect((await finished(a, job.id)).state).toBe('succeeded');
      const run = await until('the GC run to end', async () => {
        const r = await (loser === A ? a : b).getGcRun(targetId, won.id);
        return r.state === 'running' ? undefined : r;
      });
      expect(run.state, JSON.stringify(run.error)).toBe('succeeded');
      expect(run.manifests).toBeGreaterThan(0);
      const [runsA, runsB] = await Promise.all([a.listGcRuns(targetId), b.listGcRuns(targetId)]);
      expect(runsB).toEqual(runsA);
      expect(runsA.items.map((r) => r.id)).toEqual([won.id]);
    }, 60_000);

    it('starts one daily GC per target and window, though both GC loops find it due together', async () => {
      const ids = dailyGcTargets;
      const runs = () =>
        database.db
          .selectFrom('backup_gc_run')
          .select(['backup_target_id', 'state', 'trigger'])
          .where('backup_target_id', 'in', ids)
          .execute();
      await sleep(5 * LOOP_MS);
      expect(await runs()).toEqual([]);
      // As if the targets were made two days ago: today's window is open and nothing ran in it.
      await database.db
        .updateTable('backup_target')
        .set({ created_at: sql`created_at - interval '2 days'` })
        .where('id', 'in', ids)
        .execute();
      await until('every daily run to end', async () => {
        const rows = await runs();
        return rows.filter((r) => r.state !== 'running').length >= ids.length ? rows : undefined;
      });
      await sleep(10 * LOOP_MS);
      const rows = await runs();
      for (const id of ids) {
        expect(rows.filter((r) => r.backup_target_id === id)).toEqual([
          { backup_target_id: id, state: 'succeeded', trigger: 'schedule' },
        ]);
      }
    }, 60_000);

    it('applies retention once per backup, whichever replica records it, keeping the expected set', async () => {
      const v = await volume('replicas-retention', a);
      await b.updateBackupSchedule(v.id, { retention: { keep_last: 2 } });
      const made: string[] = [];
      for (let n = 0; n < 4; n++) {
        // Started through one replica, reported to (and so pruned by) the other, alternately.
        agentSwitch.route(n % 2 ? 'A' : 'B');
        const { job, backup } = await (n % 2 ? b : a).backupNow(v.id);
        made.push(backup.id);
        expect((await finished(a, job.id)).state).toBe('succeeded');
        const keep = made.slice(-2);
        await until('retention to leave the newest two', async () => {
          const items = (await b.listBackups({ volume_id: v.id })).items;
          const ids = items.map((i) => i.id).sort();
          return JSON.stringify(ids) === JSON.stringify([...keep].sort()) ? items : undefined;
        });
      }
      const remaining = (await a.listBackups({ volume_id: v.id })).items;
      expect(remaining.map((r) => [r.id, r.state])).toEqual([
        [made[3], 'completed'],
        [made[2], 'completed'],
      ]);
      const manifest = (id: string) => join(repositoriesRoot, 'main', 'manifests', v.id, id);
      expect(made.map((id) => existsSync(manifest(id)))).toEqual([false, false, true, true]);
      // Each pruned backup deleted once, by the replica that recorded the next success; none twice.
      expect(logged('backup deleted', 'backup_id', made[0]!)).toEqual(['B']);
      expect(logged('backup deleted', 'backup_id', made[1]!)).toEqual(['A']);
      for (const id of made.slice(2)) expect(logged('backup deleted', 'backup_id', id)).toEqual([]);
      expect(logged('retention after a backup failed', 'volume_id', v.id)).toEqual([]);

      // A prune asked of both replicas at once: both answer, the pruned backup is gone, the newest stays.
      await a.updateBackupSchedule(v.id, { retention: { keep_last: 1 } });
      const answers = await Promise.all([a.pruneVolume(v.id), b.pruneVolume(v.id)]);
      for (const answer of answers) {
        expect(answer.keep.map((k) => k.backup_id)).toEqual([made[3]]);
        // Each plans from what it reads: made[2], or nothing if the other was already done.
        expect(answer.remove.map((r) => r.backup_id)).toEqual(answer.remove.length ? [made[2]] : []);
      }
      expect(answers.some((answer) => answer.remove.length === 1)).toBe(true);
      expect((await b.listBackups({ volume_id: v.id })).items.map((r) => r.id)).toEqual([made[3]]);
      expect(made.map((id) => existsSync(manifest(id)))).toEqual([false, false, false, true]);
    }, 60_000);

    // When both replicas' prunes pass requireBackup before either deletes the row, only the one whose DELETE
    // took the row counts it (deleteBackup answers not_found to the other).
    it('counts a backup that two concurrent prunes delete once', async () => {
      const v = await volume('replicas-prune-twice', b);
      const made: string[] = [];
      for (let n = 0; n < 2; n++) {
        const { job, backup } = await a.backupNow(v.id);
        made.push(backup.id);
        expect((await finished(b, job.id)).state).toBe('succeeded');
      }
      await b.updateBackupSchedule(v.id, { retention: { keep_last: 1 } });
      const [pa, pb] = await Promise.all([a.pruneVolume(v.id), b.pruneVolume(v.id)]);
      expect(pa.deleted + pb.deleted).toBe(1);
      expect(logged('backup deleted', 'backup_id', made[0]!)).toHaveLength(1);
      expect((await a.listBackups({ volume_id: v.id })).items.map((r) => r.id)).toEqual([made[1]]);
    }, 60_000);

    it('logged no error in either replica', () => {
      for (const r of replicas()) {
        const errors = r.lines.filter((l) => l.level === 'error' || l.level === 'raw');
        expect(errors, r.name).toEqual([]);
      }
    });
  },
);
