import { CommitGrant, MANAGER_JOB_COMMIT_PATH } from '@stowage/api';
import { EngineError } from '@stowage/engine';
import type { Logger } from '../contracts.js';
import { silentLogger } from '../log.js';

/** Leave to commit a fenced backup (`BackupRequest.commit_fence`), asked of whoever sent the job. */
export interface CommitFence {
  /** Resolves with how long the root's write may take; throws `commit-refused` when leave is not given. */
  requestCommit(jobId: string, signal: AbortSignal): Promise<{ validForMs: number }>;
}

export interface ManagerCommitFenceOptions {
  /** The manager's base URL; without one every fenced commit is refused (there is no one to ask). */
  managerUrl: string | undefined;
  /** The agent's own token for the manager, sent as a bearer token and never logged. */
  token: string | undefined;
  fetch?: typeof fetch;
  logger?: Logger;
  /** Tries before giving up on an unreachable manager (default 4: about 7 s of backoff). */
  attempts?: number;
  /** Per-request timeout (default 10 s). */
  requestTimeoutMs?: number;
}

/**
 * Asks the manager: `POST <manager>/v1/agent/jobs/<job>/commit`. A refusal (409: the job's lease has ended,
 * the reconciler gave up on it) is final; a network error or a 5xx is tried again a few times, since a
 * backup whose data is all stored is worth a short wait. Asking twice is harmless: the manager answers the
 * same job's request with a fresh grant each time.
 */
export class ManagerCommitFence implements CommitFence {
  readonly #options: ManagerCommitFenceOptions;
  readonly #fetch: typeof fetch;
  readonly #logger: Logger;

  constructor(options: ManagerCommitFenceOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? fetch;
    this.#logger = options.logger ?? silentLogger;
  }

  async requestCommit(jobId: string, signal: AbortSignal): Promise<{ validForMs: number }> {
    const { managerUrl, token } = this.#options;
    if (managerUrl === undefined || token === undefined) {
      throw new EngineError(
        'commit-refused',
        `job ${jobId} needs its manager's leave to commit, and this agent has no manager configured ` +
          '(manager.url and manager.token)',
      );
    }
    const url = new URL(MANAGER_JOB_COMMIT_PATH.replace('{id}', jobId), managerUrl);
    const attempts = this.#options.attempts ?? 4;
    let lastError: unknown;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(1000 * 2 ** (attempt - 1), signal);
      signal.throwIfAborted();
      let response: Response;
      try {
        response = await this.#fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
          signal: AbortSignal.any([signal, AbortSignal.timeout(this.#options.requestTimeoutMs ?? 10_000)]),
        });
      } catch (error) {
        signal.throwIfAborted();
        lastError = error;
        this.#logger.warn('asking the manager to commit failed; trying again', { job_id: jobId, error });
        continue;
      }
      const text = await response.text();
      if (response.ok) return { validForMs: CommitGrant.parse(JSON.parse(text)).valid_for_ms };
      const message = messageOf(text);
      if (response.status >= 500) {
        lastError = new Error(`the manager answered ${response.status}: ${message}`);
        continue;
      }
      throw new EngineError(
        'commit-refused',
        `the manager refused to let job ${jobId} commit (${response.status}): ${message}`,
      );
    }
    throw new EngineError(
      'commit-refused',
      `the manager could not be asked to let job ${jobId} commit after ${attempts} tries: ` +
        `${lastError instanceof Error ? lastError.message : String(lastError)}; the backup is not committed`,
      { cause: lastError },
    );
  }
}

function messageOf(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: unknown };
    if (typeof body.message === 'string') return body.message;
  } catch {
    // not JSON: the text itself
  }
  return text.slice(0, 300);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
