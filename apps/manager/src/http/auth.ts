import { timingSafeEqual } from 'node:crypto';
import { ApiError, type CallerRole, CSRF_HEADER } from '@stowage/api';
import type { Context } from 'hono';
import { getCookie } from 'hono/cookie';
import type { Kysely } from 'kysely';
import type { ApiTokenRow, Database } from '../db/schema.js';
import type { AppUserRow, UserSessionRow } from '../db/schema-users.js';
import { findActiveToken, touchToken } from '../db/tokens.js';
import { findLiveSession } from '../db/users.js';
import type { Logger } from '../log.js';
import { hashToken } from '../secrets/tokens.js';

/** The console's session cookie: HttpOnly, SameSite=Strict, Secure behind TLS (handlers-users.ts sets it). */
export const SESSION_COOKIE = 'stowage_session';

/**
 * Who made a request: an API token (scripts, agents) or a signed-in user (the console), and the role that
 * decides what it reaches.
 */
export type Caller =
  | { readonly kind: 'token'; readonly role: CallerRole; readonly token: ApiTokenRow }
  | {
      readonly kind: 'user';
      readonly role: CallerRole;
      readonly user: AppUserRow;
      readonly session: UserSessionRow;
    };

export type Authenticator = (c: Context) => Promise<Caller>;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A bearer token, else the session cookie. Tokens are hashed and looked up (only hashes are stored, so the
 * lookup is an equality on an index and there is nothing to compare in time). A cookie session's
 * state-changing requests must also carry its CSRF token in `X-CSRF-Token`: a page of another site can make
 * the browser send the cookie (SameSite aside) but cannot read the token. A refused attempt is logged with
 * its method and path, never with what was presented.
 */
export function requestAuthenticator(db: Kysely<Database>, logger: Logger, now: () => Date): Authenticator {
  const refuse = (c: Context, reason: string, message: string): never => {
    logger.warn('unauthorized request', { method: c.req.method, path: c.req.path, reason });
    c.header('WWW-Authenticate', 'Bearer realm="stowage-manager"');
    throw new ApiError('unauthorized', message);
  };
  return async (c) => {
    const authorization = c.req.header('authorization');
    if (authorization !== undefined) {
      const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(authorization);
      const token = match === null ? undefined : await findActiveToken(db, hashToken(match[1]!));
      if (token === undefined) {
        return refuse(
          c,
          match === null ? 'malformed authorization' : 'unknown or revoked token',
          'a valid bearer token is required',
        );
      }
      await touchToken(db, token.id, now());
      return { kind: 'token', role: token.role, token };
    }
    const cookie = getCookie(c, SESSION_COOKIE);
    if (cookie === undefined || cookie.length > 200) {
      return refuse(c, 'no credentials', 'a valid bearer token or a signed-in session is required');
    }
    const found = await findLiveSession(db, hashToken(cookie), now());
    if (found === undefined) {
      return refuse(c, 'unknown or expired session', 'the session has ended: sign in again');
    }
    if (!SAFE_METHODS.has(c.req.method) && !sameSecret(c.req.header(CSRF_HEADER), found.session.csrf_token)) {
      logger.warn('request without its CSRF token refused', { method: c.req.method, path: c.req.path });
      throw new ApiError(
        'forbidden',
        `a signed-in session's ${c.req.method} must carry its CSRF token in ${CSRF_HEADER}`,
      );
    }
    return { kind: 'user', role: found.user.role, user: found.user, session: found.session };
  };
}

export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
