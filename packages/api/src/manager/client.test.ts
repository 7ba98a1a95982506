import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import { ApiError } from '../errors.js';
import { ManagerClient } from './client.js';
import type { ManagedJob } from './jobs.js';
import type { RouteInput, RouteOutput } from './route.js';
import type { ManagerRoutes } from './routes.js';
import { formatServerSentEvent, SSE_KEEP_ALIVE } from './sse.js';
import type { ManagedVolume, VolumeListQuery } from './volumes.js';

const ID = '0b7e8f3a-4c1d-4e6f-9a2b-3c4d5e6f7a8b';
const TOKEN = 'admin-token-0123456789';
const AT = '2026-01-01T00:00:00.000Z';

const volume = (id: string, name = 'db'): ManagedVolume => ({
  id,
  name,
  host_id: ID,
  backend: 'local-file',
  locator: '/srv/volumes/db.img',
  size: 1 << 20,
  state: 'available',
  backup_target_id: null,
  snapshot: true,
  schedule: {
    cron: null,
    timezone: 'UTC',
    enabled: false,
    retention: null,
    next_fire_at: null,
    status: 'unscheduled',
  },
  last_backup_at: null,
  last_backup_id: null,
  created_at: AT,
  updated_at: AT,
  error: null,
});
const job = (state: ManagedJob['state'], bytesDone: number): ManagedJob => ({
  id: ID,
  kind: 'backup',
  state,
  host_id: ID,
  volume_id: ID,
  backup_id: ID,
  created_at: AT,
  started_at: AT,
  finished_at: state === 'succeeded' ? AT : null,
  last_event_at: AT,
  progress: { bytes_done: bytesDone, bytes_total: 100, rate: 10, eta_seconds: null },
  error: null,
});

/** What the tiny server saw, for the assertions about what the client sent. */
const seen: { method: string; url: string; auth: string | undefined; body: string }[] = [];
let server: Server;
let baseUrl: string;

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;
const json = (res: ServerResponse, status: number, value: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
};
const handlers: Record<string, Handler> = {
  [`GET /v1/volumes/${ID}`]: (_req, res) => json(res, 200, volume(ID.toUpperCase())),
  'GET /v1/volumes?limit=2&state=available': (_req, res) =>
    json(res, 200, { items: [volume(ID, 'a'), volume(ID, 'b')], next_cursor: 'page-2' }),
  'GET /v1/volumes?limit=2&state=available&cursor=page-2': (_req, res) =>
    json(res, 200, { items: [volume(ID, 'c')], next_cursor: null }),
  [`POST /v1/volumes/${ID}/backup`]: (_req, res) =>
    json(res, 409, {
      code: 'conflict',
      message: 'a backup of this volume is running',
      details: { job_id: ID },
    }),
  [`GET /v1/hosts/${ID}`]: (_req, res) =>
    res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>'),
  [`GET /v1/backups/${ID}`]: (_req, res) => json(res, 200, { id: ID, surprise: true }),
  [`DELETE /v1/backups/${ID}`]: (_req, res) => res.writeHead(204).end(),
  'GET /healthz': (_req, res) => json(res, 200, { status: 'ok' }),
  [`GET /v1/jobs/${ID}/events`]: (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    // Split at awkward places, with CRLFs, a comment and an event of another name, as a proxy might deliver.
    const wire =
      SSE_KEEP_ALIVE +
      formatServerSentEvent('job', JSON.stringify(job('queued', 0))).replaceAll('\n', '\r\n') +
      formatServerSentEvent('other', '{}') +
      formatServerSentEvent('job', JSON.stringify(job('running', 50))) +
      formatServerSentEvent('job', JSON.stringify(job('succeeded', 100)));
    const pieces = [wire.slice(0, 7), wire.slice(7, 150), wire.slice(150, 151), wire.slice(151)];
    let i = 0;
    const next = () => (i < pieces.length ? res.write(pieces[i++], () => setTimeout(next, 5)) : res.end());
    next();
  },
  'GET /v1/jobs/00000000-0000-4000-8000-000000000000/events': (_req, res) => {
    // Never finishes: the client must leave when its signal aborts.
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(formatServerSentEvent('job', JSON.stringify(job('running', 1))));
  },
};

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
      const handler = handlers[`${req.method} ${req.url}`];
      if (handler === undefined)
        json(res, 404, { code: 'not_found', message: `no route ${req.method} ${req.url}` });
      else handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const client = () => new ManagerClient({ baseUrl, token: TOKEN });

describe('ManagerClient', () => {
  it('parses a JSON answer with the route schema and sends the bearer token', async () => {
    const got = await client().getVolume(ID);
    expect(got).toEqual(volume(ID));
    expect(seen.at(-1)).toMatchObject({ method: 'GET', url: `/v1/volumes/${ID}`, auth: `Bearer ${TOKEN}` });
    await client().getHealth();
    expect(seen.at(-1)?.auth).toBeUndefined();
  });

  it('rebuilds an error body as the ApiError it was', async () => {
    const error = await client()
      .backupNow(ID)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: 'conflict', status: 409, details: { job_id: ID } });
    // An empty body goes out as `{}`.
    expect(seen.at(-1)).toMatchObject({ method: 'POST', body: '{}' });
  });

  it('turns an answer that is not ours into internal, with the HTTP status', async () => {
    await expect(client().getHost(ID)).rejects.toMatchObject({ code: 'internal', details: { status: 502 } });
    await expect(client().getBackup(ID)).rejects.toMatchObject({
      code: 'internal',
      details: { status: 200 },
    });
    await expect(client().getJob(ID)).rejects.toMatchObject({ code: 'not_found', status: 404 });
  });

  it('answers undefined for a 204', async () => {
    await expect(client().deleteBackup(ID)).resolves.toBeUndefined();
    expect(seen.at(-1)).toMatchObject({ method: 'DELETE', url: `/v1/backups/${ID}` });
  });

  it('throws unavailable, with the cause, when the manager cannot be reached', async () => {
    const closed = new ManagerClient({ baseUrl: 'http://127.0.0.1:1', token: TOKEN });
    const error = await closed.getHealth().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'unavailable', status: 503 });
    expect((error as ApiError).cause).toBeInstanceOf(Error);
    const failing = new ManagerClient({
      baseUrl,
      token: TOKEN,
      fetch: () => Promise.reject(new TypeError('fetch failed')),
    });
    await expect(failing.listJobs()).rejects.toMatchObject({ code: 'unavailable', message: /fetch failed/ });
  });

  it('pages through a list with paginate, passing the filters on every page', async () => {
    const c = client();
    const names: string[] = [];
    for await (const v of c.paginate(c.listVolumes, { limit: 2, state: 'available' })) names.push(v.name);
    expect(names).toEqual(['a', 'b', 'c']);
  });

  it('iterates a job event stream to its end', async () => {
    const states: string[] = [];
    for await (const j of client().jobEvents(ID)) states.push(`${j.state}:${j.progress.bytes_done}`);
    expect(states).toEqual(['queued:0', 'running:50', 'succeeded:100']);
  });

  it('leaves a stream quietly when the signal aborts', async () => {
    const abort = new AbortController();
    const states: string[] = [];
    for await (const j of client().jobEvents('00000000-0000-4000-8000-000000000000', abort.signal)) {
      states.push(j.state);
      abort.abort();
    }
    expect(states).toEqual(['running']);
  });

  it('refuses a token that cannot be a header', () => {
    expect(() => new ManagerClient({ baseUrl, token: 'a b\n' })).toThrow(TypeError);
  });
});

describe('the types a route entry gives', () => {
  it('follow from the table, for the client and for handlers', () => {
    const c = client();
    expectTypeOf(c.getVolume).returns.resolves.toEqualTypeOf<ManagedVolume>();
    expectTypeOf(c.deleteBackup).returns.resolves.toEqualTypeOf<undefined>();
    expectTypeOf(c.getMetrics).returns.resolves.toEqualTypeOf<string>();
    expectTypeOf<Parameters<typeof c.listVolumes>[0]>().toEqualTypeOf<
      z.input<typeof VolumeListQuery> | undefined
    >();
    expectTypeOf<RouteInput<ManagerRoutes['listVolumes']>['query']>().toEqualTypeOf<VolumeListQuery>();
    expectTypeOf<RouteInput<ManagerRoutes['backupNow']>['params']>().toEqualTypeOf<{ id: string }>();
    expectTypeOf<RouteOutput<ManagerRoutes['jobEvents']>>().toEqualTypeOf<ManagedJob>();
    const untyped = () =>
      // @ts-expect-error: a create needs a body
      c.request('createTarget', {});
    expect(untyped).toBeTypeOf('function');
  });
});
