import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { KdfParams } from '@stowage/format';
import type { Context } from 'hono';
import { sql } from 'kysely';
import type { ManagerConfig } from './config.js';
import { type ManagerDatabase, openDatabase } from './db/database.js';
import { migrate } from './db/migrate.js';
import { createManagerApp } from './http/app.js';
import { auditRecorder } from './http/audit.js';
import { requestAuthenticator } from './http/auth.js';
import { consoleAssets } from './http/console-assets.js';
import { createHandlers } from './http/handlers.js';
import { sessionSettings } from './http/handlers-users.js';
import { createJobWatchers } from './http/job-stream.js';
import type { Logger } from './log.js';
import { alertsOnce } from './loops/alerts.js';
import { AUDIT_PRUNE_EVERY_MS, pruneAuditOnce } from './loops/audit-retention.js';
import { gcOnce } from './loops/gc.js';
import { startLoop } from './loops/loop.js';
import { reconcileOnce } from './loops/reconciler.js';
import { scheduleOnce } from './loops/scheduler.js';
import { verifyScheduleOnce } from './loops/verify.js';
import { ManagerMetrics } from './metrics.js';
import { createSecretBox } from './secrets/envelope.js';
import { loadMasterKey } from './secrets/master-key.js';
import type { ManagerContext } from './services/context.js';
import { stopGcRuns } from './services/gc.js';
import { agentClientFor } from './services/hosts.js';

/** The GC loop's tick: daily runs at the target's hour, stale runs failed, queued backups sent. */
const GC_EVERY_MS = 60_000;
/** The verify schedule's tick: periods are days, a minute's lag is nothing. */
const VERIFY_EVERY_MS = 60_000;
/** How often alerts are evaluated (raised, resolved) and webhooks told. */
const ALERTS_EVERY_MS = 30_000;
/** How often the reconciler looks for silent jobs. */
const RECONCILE_EVERY_MS = 60_000;
/** How often an embedded database refreshes its planner statistics (a real server's autovacuum does it). */
const ANALYZE_EVERY_MS = 30 * 60_000;

async function analyze(database: ManagerDatabase): Promise<void> {
  await sql`ANALYZE`.execute(database.db);
}

/** The scheduler's tick: cron's resolution is a minute; a few seconds' lag is fine, a missed minute not. */
const SCHEDULE_EVERY_MS = 15_000;

export interface RunningManager {
  readonly url: string;
  readonly ctx: ManagerContext;
  readonly database: ManagerDatabase;
  /** Stops taking requests, closes the server and the database. */
  stop(): Promise<void>;
}

export interface ManagerOptions {
  readonly logger: Logger;
  readonly now?: () => Date;
  /** Check every answer against its schema (tests). */
  readonly validateResponses?: boolean;
  readonly kdf?: KdfParams;
}

/** `GET /` until the console lands: where the API and its description are. */
function rootIndex(c: Context): Response {
  return c.json({
    name: 'Stowage manager',
    api: '/v1',
    openapi: '/v1/openapi.json',
    health: '/healthz',
    docs: 'docs/manager.md',
    hint: 'every /v1 route needs Authorization: Bearer <token> (manager token create)',
  });
}

/**
 * Starts the manager: the database (migrated under its advisory lock), the master key, the API on
 * `config.host:config.port`. Everything it needs arrives in `config`; nothing is read from the environment.
 */
export async function startManager(config: ManagerConfig, options: ManagerOptions): Promise<RunningManager> {
  const { logger } = options;
  const now = options.now ?? (() => new Date());
  mkdirSync(config.home, { recursive: true, mode: 0o700 });
  const secrets = createSecretBox(loadMasterKey(config.masterKeyFile, { create: config.createMasterKey }));
  const database = await openDatabase(
    config.databaseUrl === undefined ? { dataDir: config.pgliteDir } : { url: config.databaseUrl },
  );
  let stopping = false;
  try {
    const report = await migrate(database);
    logger.info('database ready', { database: database.description, migrations_applied: report.applied });
    // PGlite has no autovacuum: without statistics its planner keeps the plans of an empty database.
    await analyze(database);
    const metrics = new ManagerMetrics(database.db);
    const watchers = createJobWatchers();
    const ctx: ManagerContext = {
      db: database.db,
      secrets,
      now,
      agentFor: (host) => agentClientFor(secrets, host),
      logger,
      jobChanged: (id) => watchers.notify(id),
      jobFinished: (kind, state, seconds) => metrics.observeJob(kind, state, seconds),
      ...(options.kdf === undefined ? {} : { kdf: options.kdf }),
    };
    const app = createManagerApp({
      handlers: createHandlers({
        ctx,
        watchers,
        metrics: () => metrics.render(),
        isStopping: () => stopping,
        sessions: sessionSettings(config),
      }),
      authenticate: requestAuthenticator(database.db, logger, now),
      audit: auditRecorder(database.db, logger, now),
      logger,
      validateResponses: options.validateResponses ?? false,
      observe: (route, method, status, seconds) => metrics.observeRequest(route, method, status, seconds),
      root: rootIndex,
      assets: consoleAssets(config),
    });
    const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
      const started = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () =>
        resolve(started),
      );
      started.once('error', reject);
    });
    const { auditRetentionMs } = config;
    const loops = [
      startLoop('reconciler', config.loopIntervalMs ?? RECONCILE_EVERY_MS, logger, () =>
        reconcileOnce(ctx, config.staleJobMs),
      ),
      startLoop('scheduler', config.loopIntervalMs ?? SCHEDULE_EVERY_MS, logger, () => scheduleOnce(ctx)),
      startLoop('gc', config.loopIntervalMs ?? GC_EVERY_MS, logger, () => gcOnce(ctx)),
      startLoop('verify', config.loopIntervalMs ?? VERIFY_EVERY_MS, logger, () => verifyScheduleOnce(ctx)),
      startLoop('alerts', config.loopIntervalMs ?? ALERTS_EVERY_MS, logger, () => alertsOnce(ctx)),
      ...(auditRetentionMs === undefined
        ? []
        : [
            startLoop('audit', config.loopIntervalMs ?? AUDIT_PRUNE_EVERY_MS, logger, () =>
              pruneAuditOnce(ctx, auditRetentionMs),
            ),
          ]),
      ...(database.kind === 'pglite'
        ? [startLoop('analyze', ANALYZE_EVERY_MS, logger, () => analyze(database))]
        : []),
    ];
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const url = `http://${host}:${address.port}`;
    logger.info('listening', { url, database: database.kind });
    let stopped: Promise<void> | undefined;
    return {
      url,
      ctx,
      database,
      stop: () =>
        (stopped ??= (async () => {
          stopping = true;
          await Promise.all(loops.map((loop) => loop.stop()));
          await stopGcRuns(ctx);
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
          });
          await database.close();
          logger.info('stopped');
        })()),
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}
