import {
  ApiError,
  ApiErrorBody,
  BackendInfo,
  type BackupRequest,
  Job,
  JobAccepted,
  type ProvisionVolumeRequest,
  type RestoreRequest,
  type VerifyRequest,
  Volume,
} from '@stowage/api';
import { z } from 'zod';

/** How long one call to an agent may take before it counts as unreachable (its jobs run in the background). */
export const AGENT_CALL_TIMEOUT_MS = 15_000;

export interface AgentClientOptions {
  readonly url: string;
  readonly token: string;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

/**
 * The manager's side of the agent API (packages/api/src/agent.ts). Answers are validated with the shared
 * schemas. An agent that cannot be reached, or answers with something that is not the API, is an ApiError
 * `unavailable` naming the agent's URL and the cause; the agent's own errors keep their code and message.
 */
export class AgentClient {
  readonly #url: string;
  readonly #token: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(options: AgentClientOptions) {
    this.#url = options.url.replace(/\/+$/, '');
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
    this.#timeoutMs = options.timeoutMs ?? AGENT_CALL_TIMEOUT_MS;
  }

  get url(): string {
    return this.#url;
  }

  backends(): Promise<BackendInfo[]> {
    return this.#call('GET', '/v1/backends', undefined, z.array(BackendInfo));
  }

  provisionVolume(request: ProvisionVolumeRequest): Promise<Volume> {
    return this.#call('POST', '/v1/volumes', request, Volume);
  }

  getVolume(backend: string, locator: string): Promise<Volume> {
    const query = new URLSearchParams({ backend, locator });
    return this.#call('GET', `/v1/volume?${query}`, undefined, Volume);
  }

  async deleteVolume(backend: string, locator: string): Promise<void> {
    const query = new URLSearchParams({ backend, locator });
    await this.#call('DELETE', `/v1/volume?${query}`, undefined, z.unknown());
  }

  startBackup(request: BackupRequest): Promise<JobAccepted> {
    return this.#call('POST', '/v1/storage/backup', request, JobAccepted);
  }

  startRestore(request: RestoreRequest): Promise<JobAccepted> {
    return this.#call('POST', '/v1/storage/restore', request, JobAccepted);
  }

  startVerify(request: VerifyRequest): Promise<JobAccepted> {
    return this.#call('POST', '/v1/storage/verify', request, JobAccepted);
  }

  getJob(id: string): Promise<Job> {
    return this.#call('GET', `/v1/jobs/${encodeURIComponent(id)}`, undefined, Job);
  }

  cancelJob(id: string): Promise<Job> {
    return this.#call('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`, undefined, Job);
  }

  async #call<T>(method: string, path: string, body: unknown, schema: z.ZodType<T>): Promise<T> {
    const where = `the agent at ${this.#url}`;
    let response: Response;
    try {
      response = await this.#fetch(`${this.#url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new ApiError('unavailable', `${where} is unreachable: ${describeFetchError(error)}`, {
        agent_url: this.#url,
      });
    }
    const text = await response.text().catch(() => '');
    if (response.status === 204) return schema.parse(undefined);
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new ApiError(
        'unavailable',
        `${where} answered ${response.status} with something that is not JSON`,
        {
          agent_url: this.#url,
          status: response.status,
        },
      );
    }
    if (!response.ok) {
      const error = ApiErrorBody.safeParse(json);
      if (!error.success) {
        throw new ApiError('unavailable', `${where} answered ${response.status} without an API error`, {
          agent_url: this.#url,
          status: response.status,
        });
      }
      if (error.data.code === 'unauthorized') {
        throw new ApiError('unavailable', `${where} refused the manager's token (was it rotated?)`, {
          agent_url: this.#url,
          status: response.status,
        });
      }
      throw new ApiError(error.data.code, `${where}: ${error.data.message}`, error.data.details);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new ApiError(
        'unavailable',
        `${where} answered ${method} ${path.split('?')[0]} with an unexpected body`,
        {
          agent_url: this.#url,
        },
      );
    }
    return parsed.data;
  }
}

/** `ECONNREFUSED 127.0.0.1:7471`, `timed out after 15 s`, `certificate has expired`: the root cause, briefly. */
export function describeFetchError(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'no answer within the time allowed';
  let cause: unknown = error;
  while (cause instanceof Error && cause.cause !== undefined) cause = cause.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code !== undefined && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return String(cause);
}
