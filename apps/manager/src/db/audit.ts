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

/** Refusals that fold into one row a minute: no valid credential, or sign-ins held. */
const FOLDED_STATUSES = [401, 429] as const;
export const FOLD_WINDOW_MS = 60_000;

/**
 * Whether this call is a refusal that folds into a recent row of its kind rather than adding one. A wrong
 * password at sign-in does not: the rate limit counts those rows (and holds the name after ten of them, so
 * they cannot flood); everything else refused with 401 or 429 can come in a flood from one address.
 */
export function folds(entry: Pick<NewAuditEntry, 'action' | 'status' | 'outcome'>): boolean {
  if (entry.outcome !== 'error') return false;
  if (!(FOLDED_STATUSES as readonly number[]).includes(entry.status)) return false;
  return !(entry.action === 'signIn' && entry.status === 401);
}

/**
 * Records a call. A refusal that `folds` adds to the newest row of the same refusal (same action, status,
 * error, address and actor) begun less than a minute before, counting it in `repeats`, so a flood from one
 * address writes a row a minute. Two replicas may each begin a row for the same minute; nothing is lost.
 */
export async function recordAuditEntry(db: Db, entry: NewAuditEntry): Promise<void> {
  if (folds(entry)) {
    const since = new Date(entry.at.getTime() - FOLD_WINDOW_MS);
    const folded = await db
      .updateTable('audit_log')
      .set((eb) => ({ repeats: eb('repeats', '+', 1), last_at: entry.at }))
      .where('id', '=', (eb) =>
        eb
          .selectFrom('audit_log')
          .select('id')
          .where('outcome', '=', 'error')
          .where('status', 'in', FOLDED_STATUSES)
          .where('remote', entry.remote === null ? 'is' : '=', entry.remote)
          .where('action', '=', entry.action)
          .where('at', '>', since)
          .where('status', '=', entry.status)
          .where('error_code', entry.errorCode === null ? 'is' : '=', entry.errorCode)
          .where('actor_kind', '=', entry.actor.kind)
          .where('actor_name', entry.actor.name === null ? 'is' : '=', entry.actor.name)
          .orderBy('at', 'desc')
          .limit(1),
      )
      .executeTakeFirst();
    if (folded.numUpdatedRows > 0n) return;
  }
  await insertAuditEntry(db, entry);
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

/**
 * Deletes audit rows older than `before`, `batch` rows a statement so no statement holds its locks for long,
 * at most `maxBatches` statements a call (the next pass goes on). Returns how many rows went.
 */
export async function pruneAuditLog(
  db: Db,
  before: Date,
  options: { batch?: number; maxBatches?: number } = {},
): Promise<number> {
  const batch = options.batch ?? 10_000;
  const maxBatches = options.maxBatches ?? 100;
  let deleted = 0;
  for (let i = 0; i < maxBatches; i++) {
    const result = await db
      .deleteFrom('audit_log')
      .where('id', 'in', (eb) =>
        eb.selectFrom('audit_log').select('id').where('at', '<', before).limit(batch),
      )
      .executeTakeFirst();
    const n = Number(result.numDeletedRows);
    deleted += n;
    if (n < batch) break;
  }
  return deleted;
}
