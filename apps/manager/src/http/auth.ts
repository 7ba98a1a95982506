import { ApiError, type ManagerRoute } from '@stowage/api';
import type { Context } from 'hono';
import type { Kysely } from 'kysely';
import type { ApiTokenRow, Database } from '../db/schema.js';
import { findActiveToken, touchToken } from '../db/tokens.js';
import type { Logger } from '../log.js';
import { hashToken } from '../secrets/tokens.js';
import type { Caller } from './app.js';

export type Authenticator = (c: Context) => Promise<Caller>;

/**
 * Bearer tokens: the presented token is hashed and looked up (only hashes are stored, so the lookup is an
 * equality on an index and there is nothing to compare in time). A refused attempt is logged with its
 * method and path, never with what was presented.
 */
export function bearerAuthenticator(db: Kysely<Database>, logger: Logger, now: () => Date): Authenticator {
  return async (c) => {
    const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(c.req.header('authorization') ?? '');
    const token = match === null ? undefined : await findActiveToken(db, hashToken(match[1]!));
    if (token === undefined) {
      logger.warn('unauthorized request', {
        method: c.req.method,
        path: c.req.path,
        reason: match === null ? 'no bearer token' : 'unknown or revoked token',
      });
      c.header('WWW-Authenticate', 'Bearer realm="stowage-manager"');
      throw new ApiError('unauthorized', 'a valid bearer token is required');
    }
    await touchToken(db, token.id, now());
    return { token };
  };
}

/** Routes an operator may not use: tokens, hosts and targets are an admin's. */
const ADMIN_ONLY_TAGS = new Set(['tokens', 'hosts', 'targets']);

/**
 * What a token's role reaches. An agent token reaches only agent routes (its job events); admin tokens
 * reach everything. Viewers read; operators read and run backups, restores and jobs. (Users and sessions
 * come with the console; the roles are enforced here, by the API.)
 */
export function allows(token: ApiTokenRow, route: ManagerRoute): boolean {
  if (route.auth === 'agent') return token.role === 'agent' || token.role === 'admin';
  switch (token.role) {
    case 'agent':
      return false;
    case 'admin':
      return true;
    case 'viewer':
      return route.method === 'get';
    case 'operator':
      return route.method === 'get' ? true : !ADMIN_ONLY_TAGS.has(route.tag);
  }
}
