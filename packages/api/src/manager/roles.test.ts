import { describe, expect, it } from 'vitest';
import { managerOpenApiDocument } from './openapi.js';
import { routeRoles } from './roles.js';
import { managerRoutes } from './routes.js';

describe('roles', () => {
  it('gives each route the roles the issue names: admin all, operator backups and restores, viewer reads', () => {
    const r = managerRoutes;
    expect(routeRoles(r.listVolumes)).toEqual(['admin', 'operator', 'viewer']);
    expect(routeRoles(r.backupNow)).toEqual(['admin', 'operator']);
    expect(routeRoles(r.restoreBackup)).toEqual(['admin', 'operator']);
    expect(routeRoles(r.deleteBackup)).toEqual(['admin', 'operator']);
    expect(routeRoles(r.updateBackupSchedule)).toEqual(['admin', 'operator']);
    expect(routeRoles(r.cancelJob)).toEqual(['admin', 'operator']);
    for (const admin of [
      r.createTarget,
      r.deleteTarget,
      r.startGc,
      r.createToken,
      r.registerHost,
      r.createUser,
    ])
      expect(routeRoles(admin), admin.operationId).toEqual(['admin']);
    // Who may sign in and what everyone did are an admin's to read.
    expect(routeRoles(r.listUsers)).toEqual(['admin']);
    expect(routeRoles(r.listAudit)).toEqual(['admin']);
    expect(routeRoles(r.postJobEvent)).toEqual(['admin', 'agent']);
    expect(routeRoles(r.signIn)).toEqual(['admin', 'operator', 'viewer', 'agent']);
  });

  it('publishes them in the OpenAPI document', () => {
    const op = managerOpenApiDocument().paths?.['/v1/backups/{id}']?.delete as Record<string, unknown>;
    expect(op['x-stowage-roles']).toEqual(['admin', 'operator']);
  });
});
