import { mkdir, readFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Job } from '@stowage/api';
import { BlockBackend, type HostBackend, IscsiBackend, LocalFileBackend } from '@stowage/host-backends';
import type { AgentConfig } from './config.js';
import type { BackendKind, JobEventSink, Logger } from './contracts.js';
import { ManagerCommitFence } from './events/commit-fence.js';
import { ManagerReporter } from './events/manager-reporter.js';
import { createAgentApp } from './http/app.js';
import { JobHistory } from './jobs/history.js';
import { LocalJobRunner } from './jobs/job-runner.js';
import { JobJournal } from './jobs/journal.js';
import { AgentMetrics } from './metrics.js';
import { RepositoryAccess } from './repositories.js';

export interface RunningAgent {
  /** `http(s)://host:port` it listens on (the real port when configured with port 0). */
  readonly url: string;
  readonly runner: LocalJobRunner;
  readonly reporter: ManagerReporter;
  /**
   * Graceful stop: refuse new jobs (503), let running ones finish for the grace period, cancel the rest and
   * wait for their clean-up, log out of iSCSI sessions, deliver pending events (briefly), close the server.
   * Answers the jobs that did not stop within the bound: their journal records stay for the next start, and
   * the caller should end the process (they may hold worker threads and device I/O).
   */
  stop(): Promise<Job[]>;
}

export interface AgentServiceDependencies {
  logger: Logger;
  /** Backends built by the caller instead of from the config (tests; an iSCSI backend with its runner). */
  backends?: ReadonlyMap<BackendKind, HostBackend>;
  fetch?: typeof fetch;
}

/** How long stop() keeps trying to hand pending events to the manager; what is left stays in the outbox. */
const EVENT_DRAIN_MS = 5_000;
/** How long stop() waits for a backend to release what it holds (iSCSI logouts) before exiting anyway. */
const BACKEND_CLOSE_MS = 60_000;

/** Wires config → backends → job runner → HTTP, and starts it. The only place that knows all the parts. */
export async function startAgentService(
  config: AgentConfig,
  deps: AgentServiceDependencies,
): Promise<RunningAgent> {
  const { logger } = deps;
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  const backends = deps.backends ?? createBackends(config);
  const metrics = new AgentMetrics();
  const reporter = new ManagerReporter({
    managerUrl: config.manager?.url,
    token: config.manager?.token,
    agentId: config.agentId,
    stateDir: config.stateDir,
    logger,
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
  });
  await reporter.start();
  const commitFence = new ManagerCommitFence({
    managerUrl: config.manager?.url,
    token: config.manager?.token,
    logger,
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
  });
  const repositories = new RepositoryAccess({
    repositoryRoots: config.repositoryRoots,
    ...(config.s3Endpoints === undefined ? {} : { s3Endpoints: config.s3Endpoints }),
    retryAttempts: config.retryAttempts,
    metrics,
  });
  const events: JobEventSink = {
    jobChanged(job: Job, change) {
      metrics.jobChanged(job, change);
      reporter.jobChanged(job, change);
    },
    flush: () => reporter.flush(),
  };
  const runner = new LocalJobRunner({
    backends,
    openRepository: repositories.open,
    events,
    concurrency: config.concurrency,
    threads: config.threads,
    packsPerIndex: config.packsPerIndex,
    commitFence,
    journal: new JobJournal(config.stateDir),
    history: new JobHistory(config.stateDir),
    logger,
  });
  metrics.observeJobs(() => runner.list().map((job) => job.state));
  await runner.recover();

  const app = createAgentApp({
    token: config.token,
    backends,
    runner,
    locks: runner.locks,
    metrics,
    logger,
    isStopping: () => runner.stopping,
    checkTarget: (target) => repositories.check(target),
  });
  const tls =
    config.tls === undefined
      ? undefined
      : { cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile) };
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const started = serve(
      {
        fetch: app.fetch,
        hostname: config.listen.host,
        port: config.listen.port,
        ...(tls === undefined ? {} : { createServer: createHttpsServer, serverOptions: tls }),
      },
      () => resolve(started),
    );
    started.once('error', reject);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${tls === undefined ? 'http' : 'https'}://${host}:${address.port}`;
  logger.info('listening', { url, backends: [...backends.keys()] });

  let stopping: Promise<Job[]> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      logger.info('stopping: no new jobs; running jobs get the grace period', {
        grace_seconds: config.shutdownGraceSeconds,
      });
      const stuck = await runner.shutdown(config.shutdownGraceSeconds * 1000);
      if (stuck.length > 0) logger.error('exiting with jobs still running', { jobs: stuck.map((j) => j.id) });
      for (const [kind, backend] of backends) {
        // An iSCSI login still running is waited for (then logged out); bounded, so a hung iscsid cannot
        // keep the agent from exiting.
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), BACKEND_CLOSE_MS);
        });
        const outcome = await Promise.race([
          (backend.close?.() ?? Promise.resolve()).then(
            () => 'closed' as const,
            (error: unknown) => {
              logger.error('backend did not close cleanly', { backend: kind, error });
              return 'failed' as const;
            },
          ),
          timedOut,
        ]);
        clearTimeout(timer);
        if (outcome === 'timeout') logger.error('backend still closing; exiting anyway', { backend: kind });
      }
      await reporter.stop(EVENT_DRAIN_MS);
      const undelivered = reporter.undelivered().length;
      if (undelivered > 0) logger.warn('job results left in the outbox for the next start', { undelivered });
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      logger.info('stopped');
      return stuck;
    })();
    return stopping;
  };
  return { url, runner, reporter, stop };
}

function createBackends(config: AgentConfig): Map<BackendKind, HostBackend> {
  const backends = new Map<BackendKind, HostBackend>();
  const { localFile, block, iscsi } = config.backends;
  if (localFile !== undefined) {
    backends.set(
      'local-file',
      new LocalFileBackend({ roots: localFile.roots, snapshotMode: localFile.snapshotMode }),
    );
  }
  if (block !== undefined) backends.set('block', new BlockBackend({ devices: block.devices }));
  if (iscsi !== undefined) {
    backends.set(
      'iscsi',
      new IscsiBackend({ targets: iscsi.targets, deviceTimeoutMs: iscsi.deviceTimeoutSeconds * 1000 }),
    );
  }
  return backends;
}
