import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { managerOpenApiDocument } from './openapi.js';
import { routeErrorCodes, toHonoPath } from './route.js';
import { MANAGER_ROUTES, managerRoutes } from './routes.js';

describe('the manager route table', () => {
  it('names each route by its key and gives each method and path once', () => {
    for (const [key, route] of Object.entries(managerRoutes)) expect(route.operationId).toBe(key);
    const seen = new Set(MANAGER_ROUTES.map((r) => `${r.method} ${r.path}`));
    expect(seen.size).toBe(MANAGER_ROUTES.length);
  });

  it('declares exactly the path parameters its paths use', () => {
    for (const route of MANAGER_ROUTES) {
      const inPath = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(Object.keys(route.params?.shape ?? {}).sort(), route.path).toEqual(inPath);
    }
    expect(toHonoPath('/v1/backups/{id}/restore')).toBe('/v1/backups/:id/restore');
  });

  it('has an answer schema exactly when the status is not 204', () => {
    for (const route of MANAGER_ROUTES)
      expect(route.response === undefined, route.operationId).toBe(route.status === 204);
  });

  it('adds the errors every route of a kind may give', () => {
    expect(routeErrorCodes(managerRoutes.getHealth)).toEqual(['internal']);
    expect(routeErrorCodes(managerRoutes.backupNow)).toEqual(
      expect.arrayContaining([
        'invalid_request',
        'unauthorized',
        'forbidden',
        'not_found',
        'conflict',
        'internal',
      ]),
    );
  });
});

describe('managerOpenApiDocument', () => {
  const document = managerOpenApiDocument({ version: '0.1.0' });

  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(JSON.parse(JSON.stringify(document)));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.openapi).toBe('3.1.0');
  });

  it('describes every route of the table with its method, status and errors', () => {
    const paths = document.paths ?? {};
    for (const route of MANAGER_ROUTES) {
      const op = paths[route.path]?.[route.method];
      expect(op, `${route.method} ${route.path}`).toBeDefined();
      expect(op?.operationId).toBe(route.operationId);
      expect(Object.keys(op?.responses ?? {})).toContain(String(route.status));
      // Sign-in and the session read take no credential, yet answer 401 to a wrong password or no session.
      const unauthorized = route.auth !== 'none' || (route.errors ?? []).includes('unauthorized');
      expect('401' in (op?.responses ?? {})).toBe(unauthorized);
      expect('403' in (op?.responses ?? {})).toBe(route.auth !== 'none');
      expect(op?.security).toEqual(route.auth === 'none' ? [] : undefined);
    }
    const operations = Object.values(paths).flatMap((item) =>
      ['get', 'post', 'patch', 'delete', 'put'].filter((m) => m in (item ?? {})),
    );
    expect(operations).toHaveLength(MANAGER_ROUTES.length);
  });

  it('registers the main resources and the error shape as components', () => {
    const schemas = document.components?.schemas ?? {};
    for (const name of ['ApiError', 'Host', 'BackupTarget', 'ManagedVolume', 'ManagedBackup', 'ManagedJob'])
      expect(schemas).toHaveProperty(name);
    const conflict = document.paths?.['/v1/volumes/{id}/backup']?.post?.responses?.['409'];
    expect(JSON.stringify(conflict)).toContain('#/components/schemas/ApiError');
    expect(document.components?.securitySchemes?.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('keeps strict objects strict and query parameters coercible', () => {
    const schemas = document.components?.schemas ?? {};
    expect(schemas.ManagedVolume).toMatchObject({ additionalProperties: false });
    const list = document.paths?.['/v1/volumes']?.get?.parameters ?? [];
    expect(list.map((p) => ('name' in p ? p.name : undefined))).toEqual(
      expect.arrayContaining(['limit', 'cursor', 'host_id', 'backup_target_id', 'state']),
    );
  });
});
