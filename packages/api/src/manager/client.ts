import type { z } from 'zod';
import { TERMINAL_JOB_STATES } from '../agent.js';
import { ApiError, ApiErrorBody, validationDetails } from '../errors.js';
import { JOB_SSE_EVENT, type ManagedJob } from './jobs.js';
import type { Page } from './primitives.js';
import type { ManagerRoute, RouteCallInput, RouteOutput } from './route.js';
import { type ManagerRouteName, type ManagerRoutes, managerRoutes } from './routes.js';
import { readServerSentEvents } from './sse.js';

/**
 * The manager's typed client, one method per route of routes.ts, for the CLI, the console and the tests.
 * Answers are validated with the route's schema; every failure is an `ApiError`: the server's own error
 * rebuilt from its body, `internal` (with the HTTP status in `details`) for an answer that is not ours, and
 * `unavailable` (with the cause) when the manager cannot be reached. Only `fetch` and web streams: it must
 * run in a browser as well as in Node.
 */
export interface ManagerClientOptions {
  /** e.g. `http://127.0.0.1:8080` (a path prefix is kept: `https://example.com/stowage`). */
  baseUrl: string;
  /** An API token (scripts, the CLI). Absent: the browser's session cookie is sent instead (the console),
   * with the session's CSRF token on every state-changing request. */
  token?: string;
  /** The session's CSRF token (`csrf_token` of the sign-in answer), read before each state-changing call. */
  csrfToken?: () => string | undefined;
  /** Default the global `fetch`. */
  fetch?: typeof fetch;
}

type Routes = ManagerRoutes;
type Input<N extends ManagerRouteName> = RouteCallInput<Routes[N]>;
type Body<N extends ManagerRouteName> = NonNullable<Input<N>['body']>;
type Query<N extends ManagerRouteName> = NonNullable<Input<N>['query']>;
type Answer<N extends ManagerRouteName> = Promise<RouteOutput<Routes[N]>>;
type LooseInput = { params?: unknown; query?: unknown; body?: unknown };

export class ManagerClient {
  readonly #baseUrl: string;
  readonly #token: string | undefined;
  readonly #csrfToken: (() => string | undefined) | undefined;
  readonly #fetch: typeof fetch;

  constructor(options: ManagerClientOptions) {
    const url = new URL(options.baseUrl);
    this.#baseUrl = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
    // A token that cannot be a header value would fail inside fetch, looking like a network error.
    if (options.token !== undefined && !/^[\x21-\x7e]+$/.test(options.token))
      throw new TypeError('the manager token must be printable ASCII');
    this.#token = options.token;
    this.#csrfToken = options.csrfToken;
    const given = options.fetch;
    // Called through a closure: a browser's fetch refuses to run with another `this`.
    this.#fetch = given ?? ((input, init) => fetch(input, init));
  }

  getHealth(signal?: AbortSignal): Answer<'getHealth'> {
    return this.request('getHealth', {}, signal);
  }
  getOpenApi(signal?: AbortSignal): Answer<'getOpenApi'> {
    return this.request('getOpenApi', {}, signal);
  }
  getMetrics(signal?: AbortSignal): Answer<'getMetrics'> {
    return this.request('getMetrics', {}, signal);
  }

  createToken(body: Body<'createToken'>, signal?: AbortSignal): Answer<'createToken'> {
    return this.request('createToken', { body }, signal);
  }
  listTokens(query?: Query<'listTokens'>, signal?: AbortSignal): Answer<'listTokens'> {
    return this.request('listTokens', { query }, signal);
  }
  revokeToken(id: string, signal?: AbortSignal): Answer<'revokeToken'> {
    return this.request('revokeToken', { params: { id } }, signal);
  }

  signIn(body: Body<'signIn'>, signal?: AbortSignal): Answer<'signIn'> {
    return this.request('signIn', { body }, signal);
  }
  getSession(signal?: AbortSignal): Answer<'getSession'> {
    return this.request('getSession', {}, signal);
  }
  signOut(signal?: AbortSignal): Answer<'signOut'> {
    return this.request('signOut', {}, signal);
  }
  createUser(body: Body<'createUser'>, signal?: AbortSignal): Answer<'createUser'> {
    return this.request('createUser', { body }, signal);
  }
  listUsers(query?: Query<'listUsers'>, signal?: AbortSignal): Answer<'listUsers'> {
    return this.request('listUsers', { query }, signal);
  }
  updateUser(id: string, body: Body<'updateUser'>, signal?: AbortSignal): Answer<'updateUser'> {
    return this.request('updateUser', { params: { id }, body }, signal);
  }
  deleteUser(id: string, signal?: AbortSignal): Answer<'deleteUser'> {
    return this.request('deleteUser', { params: { id } }, signal);
  }
  listAudit(query?: Query<'listAudit'>, signal?: AbortSignal): Answer<'listAudit'> {
    return this.request('listAudit', { query }, signal);
  }

  registerHost(body: Body<'registerHost'>, signal?: AbortSignal): Answer<'registerHost'> {
    return this.request('registerHost', { body }, signal);
  }
  listHosts(query?: Query<'listHosts'>, signal?: AbortSignal): Answer<'listHosts'> {
    return this.request('listHosts', { query }, signal);
  }
  getHost(id: string, signal?: AbortSignal): Answer<'getHost'> {
    return this.request('getHost', { params: { id } }, signal);
  }

  createTarget(body: Body<'createTarget'>, signal?: AbortSignal): Answer<'createTarget'> {
    return this.request('createTarget', { body }, signal);
  }
  listTargets(query?: Query<'listTargets'>, signal?: AbortSignal): Answer<'listTargets'> {
    return this.request('listTargets', { query }, signal);
  }
  getTarget(id: string, signal?: AbortSignal): Answer<'getTarget'> {
    return this.request('getTarget', { params: { id } }, signal);
  }
  updateTarget(id: string, body: Body<'updateTarget'>, signal?: AbortSignal): Answer<'updateTarget'> {
    return this.request('updateTarget', { params: { id }, body }, signal);
  }
  deleteTarget(id: string, signal?: AbortSignal): Answer<'deleteTarget'> {
    return this.request('deleteTarget', { params: { id } }, signal);
  }
  testTargetLocation(body: Body<'testTargetLocation'>, signal?: AbortSignal): Answer<'testTargetLocation'> {
    return this.request('testTargetLocation', { body }, signal);
  }
  testTarget(id: string, signal?: AbortSignal): Answer<'testTarget'> {
    return this.request('testTarget', { params: { id } }, signal);
  }

  createVolume(body: Body<'createVolume'>, signal?: AbortSignal): Answer<'createVolume'> {
    return this.request('createVolume', { body }, signal);
  }
  listVolumes(query?: Query<'listVolumes'>, signal?: AbortSignal): Answer<'listVolumes'> {
    return this.request('listVolumes', { query }, signal);
  }
  getVolume(id: string, signal?: AbortSignal): Answer<'getVolume'> {
    return this.request('getVolume', { params: { id } }, signal);
  }
  deleteVolume(id: string, signal?: AbortSignal): Answer<'deleteVolume'> {
    return this.request('deleteVolume', { params: { id } }, signal);
  }
  backupNow(id: string, body: Body<'backupNow'> = {}, signal?: AbortSignal): Answer<'backupNow'> {
    return this.request('backupNow', { params: { id }, body }, signal);
  }
  updateBackupSchedule(
    id: string,
    body: Body<'updateBackupSchedule'>,
    signal?: AbortSignal,
  ): Answer<'updateBackupSchedule'> {
    return this.request('updateBackupSchedule', { params: { id }, body }, signal);
  }
  previewBackupSchedule(
    id: string,
    query: Query<'previewBackupSchedule'> = {},
    signal?: AbortSignal,
  ): Answer<'previewBackupSchedule'> {
    return this.request('previewBackupSchedule', { params: { id }, query }, signal);
  }
  pruneVolume(
    id: string,
    query: Query<'pruneVolume'> = {},
    body: Body<'pruneVolume'> = {},
    signal?: AbortSignal,
  ): Answer<'pruneVolume'> {
    return this.request('pruneVolume', { params: { id }, query, body }, signal);
  }

  listBackups(query?: Query<'listBackups'>, signal?: AbortSignal): Answer<'listBackups'> {
    return this.request('listBackups', { query }, signal);
  }
  getBackup(id: string, signal?: AbortSignal): Answer<'getBackup'> {
    return this.request('getBackup', { params: { id } }, signal);
  }
  deleteBackup(id: string, signal?: AbortSignal): Answer<'deleteBackup'> {
    return this.request('deleteBackup', { params: { id } }, signal);
  }
  restoreBackup(id: string, body: Body<'restoreBackup'> = {}, signal?: AbortSignal): Answer<'restoreBackup'> {
    return this.request('restoreBackup', { params: { id }, body }, signal);
  }
  verifyBackup(id: string, query: Query<'verifyBackup'> = {}, signal?: AbortSignal): Answer<'verifyBackup'> {
    return this.request('verifyBackup', { params: { id }, query }, signal);
  }

  listJobs(query?: Query<'listJobs'>, signal?: AbortSignal): Answer<'listJobs'> {
    return this.request('listJobs', { query }, signal);
  }
  getJob(id: string, signal?: AbortSignal): Answer<'getJob'> {
    return this.request('getJob', { params: { id } }, signal);
  }
  cancelJob(id: string, signal?: AbortSignal): Answer<'cancelJob'> {
    return this.request('cancelJob', { params: { id } }, signal);
  }

  importTarget(body: Body<'importTarget'>, signal?: AbortSignal): Answer<'importTarget'> {
    return this.request('importTarget', { body }, signal);
  }
  rebuildIndex(id: string, body: Body<'rebuildIndex'> = {}, signal?: AbortSignal): Answer<'rebuildIndex'> {
    return this.request('rebuildIndex', { params: { id }, body }, signal);
  }

  startGc(id: string, query: Query<'startGc'> = {}, signal?: AbortSignal): Answer<'startGc'> {
    return this.request('startGc', { params: { id }, query }, signal);
  }
  listGcRuns(id: string, query?: Query<'listGcRuns'>, signal?: AbortSignal): Answer<'listGcRuns'> {
    return this.request('listGcRuns', { params: { id }, query }, signal);
  }
  getGcRun(id: string, runId: string, signal?: AbortSignal): Answer<'getGcRun'> {
    return this.request('getGcRun', { params: { id, run_id: runId } }, signal);
  }

  /** For agents (and tests): one job event, with an agent token. */
  postJobEvent(body: Body<'postJobEvent'>, signal?: AbortSignal): Answer<'postJobEvent'> {
    return this.request('postJobEvent', { body }, signal);
  }

  /**
   * The job as it changes, from `GET /v1/jobs/{id}/events`: ends after a terminal state, when the server
   * closes the stream, or quietly when `signal` aborts. A stream that breaks midway throws `unavailable`.
   */
  async *jobEvents(id: string, signal?: AbortSignal): AsyncGenerator<ManagedJob, void, undefined> {
    const route = managerRoutes.jobEvents;
    let response: Response;
    try {
      response = await this.#send(route, { params: { id } }, signal);
    } catch (error) {
      if (signal?.aborted) return;
      throw error;
    }
    if (response.body === null) return;
    try {
      for await (const event of readServerSentEvents(response.body)) {
        if (event.event !== JOB_SSE_EVENT) continue;
        const job = parseAnswer(route, response.status, parseJson(route, response.status, event.data));
        yield job;
        if (TERMINAL_JOB_STATES.includes(job.state)) return;
      }
    } catch (error) {
      if (signal?.aborted) return;
      if (error instanceof ApiError) throw error;
      throw unreachable(this.#baseUrl, error, 'the job event stream broke');
    }
  }

  /**
   * Every item of a list, page after page: `for await (const v of client.paginate(client.listVolumes, { state:
   * 'available' }))`. The method is called on this client, so it may be passed unbound.
   */
  async *paginate<Q extends object | undefined, T>(
    method: (this: ManagerClient, query: Q, signal?: AbortSignal) => Promise<Page<T>>,
    query?: Q,
    signal?: AbortSignal,
  ): AsyncGenerator<T, void, undefined> {
    let cursor: string | undefined;
    for (;;) {
      const page: Page<T> = await method.call(this, { ...query, cursor } as Q, signal);
      yield* page.items;
      if (page.next_cursor === null) return;
      // A server handing back the cursor it was given would loop forever.
      if (page.next_cursor === cursor) throw new ApiError('internal', 'the manager repeated a page cursor');
      cursor = page.next_cursor;
    }
  }

  /** Any route by name, for code that is itself driven by the route table. */
  async request<N extends ManagerRouteName>(name: N, input: Input<N>, signal?: AbortSignal): Answer<N> {
    const route: ManagerRoute = managerRoutes[name];
    if (route.content === 'sse') throw new TypeError(`${name} is a stream: iterate it instead`);
    const response = await this.#send(route, input as LooseInput, signal);
    if (route.response === undefined) {
      await response.body?.cancel();
      return undefined as RouteOutput<Routes[N]>;
    }
    const text = await response.text().catch((error: unknown) => {
      throw unreachable(this.#baseUrl, error, 'the answer was cut off');
    });
    const raw = route.content === 'text' ? text : parseJson(route, response.status, text);
    return parseAnswer(route, response.status, raw) as RouteOutput<Routes[N]>;
  }

  /** Sends the request; resolves to a 2xx response, throws an ApiError otherwise. */
  async #send(route: ManagerRoute, input: LooseInput, signal?: AbortSignal): Promise<Response> {
    const params = (input.params ?? {}) as Record<string, unknown>;
    const path = route.path.replace(/\{(\w+)\}/g, (_, key: string) => {
      const value = params[key];
      if (value === undefined || value === '') throw new TypeError(`${route.operationId} needs ${key}`);
      return encodeURIComponent(String(value));
    });
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries((input.query ?? {}) as Record<string, unknown>)) {
      if (value !== undefined && value !== null) search.set(key, String(value));
    }
    const headers: Record<string, string> = {
      accept: { json: 'application/json', sse: 'text/event-stream', text: 'text/plain' }[
        route.content ?? 'json'
      ],
    };
    const init: RequestInit = { method: route.method.toUpperCase(), headers };
    if (this.#token !== undefined) {
      if (route.auth !== 'none') headers.authorization = `Bearer ${this.#token}`;
    } else {
      init.credentials = 'same-origin';
      const csrf = route.method === 'get' ? undefined : this.#csrfToken?.();
      if (csrf !== undefined) headers[CSRF_HEADER] = csrf;
    }
    if (route.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(input.body ?? {});
    }
    if (signal !== undefined) init.signal = signal;
    const query = search.size > 0 ? `?${search}` : '';

    let response: Response;
    try {
      response = await this.#fetch(`${this.#baseUrl}${path}${query}`, init);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw unreachable(this.#baseUrl, error, 'cannot reach the manager');
    }
    if (response.ok) return response;
    throw await errorFromResponse(response);
  }
}

/** The header a session's state-changing requests carry its CSRF token in (bearer tokens need none). */
export const CSRF_HEADER = 'x-csrf-token';

/** The server's ApiError from an error answer, or `internal` naming the status when the body is not one. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const body = ApiErrorBody.safeParse(json);
  if (body.success) return new ApiError(body.data.code, body.data.message, body.data.details);
  return new ApiError('internal', `the manager answered HTTP ${response.status} without an error body`, {
    status: response.status,
    body: text.slice(0, 200),
  });
}

function unreachable(baseUrl: string, cause: unknown, what: string): ApiError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ApiError('unavailable', `${what} (${baseUrl}): ${reason}`, { url: baseUrl }, { cause });
}

function parseJson(route: ManagerRoute, status: number, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError('internal', `the manager's answer to ${route.operationId} is not JSON`, { status });
  }
}

function parseAnswer<S extends z.ZodType>(
  route: ManagerRoute & { response?: S },
  status: number,
  raw: unknown,
) {
  const parsed = (route.response as S).safeParse(raw);
  if (parsed.success) return parsed.data as z.output<S>;
  throw new ApiError('internal', `the manager's answer to ${route.operationId} does not match its schema`, {
    status,
    ...validationDetails(parsed.error),
  });
}
