import { randomBytes, randomUUID } from 'node:crypto';
import { ApiError, type UserRole } from '@stowage/api';
import { countFailedSignIns } from '../db/audit.js';
import { uniqueViolation } from '../db/conn.js';
import type { AppUserRow, UserSessionRow } from '../db/schema-users.js';
import {
  deleteExpiredSessions,
  deleteUser,
  deleteUserSessions,
  getUser,
  getUserByName,
  insertSession,
  insertUser,
  lockAdmins,
  recordSignIn,
  setUserPassword,
  setUserRole,
} from '../db/users.js';
import { decoyHash, hashPassword, verifyPassword } from '../secrets/passwords.js';
import { hashToken } from '../secrets/tokens.js';
import type { ManagerContext } from './context.js';

/**
 * Sign-in throttling (docs/manager.md#users-roles-and-the-audit-log): failures are counted from the audit log, so every replica
 * sees the same counts and a restart forgets nothing. Ten failures for one name in 15 minutes hold that
 * name, fifty from one address hold the address, until the oldest leaves the window. The name's limit is
 * what stops a guesser; the address's stops one source spraying many names.
 */
export const SIGN_IN_WINDOW_MS = 15 * 60_000;
export const SIGN_IN_FAILURES_PER_NAME = 10;
export const SIGN_IN_FAILURES_PER_ADDRESS = 50;

export async function createUser(
  ctx: ManagerContext,
  input: { name: string; role: UserRole; password: string },
): Promise<AppUserRow> {
  const passwordHash = await hashPassword(input.password);
  try {
    const row = await insertUser(ctx.db, {
      id: randomUUID(),
      name: input.name,
      role: input.role,
      passwordHash,
    });
    ctx.logger.info('user created', { user_id: row.id, name: row.name, role: row.role });
    return row;
  } catch (error) {
    if (uniqueViolation(error) !== undefined)
      throw new ApiError('conflict', `a user named "${input.name}" exists`, { field: 'name' });
    throw error;
  }
}

export async function requireUser(ctx: ManagerContext, id: string): Promise<AppUserRow> {
  const row = await getUser(ctx.db, id);
  if (row === undefined) throw new ApiError('not_found', `no user ${id}`);
  return row;
}

/** A new role applies to the user's next request; a new password ends every session of theirs. */
export async function updateUser(
  ctx: ManagerContext,
  id: string,
  change: { role?: UserRole | undefined; password?: string | undefined },
): Promise<AppUserRow> {
  const passwordHash = change.password === undefined ? undefined : await hashPassword(change.password);
  await ctx.db.transaction().execute(async (trx) => {
    const admins = await lockAdmins(trx);
    const user = await getUser(trx, id);
    if (user === undefined) throw new ApiError('not_found', `no user ${id}`);
    if (change.role !== undefined && change.role !== 'admin' && admins.length === 1 && admins[0] === id)
      throw new ApiError('conflict', `${user.name} is the last admin: make another admin first`);
    if (change.role !== undefined) await setUserRole(trx, id, change.role);
    if (passwordHash !== undefined) {
      await setUserPassword(trx, id, passwordHash, ctx.now());
      await deleteUserSessions(trx, id);
    }
  });
  ctx.logger.info('user changed', {
    user_id: id,
    ...(change.role === undefined ? {} : { role: change.role }),
    password_changed: passwordHash !== undefined,
  });
  return requireUser(ctx, id);
}

export async function removeUser(ctx: ManagerContext, id: string): Promise<void> {
  await ctx.db.transaction().execute(async (trx) => {
    const admins = await lockAdmins(trx);
    const user = await getUser(trx, id);
    if (user === undefined) throw new ApiError('not_found', `no user ${id}`);
    if (admins.length === 1 && admins[0] === id)
      throw new ApiError('conflict', `${user.name} is the last admin: make another admin first`);
    await deleteUser(trx, id); // its sessions go with it (ON DELETE CASCADE)
  });
  ctx.logger.info('user removed', { user_id: id });
}

export interface SignedIn {
  readonly user: AppUserRow;
  readonly session: UserSessionRow;
  /** The cookie's value: only its hash is stored. */
  readonly cookie: string;
}

/**
 * Checks a name and password and opens a session. A wrong name and a wrong password answer the same words
 * after the same work (a decoy hash is checked for unknown names), so names cannot be found out.
 */
export async function signIn(
  ctx: ManagerContext,
  input: { name: string; password: string; remote: string | null; ttlMs: number },
): Promise<SignedIn> {
  const now = ctx.now();
  const since = new Date(now.getTime() - SIGN_IN_WINDOW_MS);
  const failures = await countFailedSignIns(ctx.db, input.name, input.remote, since);
  if (failures.byName >= SIGN_IN_FAILURES_PER_NAME || failures.byRemote >= SIGN_IN_FAILURES_PER_ADDRESS) {
    ctx.logger.warn('sign-in held by the rate limit', { name: input.name, remote: input.remote });
    throw new ApiError('rate_limited', 'too many failed sign-ins: wait 15 minutes and try again', {
      retry_after_seconds: SIGN_IN_WINDOW_MS / 1000,
    });
  }
  const user = await getUserByName(ctx.db, input.name);
  const matches = await verifyPassword(input.password, user?.password_hash ?? (await decoyHash()));
  if (user === undefined || !matches) {
    ctx.logger.warn('sign-in refused', { name: input.name, remote: input.remote });
    throw new ApiError('unauthorized', 'wrong name or password');
  }
  await deleteExpiredSessions(ctx.db, now);
  const cookie = randomBytes(32).toString('base64url');
  const session: UserSessionRow = {
    id: randomUUID(),
    token_hash: hashToken(cookie),
    user_id: user.id,
    csrf_token: randomBytes(32).toString('base64url'),
    created_at: now,
    expires_at: new Date(now.getTime() + input.ttlMs),
    remote: input.remote,
  };
  await insertSession(ctx.db, session);
  await recordSignIn(ctx.db, user.id, now);
  ctx.logger.info('signed in', { user_id: user.id, name: user.name, session_id: session.id });
  return { user: { ...user, last_sign_in_at: now }, session, cookie };
}
