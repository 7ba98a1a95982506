import { createHash, timingSafeEqual } from 'node:crypto';
import {
  ApiError,
  BackendKind,
  BackupRequest,
  CreateSnapshotRequest,
  type Job,
  Locator,
  ProvisionVolumeRequest,
  RestoreRequest,
  type Snapshot,
  type TargetSettings,
  VerifyRequest,
  type Volume,
  VolumeQuery,
  validationDetails,
  validationMessage,
} from '@stowage/api';
import type { HostBackend, SnapshotInfo, VolumeInfo } from '@stowage/host-backends';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { z } from 'zod';
import type { JobRunner, Logger } from '../contracts.js';
import { apiErrorFromHostBackend } from '../errors.js';
import { JOB_SNAPSHOT_PREFIX } from '../jobs/job-runner.js';
import { VolumeLocks } from '../volume-locks.js';

export interface AgentAppOptions {
  /** The bearer token every route but `/healthz` requires. */
  token: string;
  backends: ReadonlyMap<BackendKind, HostBackend>;
  runner: JobRunner;
  /** The volume locks the runner's jobs hold: volume routes take them too, or answer 409 naming the job. */
  locks: VolumeLocks;
  metrics: { render(): Promise<{ contentType: string; body: string }> };
  logger: Logger;
  /** Refuses a job's target before the job is queued (e.g. a file:// repository outside the allowed roots). */
  checkTarget?: (target: TargetSettings) => void;
  /** True once shutdown began: health says so, and new work is refused by the runner. */
  isStopping?: () => boolean;
  /** Largest request body accepted (default 64 KiB; requests are small JSON documents). */
  maxBodyBytes?: number;
}

/**
 * The agent's HTTP API (routes listed in `@stowage/api`'s agent.ts). Every input is validated with the shared
 * zod schemas before anything touches a backend; every failure leaves as `{ code, message, details? }`.
 * Built on Hono so handlers are tested in process with `app.request(…)`.
 */
export function createAgentApp(options: AgentAppOptions): Hono {
  const { backends, runner, logger, locks } = options;
  const app = new Hono();
  const expected = digest(options.token);

  app.onError((error, c) => errorResponse(c, error, logger));
  app.notFound((c) =>
    errorResponse(c, new ApiError('not_found', `no route ${c.req.method} ${c.req.path}`), logger),
  );

  app.get('/healthz', (c) => c.json({ status: options.isStopping?.() ? 'stopping' : 'ok' }));

  app.use('*', async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer (.+)$/i.exec(header);
    if (match === null || !timingSafeEqual(digest(match[1]!), expected)) {
      // The attempt is logged; the presented token never is.
      logger.warn('unauthorized request', {
        method: c.req.method,
        path: c.req.path,
        reason: match === null ? 'no bearer token' : 'wrong token',
      });
      c.header('WWW-Authenticate', 'Bearer realm="stowage-agent"');
      throw new ApiError('unauthorized', 'a valid bearer token is required');
    }
    await next();
  });

  app.use(
    '*',
    bodyLimit({
      maxSize: options.maxBodyBytes ?? 64 * 1024,
      onError: () => {
        throw new ApiError('payload_too_large', 'request body too large');
      },
    }),
  );

  const backend = (kind: BackendKind): HostBackend => {
    const found = backends.get(kind);
    if (found === undefined) {
      throw new ApiError('not_found', `backend ${kind} is not configured on this agent`, {
        configured: [...backends.keys()],
      });
    }
    return found;
  };

  // While the agent stops, nothing new starts on a volume: it would race the shutdown's clean-up.
  const refuseWhileStopping = (): void => {
    if (options.isStopping?.()) {
      throw new ApiError('unavailable', 'the agent is shutting down and takes no volume changes');
    }
  };

  app.get('/v1/backends', (c) =>
    c.json(
      [...backends.entries()].map(([kind, b]) => ({
        backend: kind,
        capabilities: { provision: b.capabilities.provision, snapshot: b.capabilities.snapshot },
      })),
    ),
  );

  app.get('/v1/volumes', async (c) => {
    const { backend: kind } = parse(z.strictObject({ backend: BackendKind }), c.req.query());
    return c.json((await backend(kind).list()).map((v) => volume(kind, v)));
  });

  app.post('/v1/volumes', async (c) => {
    const request = parse(ProvisionVolumeRequest, await body(c));
    refuseWhileStopping();
    const info = await locks.during(
      [VolumeLocks.nameKey(request.backend, request.name)],
      'a volume provision',
      `volume name ${request.name}`,
      () => backend(request.backend).provision({ name: request.name, size: request.size }),
    );
    logger.info('volume provisioned', { backend: request.backend, locator: info.locator, size: info.size });
    return c.json(volume(request.backend, info), 201);
  });

  app.get('/v1/volume', async (c) => {
    const query = parse(VolumeQuery, c.req.query());
    return c.json(volume(query.backend, await backend(query.backend).stat(query.locator)));
  });

  /** Runs `work` on the volume `locator` names, holding it (canonical: the backend resolves it first). */
  const holdingVolume = async <T>(
    kind: BackendKind,
    locator: string,
    what: string,
    work: (canonical: string) => Promise<T>,
  ): Promise<T> => {
    const volume = await backend(kind).stat(locator);
    return locks.during(VolumeLocks.keysOf(kind, volume), what, `volume ${volume.locator}`, () =>
      work(volume.locator),
    );
  };

  app.delete('/v1/volume', async (c) => {
    const query = parse(VolumeQuery, c.req.query());
    refuseWhileStopping();
    await holdingVolume(query.backend, query.locator, 'a volume delete', (canonical) =>
      backend(query.backend).deleteVolume(canonical),
    );
    logger.info('volume deleted', { backend: query.backend, locator: query.locator });
    return c.body(null, 204);
  });

  app.post('/v1/snapshots', async (c) => {
    const request = parse(CreateSnapshotRequest, await body(c));
    refuseWhileStopping();
    if (request.name.startsWith(JOB_SNAPSHOT_PREFIX)) {
      throw new ApiError(
        'invalid_request',
        `snapshot names starting ${JOB_SNAPSHOT_PREFIX} are the agent's own`,
      );
    }
    const result = await holdingVolume(request.backend, request.volume, 'a snapshot', (canonical) =>
      backend(request.backend).snapshot(canonical, request.name, { allowCopy: request.allow_copy === true }),
    );
    logger.info('snapshot created', {
      backend: request.backend,
      locator: result.locator,
      method: result.method,
    });
    return c.json({ ...snapshot(request.backend, result), method: result.method }, 201);
  });

  app.get('/v1/snapshots', async (c) => {
    const query = parse(z.strictObject({ backend: BackendKind, volume: Locator }), c.req.query());
    const list = await backend(query.backend).listSnapshots(query.volume);
    return c.json(list.map((s) => snapshot(query.backend, s)));
  });

  app.delete('/v1/snapshot', async (c) => {
    const query = parse(VolumeQuery, c.req.query());
    refuseWhileStopping();
    // A job's own snapshot is what it is reading: it goes when the job ends, and not before.
    const jobId = new RegExp(`@${JOB_SNAPSHOT_PREFIX}([0-9a-f-]{36})$`, 'i').exec(query.locator)?.[1];
    if (jobId !== undefined && runner.isActive(jobId)) {
      throw new ApiError('conflict', `snapshot ${query.locator} is in use by job ${jobId.toLowerCase()}`, {
        job_id: jobId.toLowerCase(),
      });
    }
    await backend(query.backend).deleteSnapshot(query.locator);
    logger.info('snapshot deleted', { backend: query.backend, locator: query.locator });
    return c.body(null, 204);
  });

  app.post('/v1/storage/backup', async (c) => {
    const request = parse(BackupRequest, await body(c));
    backend(request.volume.backend);
    options.checkTarget?.(request.target);
    return c.json(await runner.submitBackup(request), 202);
  });

  app.post('/v1/storage/restore', async (c) => {
    const request = parse(RestoreRequest, await body(c));
    const destination = backend(request.destination.backend);
    if ('name' in request.destination && !destination.capabilities.provision) {
      throw new ApiError(
        'unsupported',
        `backend ${request.destination.backend} cannot provision a new volume; restore to an existing one (locator)`,
      );
    }
    options.checkTarget?.(request.target);
    return c.json(await runner.submitRestore(request), 202);
  });

  app.post('/v1/storage/verify', async (c) => {
    const request = parse(VerifyRequest, await body(c));
    options.checkTarget?.(request.target);
    return c.json(await runner.submitVerify(request), 202);
  });

  app.get('/v1/jobs', (c) => c.json(runner.list()));

  app.get('/v1/jobs/:id', (c) => c.json(job(runner.get(parse(z.uuid(), c.req.param('id'))))));

  app.post('/v1/jobs/:id/cancel', (c) => c.json(runner.cancel(parse(z.uuid(), c.req.param('id'))), 202));

  app.get('/metrics', async (c) => {
    const { contentType, body } = await options.metrics.render();
    return c.body(body, 200, { 'Content-Type': contentType });
  });

  return app;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new ApiError('invalid_request', validationMessage(result.error), validationDetails(result.error));
  }
  return result.data;
}

async function body(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new ApiError('invalid_request', 'the request body must be JSON (Content-Type: application/json)');
  }
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError('invalid_request', `malformed JSON: ${(error as Error).message}`);
  }
}

function job(found: Job | undefined): Job {
  if (found === undefined) throw new ApiError('not_found', 'no such job on this agent');
  return found;
}

function volume(backend: BackendKind, info: VolumeInfo): Volume {
  return { backend, locator: info.locator, name: info.name, size: info.size };
}

function snapshot(backend: BackendKind, info: SnapshotInfo): Snapshot {
  return { backend, locator: info.locator, volume: info.volume, name: info.name, size: info.size };
}

function errorResponse(c: Context, error: unknown, logger: Logger): Response {
  const apiError =
    error instanceof ApiError
      ? error
      : (apiErrorFromHostBackend(error) ??
        new ApiError('internal', 'internal error', undefined, { cause: error }));
  if (apiError.code === 'internal') {
    logger.error('request failed', {
      method: c.req.method,
      path: c.req.path,
      error: apiError.cause ?? apiError,
    });
  }
  return c.json(apiError.toBody(), apiError.status as 400);
}
