import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { beforeEach, expect, it } from 'vitest';
import { subjectOf } from '../loops/alert-rules.js';
import { describeOnDatabases, describeOnPostgres } from '../testing/databases.js';
import {
  type AlertCondition,
  acknowledgeAlertRow,
  listAlertsPage,
  openAlerts,
  raiseAlert,
  resolveAlert,
  touchAlert,
} from './alerts.js';
import { openDatabase } from './database.js';
import { decodeCursor, toPage } from './pagination.js';
import { claimDueDeliveries, enqueueDeliveries, insertWebhook, recordAttempt } from './webhooks.js';

const T0 = new Date('2026-06-01T12:00:00Z');
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);

const condition = (subjectKey: string, message = 'the last backup failed'): AlertCondition => ({
  kind: 'backup_failed',
  subjectKey,
  severity: 'warning',
  message,
  subject: subjectOf({ volume_id: subjectKey }),
});

async function webhook(db: Parameters<typeof insertWebhook>[0]) {
  return insertWebhook(db, {
    id: randomUUID(),
    url: 'http://127.0.0.1:9/hook',
    description: null,
    events: ['alert.opened'],
    secret: new Uint8Array(48),
    now: T0,
  });
}

describeOnDatabases('the alert and webhook repositories', (subject) => {
  const db = () => subject().database.db;
  beforeEach(async () => {
    await sql`TRUNCATE alert, webhook, webhook_delivery, target_health CASCADE`.execute(db());
  });

  it('keeps one open alert per condition; a resolved one that recurs opens a new row', async () => {
    const volume = randomUUID();
    const first = await raiseAlert(db(), { ...condition(volume), id: randomUUID(), now: at(0) });
    expect(first).toMatchObject({ kind: 'backup_failed', subject_key: volume, resolved_at: null });
    expect(await raiseAlert(db(), { ...condition(volume), id: randomUUID(), now: at(1) })).toBeUndefined();
    await touchAlert(db(), first!.id, condition(volume, 'failed again'), at(2));
    expect(await openAlerts(db())).toMatchObject([
      { id: first!.id, message: 'failed again', last_seen_at: at(2), opened_at: at(0) },
    ]);
    expect(await resolveAlert(db(), first!.id, at(3))).toMatchObject({ resolved_at: at(3) });
    expect(await resolveAlert(db(), first!.id, at(4))).toBeUndefined();
    const again = await raiseAlert(db(), { ...condition(volume), id: randomUUID(), now: at(5) });
    expect(again?.id).not.toBe(first!.id);
    expect((await openAlerts(db())).map((a) => a.id)).toEqual([again!.id]);
  });

  it('acknowledges an open alert once, and never a resolved one', async () => {
    const alert = await raiseAlert(db(), { ...condition(randomUUID()), id: randomUUID(), now: at(0) });
    expect(await acknowledgeAlertRow(db(), alert!.id, 'token ops', at(1))).toMatchObject({
      acknowledged_by: 'token ops',
      acknowledged_at: at(1),
    });
    expect(await acknowledgeAlertRow(db(), alert!.id, 'token other', at(2))).toBeUndefined();
    const other = await raiseAlert(db(), { ...condition(randomUUID()), id: randomUUID(), now: at(0) });
    await resolveAlert(db(), other!.id, at(1));
    expect(await acknowledgeAlertRow(db(), other!.id, 'token ops', at(2))).toBeUndefined();
  });

  it('lists alerts newest first by state and kind, a page at a time', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const row = await raiseAlert(db(), { ...condition(randomUUID()), id: randomUUID(), now: at(i) });
      ids.push(row!.id);
    }
    await resolveAlert(db(), ids[1]!, at(10));
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const rows = await listAlertsPage(
        db(),
        { state: 'open' },
        { limit: 2, ...(cursor ? { cursor: decodeCursor(cursor) } : {}) },
      );
      const page = toPage(
        rows,
        2,
        (r) => ({ at: r.opened_at, id: r.id }),
        (r) => r.id,
      );
      seen.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(seen).toEqual([ids[4], ids[3], ids[2], ids[0]]);
    expect((await listAlertsPage(db(), { state: 'resolved' }, { limit: 10 })).map((r) => r.id)).toEqual([
      ids[1],
    ]);
    expect(await listAlertsPage(db(), { state: 'all', kind: 'gc_failed' }, { limit: 10 })).toEqual([]);
    expect(await listAlertsPage(db(), { state: 'all', kind: 'backup_failed' }, { limit: 10 })).toHaveLength(
      5,
    );
  });

  it('claims due deliveries once until the claim runs out, and records attempts', async () => {
    const hook = await webhook(db());
    await enqueueDeliveries(
      db(),
      [1, 2, 3].map((n) => ({
        id: randomUUID(),
        webhookId: hook.id,
        eventId: randomUUID(),
        eventType: 'alert.opened',
        body: `{"n":${n}}`,
      })),
      at(0),
    );
    const claimed = await claimDueDeliveries(db(), at(0), at(5), 2);
    expect(claimed.map((d) => d.body)).toEqual(['{"n":1}', '{"n":2}']);
    expect(claimed[0]).toMatchObject({ url: hook.url, attempts: 0 });
    expect((await claimDueDeliveries(db(), at(1), at(6), 10)).map((d) => d.body)).toEqual(['{"n":3}']);
    expect(await claimDueDeliveries(db(), at(2), at(7), 10)).toEqual([]);
    await recordAttempt(
      db(),
      { id: claimed[0]!.id, webhookId: hook.id },
      { at: at(1), status: 200, error: null, state: 'delivered', nextAttemptAt: at(1) },
    );
    // The second claim of the first batch ran out: it is due again; the delivered one never is.
    expect((await claimDueDeliveries(db(), at(5), at(10), 10)).map((d) => d.body)).toEqual(['{"n":2}']);
  });
});

describeOnPostgres('delivery claims across replicas', (subject) => {
  it('gives two pools claiming at once disjoint deliveries', async () => {
    const db = subject().database.db;
    await sql`TRUNCATE alert, webhook, webhook_delivery, target_health CASCADE`.execute(db);
    const hook = await webhook(db);
    await enqueueDeliveries(
      db,
      Array.from({ length: 40 }, (_, n) => ({
        id: randomUUID(),
        webhookId: hook.id,
        eventId: randomUUID(),
        eventType: 'alert.opened',
        body: `{"n":${n}}`,
      })),
      at(0),
    );
    const other = await openDatabase({ url: subject().url! });
    try {
      const [a, b] = await Promise.all([
        claimDueDeliveries(db, at(1), at(5), 25),
        claimDueDeliveries(other.db, at(1), at(5), 25),
      ]);
      const ids = [...a, ...b].map((d) => d.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toHaveLength(40);
    } finally {
      await other.close();
    }
  });
});
