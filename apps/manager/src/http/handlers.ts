import { randomUUID } from 'node:crypto';
import { ApiError, managerOpenApiDocument } from '@stowage/api';
import { listBackups } from '../db/backups.js';
import { uniqueViolation } from '../db/conn.js';
import { listHosts } from '../db/hosts.js';
import { listJobs } from '../db/jobs.js';
import { decodeCursor, toPage } from '../db/pagination.js';
import { deleteTarget, getTarget, listTargets, targetUsers, updateTarget } from '../db/targets.js';
import { insertToken, listTokensPage, revokeToken } from '../db/tokens.js';
import { listVolumes } from '../db/volumes.js';
import { nextFireTimes, parseSchedule } from '../loops/schedule.js';
import { secretPlace } from '../secrets/envelope.js';
import { generateToken, hashToken } from '../secrets/tokens.js';
import { backupNow, deleteBackup, requireBackup } from '../services/backups.js';
import type { ManagerContext } from '../services/context.js';
import { registerHost, requireHost } from '../services/hosts.js';
import { applyJobEvent } from '../services/job-events.js';
import { cancelJob, requireJob } from '../services/jobs.js';
import { restoreBackup } from '../services/restores.js';
import { pruneVolume } from '../services/retention.js';
import { scheduleApiError, updateSchedule } from '../services/schedules.js';
import { createVolume, deleteVolume, requireVolume } from '../services/volumes.js';
import { locationOfRequest } from '../targets/locations.js';
import { createTarget, scheduleSettingsOf, testLocation, testTarget } from '../targets/targets.js';
import type { Handlers } from './app.js';
import { alertHandlers } from './handlers-alerts.js';
import { dashboardHandlers } from './handlers-dashboard.js';
import { gcHandlers } from './handlers-gc.js';
import { recoveryHandlers } from './handlers-recovery.js';
import { type SessionSettings, userHandlers } from './handlers-users.js';
import { verifyHandlers } from './handlers-verify.js';
import { type JobWatchers, jobEventStream } from './job-stream.js';
import { backupJson, hostJson, jobJson, targetJson, tokenJson, volumeJson } from './representations.js';

export interface HandlerDeps {
  readonly ctx: ManagerContext;
  readonly watchers: JobWatchers;
  readonly metrics: () => Promise<string>;
  readonly isStopping: () => boolean;
  /** How console sign-ins last and whether their cookie is Secure; default 12 h, not Secure. */
  readonly sessions?: SessionSettings;
}

const byCreated = (row: { created_at: Date; id: string }) => ({ at: row.created_at, id: row.id });
const byStarted = (row: { started_at: Date; id: string }) => ({ at: row.started_at, id: row.id });

async function requireTarget(ctx: ManagerContext, id: string) {
  const target = await getTarget(ctx.db, id);
  if (!target) throw new ApiError('not_found', `no backup target ${id}`);
  return target;
}

/** Every route's implementation: parse → service → representation; nothing here touches a secret's value. */
export function createHandlers(deps: HandlerDeps): Handlers {
  const { ctx } = deps;
  let openApi: Record<string, unknown> | undefined;
  const targetWithUsage = async (id: string) => {
    const row = await requireTarget(ctx, id);
    return targetJson(row);
  };
  return {
    getHealth: async () => ({ status: deps.isStopping() ? 'stopping' : 'ok' }),
    getOpenApi: async () => (openApi ??= managerOpenApiDocument() as unknown as Record<string, unknown>),
    getMetrics: async () => deps.metrics(),

    createToken: async ({ body }) => {
      const secret = generateToken();
      const row = await insertToken(ctx.db, {
        id: randomUUID(),
        name: body.name,
        role: body.role,
        hostId: null,
        hash: hashToken(secret),
      });
      ctx.logger.info('token created', { token_id: row.id, role: row.role });
      return { token: tokenJson(row), secret };
    },
    listTokens: async ({ query }) => {
      const rows = await listTokensPage(ctx.db, { limit: query.limit, cursor: decodeCursor(query.cursor) });
      return toPage(rows, query.limit, byCreated, tokenJson);
    },
    revokeToken: async ({ params }, caller) => {
      if (caller?.kind === 'token' && caller.token.id === params.id)
        throw new ApiError('conflict', 'a token cannot revoke itself');
      const row = await revokeToken(ctx.db, params.id, ctx.now());
      if (!row) throw new ApiError('not_found', `no token ${params.id}`);
      ctx.logger.info('token revoked', { token_id: row.id });
      return undefined;
    },

    registerHost: async ({ body }) => {
      const { host, managerToken } = await registerHost(ctx, body);
      return { host: hostJson(host), manager_token: managerToken };
    },
    listHosts: async ({ query }) => {
      const rows = await listHosts(ctx.db, { limit: query.limit, cursor: decodeCursor(query.cursor) });
      return toPage(rows, query.limit, byCreated, hostJson);
    },
    getHost: async ({ params }) => hostJson(await requireHost(ctx, params.id)),

    createTarget: async ({ body }) => {
      const { row, recoveryPassphrase } = await createTarget(ctx, {
        name: body.name,
        location: locationOfRequest(body),
        credentials: body.kind === 's3' ? body.credentials : undefined,
        passphrase: body.passphrase,
        avgChunkSize: body.chunker?.avg_size,
        settings: scheduleSettingsOf(body),
      });
      ctx.logger.info('target created', { target_id: row.id, repository_id: row.repository_id });
      return { target: targetJson(row), recovery_passphrase: recoveryPassphrase };
    },
    listTargets: async ({ query }) => {
      const rows = await listTargets(ctx.db, { limit: query.limit, cursor: decodeCursor(query.cursor) });
      return toPage(rows, query.limit, byCreated, targetJson);
    },
    getTarget: async ({ params }) => targetWithUsage(params.id),
    updateTarget: async ({ params, body }) => {
      const row = await requireTarget(ctx, params.id);
      if (body.credentials !== undefined && row.kind !== 's3') {
        throw new ApiError('invalid_request', 'credentials: a filesystem target has none');
      }
      await updateTarget(ctx.db, row.id, {
        ...(body.name === undefined ? {} : { name: body.name }),
        ...scheduleSettingsOf(body),
        ...(body.credentials === undefined
          ? {}
          : {
              credentials: ctx.secrets.sealText(
                JSON.stringify(body.credentials),
                secretPlace('backup_target', 'credentials', row.id),
              ),
            }),
        updated_at: ctx.now(),
      }).catch((error: unknown) => {
        if (uniqueViolation(error) !== undefined)
          throw new ApiError('conflict', `a target named ${JSON.stringify(body.name)} exists`);
        throw error;
      });
      ctx.logger.info('target updated', {
        target_id: row.id,
        credentials_rotated: body.credentials !== undefined,
      });
      return targetWithUsage(row.id);
    },
    deleteTarget: async ({ params }) => {
      await requireTarget(ctx, params.id);
      const users = await targetUsers(ctx.db, params.id);
      if (users.volumes > 0 || users.backups > 0) {
        throw new ApiError(
          'conflict',
          `target ${params.id} is used by ${users.volumes} volume(s) and ${users.backups} backup(s)`,
          users,
        );
      }
      // The bucket and its repository stay: deleting a target only forgets it.
      await deleteTarget(ctx.db, params.id);
      ctx.logger.info('target deleted', { target_id: params.id });
      return undefined;
    },
    testTargetLocation: async ({ body }) =>
      testLocation(locationOfRequest(body), body.kind === 's3' ? body.credentials : undefined),
    testTarget: async ({ params }) => testTarget(ctx, await requireTarget(ctx, params.id)),

    createVolume: async ({ body }) =>
      volumeJson(
        await createVolume(
          ctx,
          'locator' in body
            ? {
                name: body.name,
                hostId: body.host_id,
                backend: body.backend,
                locator: body.locator,
                targetId: body.backup_target_id,
                snapshot: body.snapshot,
              }
            : {
                name: body.name,
                hostId: body.host_id,
                backend: body.backend,
                size: body.size,
                targetId: body.backup_target_id,
                snapshot: body.snapshot,
              },
        ),
      ),
    listVolumes: async ({ query }) => {
      const rows = await listVolumes(
        ctx.db,
        {
          hostId: query.host_id,
          targetId: query.backup_target_id,
          state: query.state,
          ...(query.name === undefined ? {} : { nameContains: query.name }),
        },
        { limit: query.limit, cursor: decodeCursor(query.cursor) },
      );
      return toPage(rows, query.limit, byCreated, (row) => volumeJson(row, ctx.now()));
    },
    getVolume: async ({ params }) => volumeJson(await requireVolume(ctx, params.id), ctx.now()),
    deleteVolume: async ({ params }) => {
      await deleteVolume(ctx, params.id);
      return undefined;
    },
    backupNow: async ({ params, body }) => {
      const { job, backup } = await backupNow(ctx, params.id, {
        targetId: body.backup_target_id,
        snapshot: body.snapshot,
      });
      return { job: jobJson(job), backup: backupJson(backup) };
    },

    updateBackupSchedule: async ({ params, body }) =>
      volumeJson(await updateSchedule(ctx, params.id, body), ctx.now()),
    previewBackupSchedule: async ({ params, query }) => {
      const volume = await requireVolume(ctx, params.id);
      const cron = query.cron ?? volume.backup_cron;
      const timezone = query.timezone ?? volume.timezone;
      if (cron === null) {
        throw new ApiError(
          'invalid_request',
          'cron: the volume has no schedule; give ?cron= to preview one',
          { field: 'cron' },
        );
      }
      let schedule: ReturnType<typeof parseSchedule>;
      try {
        schedule = parseSchedule(cron, timezone);
      } catch (error) {
        throw scheduleApiError(error);
      }
      const fireTimes = nextFireTimes(schedule, ctx.now(), query.count);
      return { cron: schedule.cron, timezone, fire_times: fireTimes.map((t) => t.toISOString()) };
    },
    pruneVolume: async ({ params, query, body }) =>
      pruneVolume(ctx, params.id, { dryRun: query.dry_run, policy: body.retention }),

    listBackups: async ({ query }) => {
      const rows = await listBackups(
        ctx.db,
        {
          volumeId: query.volume_id,
          targetId: query.backup_target_id,
          state: query.state,
          verifyState: query.verify_state,
        },
        { limit: query.limit, cursor: decodeCursor(query.cursor) },
      );
      return toPage(rows, query.limit, byStarted, backupJson);
    },
    getBackup: async ({ params }) => backupJson(await requireBackup(ctx, params.id)),
    deleteBackup: async ({ params }) => {
      await deleteBackup(ctx, params.id);
      return undefined;
    },
    restoreBackup: async ({ params, body }) => {
      const { job, volume } = await restoreBackup(ctx, params.id, {
        hostId: body.host_id,
        name: body.name,
        backend: body.backend,
      });
      return { job: jobJson(job), volume: volumeJson(volume, ctx.now()) };
    },

    listJobs: async ({ query }) => {
      const rows = await listJobs(
        ctx.db,
        { state: query.state, kind: query.kind, volumeId: query.volume_id, hostId: query.host_id },
        { limit: query.limit, cursor: decodeCursor(query.cursor) },
      );
      return toPage(rows, query.limit, byCreated, jobJson);
    },
    getJob: async ({ params }) => jobJson(await requireJob(ctx, params.id)),
    cancelJob: async ({ params }) => jobJson(await cancelJob(ctx, params.id)),
    jobEvents: async ({ params }, _caller, c) => {
      await requireJob(ctx, params.id);
      return jobEventStream(ctx, deps.watchers, params.id, c.req.raw.signal);
    },
    postJobEvent: async ({ body }, caller) => {
      let hostId = caller?.kind === 'token' ? caller.token.host_id : null;
      if (hostId === null) {
        // An admin token (tools, tests) reports for the job's own host.
        const job = await requireJob(ctx, body.job.id).catch(() => undefined);
        if (job?.host_id == null) return undefined;
        hostId = job.host_id;
      }
      await applyJobEvent(ctx, body, { hostId });
      return undefined;
    },
    ...gcHandlers(deps),
    ...verifyHandlers(deps),
    ...recoveryHandlers(deps),
    ...alertHandlers(deps),
    ...dashboardHandlers(deps),
    ...userHandlers(deps),
  };
}
