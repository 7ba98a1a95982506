import type { z } from 'zod';
import type { ApiErrorCode } from '../errors.js';

/**
 * The shape of one manager route (the table is routes.ts). Kept apart from the table so that the server, the
 * client and the OpenAPI builder can speak about routes in general.
 */
export interface ManagerRouteSpec {
  readonly method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI style, `/v1/volumes/{id}`. */
  readonly path: `/${string}`;
  readonly summary: string;
  readonly tag: string;
  /** `admin`: needs a credential, an API token or a console session; which roles reach the route is the
   * rule of roles.ts (`roleAllows`). `agent`: a host's agent token, which reaches nothing else (admins reach
   * agent routes too, for tests and tools). `none`: no credential (health, sign-in). */
  readonly auth: 'none' | 'admin' | 'agent';
  readonly params?: z.ZodObject;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  /** The body may be absent or empty; the server then parses `{}`. */
  readonly bodyOptional?: true;
  readonly status: 200 | 201 | 202 | 204;
  /** Absent exactly when `status` is 204. For `sse`, the schema of each event's data. */
  readonly response?: z.ZodType;
  /** Default `json`. */
  readonly content?: 'json' | 'sse' | 'text';
  /** What the route itself may answer; `routeErrorCodes` adds what every route of its kind may give. */
  readonly errors: readonly ApiErrorCode[];
}

export interface ManagerRoute extends ManagerRouteSpec {
  /** The table's key, also the client's method name. */
  readonly operationId: string;
}

/** Gives each route its key as `operationId`, keeping every literal type of the table. */
export function defineRoutes<const T extends Record<string, ManagerRouteSpec>>(
  table: T,
): { readonly [K in keyof T]: T[K] & { readonly operationId: K } } {
  return Object.fromEntries(
    Object.entries(table).map(([operationId, spec]) => [operationId, { ...spec, operationId }]),
  ) as { readonly [K in keyof T]: T[K] & { readonly operationId: K } };
}

type Out<S> = S extends z.ZodType ? z.output<S> : undefined;
type In<S> = S extends z.ZodType ? z.input<S> : undefined;

/** What a handler receives once the server parsed the request with the route's schemas. */
export type RouteInput<R extends ManagerRouteSpec> = {
  params: Out<R['params']>;
  query: Out<R['query']>;
  body: Out<R['body']>;
};
/** What a handler returns and the client resolves to (undefined for a 204; one event's data for SSE). */
export type RouteOutput<R extends ManagerRouteSpec> = Out<R['response']>;

/** What a caller passes: unparsed (defaults may be left out), and only the parts the route has. */
export type RouteCallInput<R extends ManagerRouteSpec> = (R extends { params: z.ZodType }
  ? { params: In<R['params']> }
  : { params?: undefined }) &
  (R extends { query: z.ZodType } ? { query?: In<R['query']> } : { query?: undefined }) &
  (R extends { body: z.ZodType }
    ? R extends { bodyOptional: true }
      ? { body?: In<R['body']> }
      : { body: In<R['body']> }
    : { body?: undefined });

/** `/v1/volumes/{id}` → `/v1/volumes/:id`. */
export function toHonoPath(path: string): string {
  return path.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, ':$1');
}

/** Every error code a route may answer: its own, plus those every route of its kind may give. */
export function routeErrorCodes(route: ManagerRouteSpec): ApiErrorCode[] {
  const codes = new Set<ApiErrorCode>();
  if (route.params !== undefined || route.query !== undefined || route.body !== undefined) {
    codes.add('invalid_request');
  }
  if (route.auth !== 'none') {
    codes.add('unauthorized');
    codes.add('forbidden');
  }
  for (const code of route.errors) codes.add(code);
  codes.add('internal');
  return [...codes];
}
