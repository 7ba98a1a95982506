import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
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
  /** The agent's environment (AGENT_*); PATH and the like are added. */
  readonly env: Record<string, string>;
  readonly logger: Logger;
  /** Told of each start's URL (the port is chosen by the system, so it may change across restarts). */
  readonly onListening: (url: string) => Promise<void>;
  /** Where the agent's log lines go (default: this process's stderr). */
  readonly onStderr?: (text: string) => void;
  /** Extra node arguments (tests run the TypeScript sources: `--conditions=source --import tsx`). */
  readonly nodeArgs?: readonly string[];
}

export interface LocalAgent {
  /** Resolves with the first start's URL. */
  readonly ready: Promise<string>;
  readonly url: () => string | undefined;
  /** The running agent's process id (tests kill it to play a crash). */
  readonly pid: () => number | undefined;
  /** SIGTERM, then waits for the agent's own graceful stop (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;

/**
 * Runs `agent serve` as a child and keeps it running: an unexpected exit is logged with the tail of its
 * stderr and followed by a restart after a backoff (1 s doubling to 30 s, reset once it has run a minute).
 * The child's own JSON log lines are passed through to the manager's stderr.
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

  const start = () => {
    const startedAt = Date.now();
    const proc = spawn(process.execPath, [...(options.nodeArgs ?? []), options.bin, 'serve'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/', ...options.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    let tail = '';
    let listening = false;
    let head = '';
    proc.stderr!.on('data', (data: Buffer) => {
      const text = data.toString('utf8');
      (options.onStderr ?? ((t: string) => process.stderr.write(t)))(text);
      tail = (tail + text).slice(-4000);
      if (listening) return;
      head += text;
      const match = /"msg":"listening".*?"url":"([^"]+)"/.exec(head);
      if (match === null) return;
      listening = true;
      currentUrl = match[1]!;
      const url = currentUrl;
      options.onListening(url).then(
        () => {
          if (!everReady) {
            everReady = true;
            resolveReady(url);
          }
        },
        (error: unknown) => options.logger.error('local agent could not be recorded', { error }),
      );
    });
    proc.on('exit', (code, signal) => {
      child = undefined;
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
      if (!everReady && ranMs < 5_000 && backoff >= 8_000) {
        rejectReady(new Error(`the local agent keeps exiting (code ${code}):\n${tail}`));
      }
      restartTimer = setTimeout(start, backoff);
      backoff = Math.min(RESTART_MAX_MS, backoff * 2);
    });
  };
  start();

  return {
    ready,
    url: () => currentUrl,
    pid: () => child?.pid,
    async stop(graceMs = 40_000) {
      stopping = true;
      clearTimeout(restartTimer);
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
