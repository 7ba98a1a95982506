import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { AppUserRow, UserRole, UserSessionRow } from './schema-users.js';

export async function insertUser(
  db: Db,
  user: { id: string; name: string; role: UserRole; passwordHash: string },
): Promise<AppUserRow> {
  return db
    .insertInto('app_user')
    .values({ id: user.id, name: user.name, role: user.role, password_hash: user.passwordHash })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function getUser(db: Db, id: string): Promise<AppUserRow | undefined> {
  return db.selectFrom('app_user').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function getUserByName(db: Db, name: string): Promise<AppUserRow | undefined> {
  return db.selectFrom('app_user').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function listUsersPage(
  db: Db,
  page: { limit: number; cursor?: PageCursor },
): Promise<AppUserRow[]> {
  const query = db.selectFrom('app_user').selectAll();
  return newestFirstPage(query, 'created_at', 'id', page).execute();
}

/** Locks the admins' rows (inside a transaction), so two removals cannot both leave the other as the last. */
export async function lockAdmins(db: Db): Promise<string[]> {
  const rows = await db.selectFrom('app_user').select('id').where('role', '=', 'admin').forUpdate().execute();
  return rows.map((row) => row.id);
}

export async function setUserRole(db: Db, id: string, role: UserRole): Promise<void> {
  await db.updateTable('app_user').set({ role }).where('id', '=', id).execute();
}

export async function setUserPassword(db: Db, id: string, passwordHash: string, now: Date): Promise<void> {
  await db
    .updateTable('app_user')
    .set({ password_hash: passwordHash, password_changed_at: now })
    .where('id', '=', id)
    .execute();
}

export async function deleteUser(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('app_user').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function recordSignIn(db: Db, id: string, now: Date): Promise<void> {
  await db.updateTable('app_user').set({ last_sign_in_at: now }).where('id', '=', id).execute();
}

export async function insertSession(
  db: Db,
  session: Omit<UserSessionRow, 'created_at'> & { created_at: Date },
): Promise<void> {
  await db.insertInto('user_session').values(session).execute();
}

/** The live session with this cookie hash, with its user as they are now (a changed role applies at once). */
export async function findLiveSession(
  db: Db,
  tokenHash: Uint8Array,
  now: Date,
): Promise<{ session: UserSessionRow; user: AppUserRow } | undefined> {
  const row = await db
    .selectFrom('user_session as s')
    .innerJoin('app_user as u', 'u.id', 's.user_id')
    .select([
      's.id as s_id',
      's.token_hash',
      's.user_id',
      's.csrf_token',
      's.created_at as s_created_at',
      's.expires_at',
      's.remote',
      'u.id',
      'u.name',
      'u.role',
      'u.password_hash',
      'u.password_changed_at',
      'u.created_at',
      'u.last_sign_in_at',
    ])
    .where('s.token_hash', '=', tokenHash)
    .where('s.expires_at', '>', now)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  const { s_id, token_hash, user_id, csrf_token, s_created_at, expires_at, remote, ...user } = row;
  return {
    session: { id: s_id, token_hash, user_id, csrf_token, created_at: s_created_at, expires_at, remote },
    user,
  };
}

export async function deleteSessionByHash(db: Db, tokenHash: Uint8Array): Promise<void> {
  await db.deleteFrom('user_session').where('token_hash', '=', tokenHash).execute();
}

export async function deleteUserSessions(db: Db, userId: string): Promise<void> {
  await db.deleteFrom('user_session').where('user_id', '=', userId).execute();
}

export async function deleteExpiredSessions(db: Db, now: Date): Promise<void> {
  await db.deleteFrom('user_session').where('expires_at', '<=', now).execute();
}
