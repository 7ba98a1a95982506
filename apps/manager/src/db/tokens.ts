import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { ApiTokenRow } from './schema.js';

export type TokenRole = ApiTokenRow['role'];

export async function insertToken(
  db: Db,
  token: { id: string; name: string; role: TokenRole; hostId: string | null; hash: Uint8Array },
): Promise<ApiTokenRow> {
  return db
    .insertInto('api_token')
    .values({
      id: token.id,
      name: token.name,
      role: token.role,
      host_id: token.hostId,
      token_hash: token.hash,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The live (not revoked) token with this hash. */
export async function findActiveToken(db: Db, hash: Uint8Array): Promise<ApiTokenRow | undefined> {
  return db
    .selectFrom('api_token')
    .selectAll()
    .where('token_hash', '=', hash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
}

/** Records use at most once a minute per token, so every request does not write. */
export async function touchToken(db: Db, id: string, now: Date): Promise<void> {
  const minuteAgo = new Date(now.getTime() - 60_000);
  await db
    .updateTable('api_token')
    .set({ last_used_at: now })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', minuteAgo)]))
    .execute();
}

export async function listTokensPage(
  db: Db,
  page: { limit: number; cursor?: PageCursor },
): Promise<ApiTokenRow[]> {
  const query = db.selectFrom('api_token').selectAll();
  return newestFirstPage(query, 'created_at', 'id', page).execute();
}

export async function getToken(db: Db, id: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom('api_token').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Revokes a token; revoking twice keeps the first time. */
export async function revokeToken(db: Db, id: string, now: Date): Promise<ApiTokenRow | undefined> {
  await db
    .updateTable('api_token')
    .set({ revoked_at: now })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .execute();
  return getToken(db, id);
}
