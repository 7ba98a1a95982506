import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.js';

/**
 * The agent binary of this checkout (apps/agent/bin/agent.cjs), found from this file in src/ or dist/. The
 * manager runs it as a process, never imports it: apps do not import each other.
 */
export function defaultAgentBin(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../agent/bin/agent.cjs');
}

export interface LocalAgentOptions {
  readonly bin: string;
  /** The agent's environment (AGENT_*; AGENT_LISTEN is set here); PATH and HOME are added. */
  readonly env: Record<string, string>;
  readonly logger: Logger;
  /** Told of each start's URL once the agent answers (its port may change across restarts). */
  readonly onListening: (url: string) => Promise<void>;
  /** Where the agent's log lines go (default: this process's stderr). */
  readonly onStderr?: (text: string) => void;
  /** Extra node arguments (tests run the TypeScript sources: `--conditions=source --import tsx`). */
  readonly nodeArgs?: readonly string[];
}

export interface LocalAgent {
  /** Resolves with the first start's URL once the agent answers its health check. */
  readonly ready: Promise<string>;
  readonly url: () => string | undefined;
  /** The running agent's process id (tests kill it to play a crash). */
  readonly pid: () => number | undefined;
  /** SIGTERM, then waits for the agent's own graceful stop (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;
const READY_TIMEOUT_MS = 60_000;

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once('error', () => resolvePort(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePort(true)));
  });
}

/** Polls `/healthz` until it answers ok, the process exits or the time is up. */
async function waitHealthy(url: string, proc: ChildProcess): Promise<boolean> {
  const end = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < end && proc.exitCode === null && proc.signalCode === null) {
    try {
      const answer = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (answer.ok && ((await answer.json()) as { status?: string }).status === 'ok') return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/**
 * Runs `agent serve` as a child on a port chosen here, and keeps it running: an unexpected exit is logged
 * with the tail of its stderr and followed by a restart after a backoff (1 s doubling to 30 s, reset once it
 * has run a minute). Readiness is its health check, not its log (which a quiet log level would hide). The
 * child is sent SIGTERM when this process exits, so it does not outlive a manager that exits abruptly.
 */
export function superviseLocalAgent(options: LocalAgentOptions): LocalAgent {
  if (!existsSync(options.bin))
    throw new Error(`the agent binary ${options.bin} does not exist (npm run build?)`);
  let child: ChildProcess | undefined;
  let currentUrl: string | undefined;
  let stopping = false;
  let backoff = RESTART_MIN_MS;
  let restartTimer: NodeJS.Timeout | undefined;
  let resolveReady!: (url: string) => void;
  let rejectReady!: (error: Error) => void;
  let everReady = false;
  const ready = new Promise<string>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => {});
  const killOnExit = () => child?.kill('SIGTERM');
  process.on('exit', killOnExit);
  const write = options.onStderr ?? ((text: string) => process.stderr.write(text));

  // One port for the life of the supervisor where possible: the host row's URL then stays right across a
  // restart, with no window in which the manager calls a dead address.
  let port: number | undefined;
  const start = async () => {
    const startedAt = Date.now();
    port = port !== undefined && (await portIsFree(port)) ? port : await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = spawn(process.execPath, [...(options.nodeArgs ?? []), options.bin, 'serve'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/',
        ...options.env,
        AGENT_LISTEN: `127.0.0.1:${port}`,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    let tail = '';
    proc.stderr!.on('data', (data: Buffer) => {
      const text = data.toString('utf8');
      write(text);
      tail = (tail + text).slice(-4000);
    });
    proc.on('exit', (code, signal) => {
      if (child === proc) child = undefined;
      currentUrl = undefined;
      if (stopping) return;
      const ranMs = Date.now() - startedAt;
      if (ranMs > 60_000) backoff = RESTART_MIN_MS;
      options.logger.error('local agent exited; restarting', {
        code,
        signal,
        restart_in_ms: backoff,
        stderr_tail: tail.split('\n').slice(-5).join('\n'),
      });
      if (!everReady && backoff >= 8_000) {
        rejectReady(new Error(`the local agent keeps exiting (code ${code}):\n${tail}`));
      }
      restartTimer = setTimeout(() => void start(), backoff);
      backoff = Math.min(RESTART_MAX_MS, backoff * 2);
    });
    if (!(await waitHealthy(url, proc)) || stopping) {
      if (proc.exitCode === null && !stopping) proc.kill('SIGTERM'); // hung at start: the exit restarts it
      return;
    }
    currentUrl = url;
    try {
      await options.onListening(url);
    } catch (error) {
      options.logger.error('local agent could not be recorded', { error });
      if (!everReady) rejectReady(error as Error);
      return;
    }
    if (!everReady) {
      everReady = true;
      resolveReady(url);
    }
  };
  void start();

  return {
    ready,
    url: () => currentUrl,
    pid: () => child?.pid,
    async stop(graceMs = 40_000) {
      stopping = true;
      clearTimeout(restartTimer);
      process.off('exit', killOnExit);
      const proc = child;
      if (proc === undefined || proc.exitCode !== null) return;
      const exited = new Promise<void>((res) => proc.once('exit', () => res()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
