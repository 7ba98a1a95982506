import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Job, JobEvent, MANAGER_JOB_EVENTS_PATH } from '@stowage/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createJsonLogger } from '../log.js';
import { ManagerReporter, type ManagerReporterOptions } from './manager-reporter.js';

const TOKEN = 'agent-to-manager-token-0123456789abcdef';

/** A real HTTP server standing in for the manager: records events, and fails the first `failures` requests. */
class FakeManager {
  readonly events: JobEvent[] = [];
  /** When each recorded event arrived (ms, performance.now). */
  readonly arrivals: number[] = [];
  readonly auth: string[] = [];
  failures = 0;
  status = 503;
  server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        expect(req.url).toBe(MANAGER_JOB_EVENTS_PATH);
        this.auth.push(req.headers.authorization ?? '');
        if (this.failures > 0) {
          this.failures--;
          res.writeHead(this.status).end();
          return;
        }
        this.events.push(JobEvent.parse(JSON.parse(body)));
        this.arrivals.push(performance.now());
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function job(id: string, state: Job['state'], bytes = 0): Job {
  return {
    id,
    kind: 'backup',
    state,
    created_at: new Date(0).toISOString(),
    started_at: state === 'queued' ? null : new Date(0).toISOString(),
    finished_at: ['succeeded', 'failed', 'cancelled'].includes(state) ? new Date(0).toISOString() : null,
    progress: { bytes_done: bytes, bytes_total: 100, rate: 1, eta_seconds: null },
    error: null,
    result: null,
    destination: null,
  };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

let dir: string;
let manager: FakeManager;
let logs: string[];
const reporters: ManagerReporter[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-outbox-'));
  manager = new FakeManager();
  await manager.start();
  logs = [];
});

afterEach(async () => {
  for (const r of reporters.splice(0)) await r.stop(0);
  await manager.stop();
  await rm(dir, { recursive: true, force: true });
});

function reporter(options: Partial<ManagerReporterOptions> = {}): ManagerReporter {
  const r = new ManagerReporter({
    managerUrl: manager.url,
    token: TOKEN,
    agentId: 'host-1',
    stateDir: dir,
    logger: createJsonLogger({ level: 'debug', write: (line) => logs.push(line) }),
    progressIntervalMs: 200,
    initialBackoffMs: 20,
    maxBackoffMs: 100,
    ...options,
  });
  reporters.push(r);
  return r;
}

describe('job events to the manager', () => {
  it('throttles progress per job, keeps only the newest, and always sends the final event', async () => {
    const r = reporter();
    await r.start();
    const id = randomUUID();
    r.jobChanged(job(id, 'running'), 'state');
    for (let i = 1; i <= 50; i++) r.jobChanged(job(id, 'running', i), 'progress');
    // The burst coalesces: the newest state of the job goes out, the 49 older ones never do.
    await until(() => manager.events.length >= 1, 'the first progress');
    // A change right after a send waits for the interval.
    r.jobChanged(job(id, 'running', 55), 'progress');
    await until(() => manager.events.length >= 2, 'the next progress, one interval later');
    expect(manager.events.map((e) => e.job.progress.bytes_done)).toEqual([50, 55]);
    r.jobChanged(job(id, 'running', 60), 'progress');
    r.jobChanged(job(id, 'succeeded', 100), 'state');
    await r.flush();
    await until(() => manager.events.some((e) => e.type === 'finished'), 'the final event');
    const sent = manager.events;
    expect(sent.at(-1)).toMatchObject({ type: 'finished', agent_id: 'host-1', job: { state: 'succeeded' } });
    // The superseded progress (60) was never sent after the final one; sequence numbers only grow.
    expect(sent.filter((e) => e.job.progress.bytes_done === 60 && e.type === 'progress')).toEqual([]);
    expect(sent.map((e) => e.seq)).toEqual([...sent.map((e) => e.seq)].sort((a, b) => a - b));
    for (const e of sent) expect(e.event_id).toBe(`${id}:${e.seq}`);
    // Progress of one job reaches the manager no more often than the interval (200 ms here).
    const progress = sent.flatMap((e, i) => (e.type === 'progress' ? [manager.arrivals[i]!] : []));
    expect(progress.length).toBe(2);
    expect(progress[1]! - progress[0]!).toBeGreaterThanOrEqual(195);
    expect(manager.auth.every((a) => a === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('retries until acknowledged, and never logs the token', async () => {
    manager.failures = 4;
    const r = reporter();
    await r.start();
    const id = randomUUID();
    r.jobChanged(job(id, 'failed'), 'state');
    await until(() => manager.events.length === 1, 'delivery after failures');
    expect(manager.auth.length).toBe(5);
    await until(() => r.undelivered().length === 0, 'the acknowledgement');
    expect(logs.filter((l) => l.includes('will retry')).length).toBeGreaterThan(0);
    expect(logs.join('')).not.toContain(TOKEN);
  });

  it('keeps an undelivered final event across a restart and delivers it after', async () => {
    const down = reporter({ managerUrl: 'http://127.0.0.1:1' });
    await down.start();
    const id = randomUUID();
    down.jobChanged(job(id, 'succeeded'), 'state');
    await down.flush();
    await down.stop(50);
    const saved = JSON.parse(await readFile(join(dir, 'outbox.json'), 'utf8')) as { events: JobEvent[] };
    expect(saved.events.map((e) => e.job.id)).toEqual([id]);

    const next = reporter();
    await next.start();
    await until(() => manager.events.length === 1, 'delivery after restart');
    expect(manager.events[0]).toMatchObject({ type: 'finished', event_id: saved.events[0]!.event_id });
    // The manager has it; the reporter forgets it once the answer is read, then rewrites the file.
    await until(() => next.undelivered().length === 0, 'the acknowledgement');
    await next.flush();
    const after = JSON.parse(await readFile(join(dir, 'outbox.json'), 'utf8')) as { events: JobEvent[] };
    expect(after.events).toEqual([]);
    // Events the new process makes for the same job sort after the old ones.
    next.jobChanged(job(id, 'failed'), 'state');
    await until(() => manager.events.length === 2, 'the newer event');
    expect(manager.events[1]!.seq).toBeGreaterThan(manager.events[0]!.seq);
  });

  it('fails flush() while the outbox cannot be written, so the caller keeps its own record', async () => {
    const stateDir = join(dir, 'state');
    const r = reporter({ managerUrl: 'http://127.0.0.1:1', stateDir });
    await r.start();
    await writeFile(stateDir, 'a file where the state directory should be');
    const first = randomUUID();
    r.jobChanged(job(first, 'succeeded'), 'state');
    await expect(r.flush()).rejects.toThrow(/could not write the job event outbox/);
    expect(logs.some((l) => l.includes('could not write the job event outbox'))).toBe(true);
    // Once the directory can be made, the next write holds every undelivered event, the first included.
    await rm(stateDir);
    const second = randomUUID();
    r.jobChanged(job(second, 'failed'), 'state');
    await r.flush();
    const saved = JSON.parse(await readFile(join(stateDir, 'outbox.json'), 'utf8')) as { events: JobEvent[] };
    expect(saved.events.map((e) => e.job.id).sort()).toEqual([first, second].sort());
  });

  it('once stopped, fails flush() for a final event that comes later (a job that outlived shutdown)', async () => {
    const r = reporter();
    await r.start();
    await r.stop(0);
    r.jobChanged(job(randomUUID(), 'succeeded'), 'state');
    await expect(r.flush()).rejects.toThrow(/stopped/);
    expect(manager.auth).toEqual([]);
  });

  it("doesn't let one job's refused or failing events hold up another's", async () => {
    const r = reporter({ initialBackoffMs: 5_000, maxBackoffMs: 5_000 });
    await r.start();
    manager.failures = 1;
    const stuck = randomUUID();
    r.jobChanged(job(stuck, 'failed'), 'state');
    await until(() => manager.auth.length === 1, 'the first attempt');
    const other = randomUUID();
    r.jobChanged(job(other, 'succeeded'), 'state');
    await until(() => manager.events.some((e) => e.job.id === other), 'the other job');
    expect(manager.events.some((e) => e.job.id === stuck)).toBe(false);
    await until(() => r.undelivered().length === 1, 'the acknowledgement of the other job');
    expect(r.undelivered().map((e) => e.job.id)).toEqual([stuck]);
  });

  it('retries a final event through 401, 404, 409 and 429 answers until the manager takes it', async () => {
    const r = reporter();
    await r.start();
    const id = randomUUID();
    for (const status of [401, 404, 409, 429]) {
      manager.failures = 1;
      manager.status = status;
      const attempts = manager.auth.length;
      r.jobChanged(job(id, 'failed'), 'state');
      await until(() => manager.auth.length > attempts + 1, `a retry after ${status}`);
      await until(() => r.undelivered().length === 0, `delivery after ${status}`);
    }
    expect(manager.events.map((e) => e.job.id)).toEqual([id, id, id, id]);
    expect(logs.some((l) => l.includes('manager refused a job event'))).toBe(false);
  });

  it('drops an event the manager rejects as invalid (400, 413, 422), logging it', async () => {
    manager.failures = 1;
    manager.status = 422;
    const r = reporter();
    await r.start();
    r.jobChanged(job(randomUUID(), 'failed'), 'state');
    await until(() => logs.some((l) => l.includes('manager refused a job event')), 'the drop');
    expect(r.undelivered()).toEqual([]);
  });

  it('moves a corrupt outbox aside and starts empty', async () => {
    await writeFile(join(dir, 'outbox.json'), '{ not json');
    const r = reporter();
    await r.start();
    expect((await readdir(dir)).some((name) => name.startsWith('outbox.json.corrupt-'))).toBe(true);
    expect(logs.some((l) => l.includes('outbox unreadable'))).toBe(true);
    expect(r.undelivered()).toEqual([]);
  });

  it('sends nothing without a manager URL', async () => {
    const r = reporter({ managerUrl: undefined });
    await r.start();
    r.jobChanged(job(randomUUID(), 'succeeded'), 'state');
    await r.flush();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(manager.auth).toEqual([]);
  });
});
