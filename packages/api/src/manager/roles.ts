import type { ManagerRouteSpec } from './route.js';

/** Who calls: the role of an API token or of a signed-in user (agents have tokens of their own role). */
export const CALLER_ROLES = ['admin', 'operator', 'viewer', 'agent'] as const;
export type CallerRole = (typeof CALLER_ROLES)[number];

/** Routes only an admin changes: credentials, people, hosts, targets (and their GC, import and rebuild). */
const ADMIN_ONLY_TAGS = new Set(['tokens', 'users', 'hosts', 'backup_targets', 'targets', 'webhooks']);
/** Routes only an admin reads: who may sign in, what everyone did, where notifications go. */
const ADMIN_READ_TAGS = new Set(['users', 'audit', 'webhooks']);

/**
 * What a role reaches (docs/manager.md#users-roles-and-the-audit-log), the one rule the manager enforces
 * and the console uses to show only what the user may do. An agent token reaches only agent routes (its
 * job events and commits); admins reach everything. Viewers read; operators read and run backups,
 * restores, schedules, verifies and jobs, and acknowledge alerts.
 */
export function roleAllows(
  role: CallerRole,
  route: Pick<ManagerRouteSpec, 'auth' | 'method' | 'tag'>,
): boolean {
  if (route.auth === 'none') return true;
  if (route.auth === 'agent') return role === 'agent' || role === 'admin';
  if (role === 'agent') return false;
  if (role === 'admin') return true;
  if (ADMIN_READ_TAGS.has(route.tag)) return false;
  if (route.method === 'get') return true;
  return role === 'operator' && !ADMIN_ONLY_TAGS.has(route.tag);
}

/** The roles that reach a route, for its OpenAPI operation (`x-stowage-roles`). */
export function routeRoles(route: Pick<ManagerRouteSpec, 'auth' | 'method' | 'tag'>): CallerRole[] {
  return CALLER_ROLES.filter((role) => roleAllows(role, route));
}
