import { ApiError, type AuditEntry, type User, type userRoutes } from '@stowage/api';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { ManagerConfig } from '../config.js';
import { listAuditPage } from '../db/audit.js';
import { decodeCursor, toPage } from '../db/pagination.js';
import type { AppUserRow, AuditLogRow } from '../db/schema-users.js';
import { deleteSessionByHash, findLiveSession, listUsersPage } from '../db/users.js';
import { hashToken } from '../secrets/tokens.js';
import { createUser, removeUser, signIn, updateUser } from '../services/users.js';
import type { HandlersOf } from './app.js';
import { remoteAddress, setAuditActor } from './audit.js';
import { SESSION_COOKIE } from './auth.js';
import type { HandlerDeps } from './handlers.js';

export interface SessionSettings {
  readonly ttlMs: number;
  /** Mark the cookie Secure: the manager is reached over TLS (MANAGER_PUBLIC_URL is https). */
  readonly secure: boolean;
}

export function sessionSettings(config: ManagerConfig): SessionSettings {
  return { ttlMs: config.sessionMs, secure: config.publicUrl?.startsWith('https:') ?? false };
}

const DEFAULT_SESSIONS: SessionSettings = { ttlMs: 12 * 3_600_000, secure: false };

export function userJson(row: AppUserRow): User {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    created_at: row.created_at.toISOString(),
    last_sign_in_at: row.last_sign_in_at?.toISOString() ?? null,
  };
}

function auditJson(row: AuditLogRow): AuditEntry {
  return {
    id: row.id,
    at: row.at.toISOString(),
    actor: { kind: row.actor_kind, id: row.actor_id, name: row.actor_name, role: row.actor_role },
    action: row.action,
    method: row.method,
    path: row.path,
    resource: row.resource,
    outcome: row.outcome,
    status: row.status,
    error_code: row.error_code,
    remote: row.remote,
    repeats: row.repeats,
    last_at: row.last_at?.toISOString() ?? null,
  };
}

/** Sessions, users and the audit log (routes-users.ts in @stowage/api). */
export function userHandlers(deps: HandlerDeps): HandlersOf<typeof userRoutes> {
  const { ctx } = deps;
  const sessions = deps.sessions ?? DEFAULT_SESSIONS;
  // Secure behind TLS, or whenever this very request came over https.
  const secureFor = (c: Context) => sessions.secure || new URL(c.req.url).protocol === 'https:';
  return {
    signIn: async ({ body }, _caller, c) => {
      const name = body.name.trim().toLowerCase();
      setAuditActor(c, { kind: 'anonymous', id: null, name: name.slice(0, 64), role: null });
      let signed: Awaited<ReturnType<typeof signIn>>;
      try {
        signed = await signIn(ctx, {
          name,
          password: body.password,
          remote: remoteAddress(c),
          ttlMs: sessions.ttlMs,
        });
      } catch (error) {
        if (error instanceof ApiError && error.code === 'rate_limited')
          c.header('Retry-After', String(error.details?.retry_after_seconds ?? 900));
        throw error;
      }
      setAuditActor(c, { kind: 'user', id: signed.user.id, name: signed.user.name, role: signed.user.role });
      setCookie(c, SESSION_COOKIE, signed.cookie, {
        path: '/',
        httpOnly: true,
        sameSite: 'Strict',
        secure: secureFor(c),
        expires: signed.session.expires_at,
      });
      return {
        user: userJson(signed.user),
        csrf_token: signed.session.csrf_token,
        expires_at: signed.session.expires_at.toISOString(),
      };
    },
    getSession: async (_input, _caller, c) => {
      const cookie = getCookie(c, SESSION_COOKIE);
      const found =
        cookie === undefined || cookie.length > 200
          ? undefined
          : await findLiveSession(ctx.db, hashToken(cookie), ctx.now());
      if (found === undefined) throw new ApiError('unauthorized', 'not signed in');
      return {
        user: userJson(found.user),
        csrf_token: found.session.csrf_token,
        expires_at: found.session.expires_at.toISOString(),
      };
    },
    signOut: async (_input, _caller, c) => {
      const cookie = getCookie(c, SESSION_COOKIE);
      if (cookie !== undefined && cookie.length <= 200) {
        const found = await findLiveSession(ctx.db, hashToken(cookie), ctx.now());
        if (found !== undefined)
          setAuditActor(c, { kind: 'user', id: found.user.id, name: found.user.name, role: found.user.role });
        await deleteSessionByHash(ctx.db, hashToken(cookie));
      }
      deleteCookie(c, SESSION_COOKIE, {
        path: '/',
        secure: secureFor(c),
        httpOnly: true,
        sameSite: 'Strict',
      });
      return undefined;
    },
    createUser: async ({ body }) => userJson(await createUser(ctx, body)),
    listUsers: async ({ query }) => {
      const rows = await listUsersPage(ctx.db, { limit: query.limit, cursor: decodeCursor(query.cursor) });
      return toPage(rows, query.limit, (row) => ({ at: row.created_at, id: row.id }), userJson);
    },
    updateUser: async ({ params, body }) => userJson(await updateUser(ctx, params.id, body)),
    deleteUser: async ({ params }) => {
      await removeUser(ctx, params.id);
      return undefined;
    },
    listAudit: async ({ query }) => {
      const rows = await listAuditPage(ctx.db, {
        limit: query.limit,
        cursor: decodeCursor(query.cursor),
        ...(query.action === undefined ? {} : { action: query.action }),
        ...(query.actor === undefined ? {} : { actor: query.actor }),
        ...(query.outcome === undefined ? {} : { outcome: query.outcome }),
      });
      return toPage(rows, query.limit, (row) => ({ at: row.at, id: row.id }), auditJson);
    },
  };
}
