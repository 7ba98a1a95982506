import {
  ApiError,
  type ManagerRoute,
  managerRoutes,
  type RouteInput,
  type RouteOutput,
  roleAllows,
  toHonoPath,
  validationDetails,
  validationMessage,
} from '@stowage/api';
import { type Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { z } from 'zod';
import type { Logger } from '../log.js';
import { type AuditRecorder, isAudited } from './audit.js';
import type { Authenticator, Caller } from './auth.js';

type Routes = typeof managerRoutes;
type RouteKey = keyof Routes;

export type { Caller } from './auth.js';

/** One handler per route of the table: typed input in, the route's answer (or a raw Response) out. */
export type Handlers = {
  [K in RouteKey]: (
    input: RouteInput<Routes[K]>,
    caller: Caller | undefined,
    c: Context,
  ) => Promise<RouteOutput<Routes[K]> | Response>;
};

/** The handlers of one group of routes (routes-gc.ts and the like), written in a file of their own. */
export type HandlersOf<T> = Pick<Handlers, keyof T & RouteKey>;

export interface ManagerAppOptions {
  readonly handlers: Handlers;
  readonly authenticate: Authenticator;
  readonly logger: Logger;
  /** Check every answer against its schema (tests: a handler that drifts from the contract fails). */
  readonly validateResponses?: boolean;
  /** Observes each request's duration (the metrics' histogram). */
  readonly observe?: (route: string, method: string, status: number, seconds: number) => void;
  /** Answers `GET /` when there are no console files (an index of the API). */
  readonly root?: (c: Context) => Response | Promise<Response>;
  /** The console's files: asked for every GET or HEAD outside /v1 that no route answers. */
  readonly assets?: (c: Context) => Promise<Response | undefined>;
  /** Records each state-changing call, whatever its outcome (audit.ts). */
  readonly audit?: AuditRecorder;
}

const MAX_BODY_BYTES = 256 * 1024;

/**
 * The manager's HTTP API, mounted from the route table of `@stowage/api`: each route's params, query and
 * body are parsed with its schemas before its handler runs, so handlers see only valid input, and every
 * failure leaves as `{ code, message, details? }`. Built on Hono so tests call it with `app.request(…)`.
 */
export function createManagerApp(options: ManagerAppOptions): Hono {
  const { logger } = options;
  const app = new Hono();
  app.onError((error, c) => errorResponse(c, error, logger));
  app.notFound(async (c) => {
    const method = c.req.method;
    if (options.assets && (method === 'GET' || method === 'HEAD') && !c.req.path.startsWith('/v1/')) {
      const asset = await options.assets(c);
      if (asset) return asset;
    }
    return errorResponse(c, new ApiError('not_found', `no route ${method} ${c.req.path}`), logger);
  });
  app.use(
    '*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new ApiError('payload_too_large', `request bodies are limited to ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );
  if (options.observe) {
    const observe = options.observe;
    app.use('*', async (c, next) => {
      const started = performance.now();
      await next();
      observe(c.req.routePath, c.req.method, c.res.status, (performance.now() - started) / 1000);
    });
  }
  if (options.root) {
    const root = options.root;
    app.get('/', async (c) => (options.assets ? await options.assets(c) : undefined) ?? root(c));
  }
  for (const key of Object.keys(managerRoutes) as RouteKey[]) {
    const route: ManagerRoute = managerRoutes[key];
    const handler = options.handlers[key] as (
      input: unknown,
      caller: Caller | undefined,
      c: Context,
    ) => Promise<unknown>;
    const serve = async (c: Context, called: { caller?: Caller; answer?: unknown }) => {
      const caller = route.auth === 'none' ? undefined : await options.authenticate(c);
      called.caller = caller;
      if (caller !== undefined && !roleAllows(caller.role, route)) {
        throw new ApiError(
          'forbidden',
          `${caller.kind === 'user' ? `${caller.role} ${caller.user.name}` : `a ${caller.role} token`} cannot ${route.method.toUpperCase()} ${route.path}`,
        );
      }
      const input = {
        params: route.params ? parse(route.params, c.req.param(), 'path') : undefined,
        query: route.query ? parse(route.query, queryObject(c), 'query') : undefined,
        body: route.body
          ? parse(route.body, await readJson(c, route.bodyOptional === true), 'body')
          : undefined,
      };
      const answer = await handler(input, caller, c);
      called.answer = answer;
      if (answer instanceof Response) return answer;
      if (route.status === 204) return c.body(null, 204);
      if (options.validateResponses && route.response) {
        const checked = route.response.safeParse(answer);
        if (!checked.success) {
          logger.error('answer does not match its schema', {
            route: key,
            issues: validationMessage(checked.error),
          });
          throw new ApiError(
            'internal',
            `the answer of ${key} does not match its schema: ${validationMessage(checked.error)}`,
          );
        }
      }
      if (route.content === 'text') return c.text(String(answer), route.status);
      return c.json(answer as object, route.status);
    };
    const audit = options.audit !== undefined && isAudited(route) ? options.audit : undefined;
    app.on(route.method.toUpperCase(), toHonoPath(route.path), async (c) => {
      if (audit === undefined) return serve(c, {});
      const called: { caller?: Caller; answer?: unknown } = {};
      try {
        const response = await serve(c, called);
        await audit(c, route, called.caller, { status: response.status, answer: called.answer });
        return response;
      } catch (error) {
        const status = error instanceof ApiError ? error.status : 500;
        await audit(c, route, called.caller, { status, error });
        throw error;
      }
    });
  }
  return app;
}

function queryObject(c: Context): Record<string, string> {
  // A repeated parameter keeps its last value; no route takes lists.
  return Object.fromEntries(new URL(c.req.url).searchParams);
}

function parse(schema: z.ZodType, value: unknown, where: 'path' | 'query' | 'body'): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ApiError(
    'invalid_request',
    `${where === 'body' ? '' : `${where} `}${validationMessage(result.error)}`,
    validationDetails(result.error),
  );
}

async function readJson(c: Context, optional: boolean): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') {
    if (optional) return {};
    throw new ApiError('invalid_request', 'a JSON body is required');
  }
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new ApiError('invalid_request', 'the body must be JSON (Content-Type: application/json)');
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError('invalid_request', `malformed JSON: ${(error as Error).message}`);
  }
}

export function errorResponse(c: Context, error: unknown, logger: Logger): Response {
  const api =
    error instanceof ApiError
      ? error
      : new ApiError('internal', 'internal error; the manager log has the cause');
  if (!(error instanceof ApiError)) {
    logger.error('request failed', { method: c.req.method, path: c.req.path, error });
  }
  return c.json(api.toBody(), api.status as 500);
}
