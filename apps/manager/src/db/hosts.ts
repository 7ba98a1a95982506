import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { HostRow } from './schema.js';

export async function insertHost(
  db: Db,
  host: { id: string; name: string; url: string; agentToken: Uint8Array; backends: unknown[]; now: Date },
): Promise<HostRow> {
  return db
    .insertInto('host')
    .values({
      id: host.id,
      name: host.name,
      url: host.url,
      agent_token: host.agentToken,
      backends: JSON.stringify(host.backends),
      status: 'up',
      last_contact_at: host.now,
      created_at: host.now,
      updated_at: host.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function getHost(db: Db, id: string): Promise<HostRow | undefined> {
  return db.selectFrom('host').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listHosts(db: Db, page: { limit: number; cursor?: PageCursor }): Promise<HostRow[]> {
  const query = db.selectFrom('host').selectAll();
  return newestFirstPage(query, 'created_at', 'id', page).execute();
}

/** What the manager learnt from its last call to (or event from) the agent. */
export async function recordHostContact(
  db: Db,
  id: string,
  contact:
    | { ok: true; now: Date; backends?: unknown[]; agentId?: string }
    | { ok: false; now: Date; error: string },
): Promise<void> {
  await db
    .updateTable('host')
    .set(
      contact.ok
        ? {
            status: 'up',
            last_contact_at: contact.now,
            last_error: null,
            updated_at: contact.now,
            ...(contact.backends === undefined ? {} : { backends: JSON.stringify(contact.backends) }),
            ...(contact.agentId === undefined ? {} : { agent_id: contact.agentId }),
          }
        : { status: 'down', last_error: contact.error, updated_at: contact.now },
    )
    .where('id', '=', id)
    .execute();
}

export async function getHostByName(db: Db, name: string): Promise<HostRow | undefined> {
  return db.selectFrom('host').selectAll().where('name', '=', name).executeTakeFirst();
}

/** A supervised local agent's new address after a restart (its port is the system's choice). */
export async function updateHostUrl(db: Db, id: string, url: string, now: Date): Promise<void> {
  await db.updateTable('host').set({ url, updated_at: now }).where('id', '=', id).execute();
}
