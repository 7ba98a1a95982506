import { randomUUID } from 'node:crypto';
import { getConnInfo } from '@hono/node-server/conninfo';
import { ApiError, type AuditActor, type ManagerRoute } from '@stowage/api';
import type { Context } from 'hono';
import type { Kysely } from 'kysely';
import { recordAuditEntry } from '../db/audit.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../log.js';
import type { Caller } from './auth.js';

/**
 * The audit log (docs/manager.md#users-roles-and-the-audit-log): one row per state-changing call — who, which route, the ids in its
 * path (and of what it created), when, and how it ended. Never a body: bodies carry passwords, S3 keys and
 * passphrases. Agents' own reports (job events, commits) are not calls of a person; their effects are in the
 * jobs' history, so they are left out rather than drown the log.
 */
export type AuditRecorder = (
  c: Context,
  route: ManagerRoute,
  caller: Caller | undefined,
  outcome: { status: number; error?: unknown; answer?: unknown },
) => Promise<void>;

// Handlers that know better who the caller is (a sign-in names the user it tried) say so here.
const actors = new WeakMap<Request, AuditActor>();

export function setAuditActor(c: Context, actor: AuditActor): void {
  actors.set(c.req.raw, actor);
}

export function actorOf(caller: Caller | undefined): AuditActor {
  if (caller === undefined) return { kind: 'anonymous', id: null, name: null, role: null };
  if (caller.kind === 'user')
    return { kind: 'user', id: caller.user.id, name: caller.user.name, role: caller.role };
  return {
    kind: caller.role === 'agent' ? 'agent' : 'token',
    id: caller.token.id,
    name: caller.token.name,
    role: caller.role,
  };
}

/** The peer's address (no proxy header is trusted: a client could write any). */
export function remoteAddress(c: Context): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null; // app.request() in tests has no socket
  }
}

export function isAudited(route: ManagerRoute): boolean {
  return route.method !== 'get' && route.auth !== 'agent';
}

export function auditRecorder(db: Kysely<Database>, logger: Logger, now: () => Date): AuditRecorder {
  return async (c, route, caller, { status, error, answer }) => {
    const resource: Record<string, string> = { ...c.req.param() };
    const created = error === undefined ? createdId(answer) : undefined;
    if (created !== undefined && resource.id === undefined) resource.id = created;
    try {
      await recordAuditEntry(db, {
        id: randomUUID(),
        at: now(),
        actor: actors.get(c.req.raw) ?? actorOf(caller),
        action: route.operationId,
        method: route.method.toUpperCase(),
        path: c.req.path.slice(0, 1024),
        resource,
        outcome: error === undefined ? 'ok' : 'error',
        status,
        errorCode: error === undefined ? null : error instanceof ApiError ? error.code : 'internal',
        remote: remoteAddress(c),
      });
    } catch (failure) {
      // The call itself has happened; a lost audit row is logged loudly rather than undo or hide it.
      logger.error('audit entry not recorded', { action: route.operationId, error: failure });
    }
  };
}

/** The id of what a call created: the answer's own `id`, or that of its one resource (`{ token: { id } }`). */
function createdId(answer: unknown): string | undefined {
  if (answer === null || typeof answer !== 'object') return undefined;
  const record = answer as Record<string, unknown>;
  if (typeof record.id === 'string') return record.id;
  for (const value of Object.values(record)) {
    if (value !== null && typeof value === 'object' && typeof (value as { id?: unknown }).id === 'string')
      return (value as { id: string }).id;
  }
  return undefined;
}
