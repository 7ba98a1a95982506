import {
  createDocument,
  type oas31,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
} from 'zod-openapi';
import { BackendInfo, JobProgress } from '../agent.js';
import { API_ERROR_STATUS, ApiErrorBody, type ApiErrorCode } from '../errors.js';
import {
  BackupNowRequest,
  BackupStarted,
  ManagedBackup,
  RestoreBackupRequest,
  RestoreStarted,
} from './backups.js';
import { Host, RegisteredHost, RegisterHostRequest } from './hosts.js';
import { ManagedJob } from './jobs.js';
import { routeRoles } from './roles.js';
import { type ManagerRoute, routeErrorCodes } from './route.js';
import { MANAGER_ROUTES } from './routes.js';
import { Health } from './system.js';
import {
  BackupTarget,
  CreateBackupTargetRequest,
  CreatedBackupTarget,
  TargetTestResult,
  UpdateBackupTargetRequest,
} from './targets.js';
import { ApiToken, CreatedToken, CreateTokenRequest } from './tokens.js';
import { CreateVolumeRequest, ManagedVolume } from './volumes.js';

/**
 * The manager's OpenAPI 3.1 document, built from the route table and the same zod schemas the server
 * validates with (served at `GET /v1/openapi.json`). Resources are registered by name here rather than with
 * `.meta({ id })`, which would put ids in zod's global registry at import and clash if the module loaded twice.
 */
const COMPONENTS = {
  ApiError: ApiErrorBody,
  ApiToken,
  CreateTokenRequest,
  CreatedToken,
  BackendInfo,
  Host,
  RegisterHostRequest,
  RegisteredHost,
  BackupTarget,
  CreateBackupTargetRequest,
  UpdateBackupTargetRequest,
  CreatedBackupTarget,
  TargetTestResult,
  ManagedVolume,
  CreateVolumeRequest,
  ManagedBackup,
  BackupNowRequest,
  BackupStarted,
  RestoreBackupRequest,
  RestoreStarted,
  JobProgress,
  ManagedJob,
  Health,
};

export interface ManagerOpenApiOptions {
  /** `info.version`; default the package's API version. */
  version?: string;
  /** Where the document says the API is (e.g. the manager's public URL). */
  servers?: { url: string; description?: string }[];
}

export function managerOpenApiDocument(options: ManagerOpenApiOptions = {}): oas31.OpenAPIObject {
  const paths: ZodOpenApiPathsObject = {};
  for (const route of MANAGER_ROUTES) {
    paths[route.path] = { ...paths[route.path], [route.method]: operation(route) };
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Stowage manager',
      version: options.version ?? '1',
      description:
        'The control plane of Stowage: hosts, backup targets, volumes, backups and jobs. Every error is ' +
        '`{ code, message, details? }`; every list takes `limit` and `cursor` and answers `{ items, next_cursor }`.',
    },
    ...(options.servers === undefined ? {} : { servers: options.servers }),
    security: [{ bearer: [] }],
    components: {
      schemas: COMPONENTS,
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description:
            'A user token (`manager token create`) for every route; an agent token (given to its host at ' +
            'registration) reaches only `POST /v1/agent/job-events`.',
        },
      },
    },
    paths,
  }) as oas31.OpenAPIObject;
}

function operation(route: ManagerRoute): ZodOpenApiOperationObject {
  const op: ZodOpenApiOperationObject = {
    operationId: route.operationId,
    summary: route.summary,
    tags: [route.tag],
    'x-stowage-auth': route.auth,
    ...(route.auth === 'none' ? {} : { 'x-stowage-roles': routeRoles(route) }),
    responses: { [String(route.status)]: success(route), ...errorResponses(route) },
  };
  if (route.auth === 'none') op.security = [];
  if (route.params !== undefined || route.query !== undefined) {
    op.requestParams = {
      ...(route.params === undefined ? {} : { path: route.params }),
      ...(route.query === undefined ? {} : { query: route.query }),
    };
  }
  if (route.body !== undefined) {
    op.requestBody = {
      required: route.bodyOptional !== true,
      content: { 'application/json': { schema: route.body } },
    };
  }
  return op;
}

function success(route: ManagerRoute) {
  if (route.response === undefined) return { description: 'Done; no content.' };
  switch (route.content ?? 'json') {
    case 'json':
      return { description: 'OK', content: { 'application/json': { schema: route.response } } };
    case 'text':
      return { description: 'OK', content: { 'text/plain': { schema: route.response } } };
    case 'sse':
      // OpenAPI 3.1 cannot type the events of a stream; the description names their shape.
      return {
        description:
          'A stream of `event: job` whose `data:` is one ManagedJob as JSON; it ends after a terminal state.',
        content: { 'text/event-stream': { schema: { type: 'string' as const } } },
      };
  }
}

/** One response per status, naming the codes that share it (409: `conflict` and `cancelled`, say). */
function errorResponses(route: ManagerRoute) {
  const byStatus = new Map<number, ApiErrorCode[]>();
  for (const code of routeErrorCodes(route)) {
    const status = API_ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, codes]) => [
      String(status),
      {
        description: codes.map((c) => `\`${c}\``).join(', '),
        content: { 'application/json': { schema: ApiErrorBody } },
      },
    ]),
  );
}
