import { sql } from 'kysely';
import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { AuditActorKind, AuditLogRow } from './schema-users.js';

export interface NewAuditEntry {
  readonly id: string;
  readonly at: Date;
  readonly actor: {
    kind: AuditActorKind;
    id: string | null;
    name: string | null;
    role: string | null;
  };
  readonly action: string;
  readonly method: string;
  readonly path: string;
  readonly resource: Record<string, string>;
  readonly outcome: 'ok' | 'error';
  readonly status: number;
  readonly errorCode: string | null;
  readonly remote: string | null;
}

export async function insertAuditEntry(db: Db, entry: NewAuditEntry): Promise<void> {
  await db
    .insertInto('audit_log')
    .values({
      id: entry.id,
      at: entry.at,
      actor_kind: entry.actor.kind,
      actor_id: entry.actor.id,
      actor_name: entry.actor.name,
      actor_role: entry.actor.role,
      action: entry.action,
      method: entry.method,
      path: entry.path,
      resource: JSON.stringify(entry.resource),
      outcome: entry.outcome,
      status: entry.status,
      error_code: entry.errorCode,
      remote: entry.remote,
    })
    .execute();
}

export async function listAuditPage(
  db: Db,
  page: {
    limit: number;
    cursor?: PageCursor;
    action?: string;
    actor?: string;
    outcome?: 'ok' | 'error';
  },
): Promise<AuditLogRow[]> {
  let query = db.selectFrom('audit_log').selectAll();
  if (page.action !== undefined) query = query.where('action', '=', page.action);
  if (page.actor !== undefined) query = query.where('actor_name', '=', page.actor);
  if (page.outcome !== undefined) query = query.where('outcome', '=', page.outcome);
  return newestFirstPage(query, 'at', 'id', page).execute();
}

/** Wrong-password sign-ins since `since` for this name and from this address (the rate limit's two counts). */
export async function countFailedSignIns(
  db: Db,
  name: string,
  remote: string | null,
  since: Date,
): Promise<{ byName: number; byRemote: number }> {
  const failed = db
    .selectFrom('audit_log')
    .where('action', '=', 'signIn')
    .where('outcome', '=', 'error')
    // Wrong passwords only: attempts refused by the limit itself do not prolong it.
    .where('error_code', '=', 'unauthorized')
    .where('at', '>', since);
  const [byName, byRemote] = await Promise.all([
    failed.select(sql<string>`count(*)`.as('n')).where('actor_name', '=', name).executeTakeFirstOrThrow(),
    remote === null
      ? { n: '0' }
      : failed.select(sql<string>`count(*)`.as('n')).where('remote', '=', remote).executeTakeFirstOrThrow(),
  ]);
  return { byName: Number(byName.n), byRemote: Number(byRemote.n) };
}
