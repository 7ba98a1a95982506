import type { AlertKind } from '@stowage/api';
import type { Db } from './conn.js';
import { newestFirstPage, type PageCursor } from './pagination.js';
import type { AlertRow, AlertSeverity, AlertSubject } from './schema-alerts.js';

// The alert table (migration 0005). One open row per (kind, subject_key), kept by a partial unique index,
// so every function here is safe with two replicas: the one whose statement changed the row gets it back.

export interface AlertCondition {
  readonly kind: AlertKind;
  /** The id of what it is about; with the kind, what makes it one condition. */
  readonly subjectKey: string;
  readonly severity: AlertSeverity;
  readonly message: string;
  readonly subject: AlertSubject;
}

export async function openAlerts(db: Db): Promise<AlertRow[]> {
  return db.selectFrom('alert').selectAll().where('resolved_at', 'is', null).execute();
}

/** Opens an alert for a condition, unless one is open: then undefined (the caller touches that one). */
export async function raiseAlert(
  db: Db,
  alert: AlertCondition & { id: string; now: Date },
): Promise<AlertRow | undefined> {
  return db
    .insertInto('alert')
    .values({
      id: alert.id,
      kind: alert.kind,
      subject_key: alert.subjectKey,
      severity: alert.severity,
      message: alert.message,
      subject: JSON.stringify(alert.subject),
      opened_at: alert.now,
      last_seen_at: alert.now,
    })
    .onConflict((oc) => oc.columns(['kind', 'subject_key']).where('resolved_at', 'is', null).doNothing())
    .returningAll()
    .executeTakeFirst();
}

/** The condition still holds: when it was seen, and what it says now (a message may count minutes). */
export async function touchAlert(db: Db, id: string, condition: AlertCondition, now: Date): Promise<void> {
  await db
    .updateTable('alert')
    .set({
      last_seen_at: now,
      severity: condition.severity,
      message: condition.message,
      subject: JSON.stringify(condition.subject),
    })
    .where('id', '=', id)
    .where('resolved_at', 'is', null)
    .execute();
}

/** Resolves an open alert; undefined when it was resolved already (by another replica, say). */
export async function resolveAlert(db: Db, id: string, now: Date): Promise<AlertRow | undefined> {
  return db
    .updateTable('alert')
    .set({ resolved_at: now })
    .where('id', '=', id)
    .where('resolved_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
}

/** Acknowledges an open alert not yet acknowledged; undefined otherwise (the caller reads it to say why). */
export async function acknowledgeAlertRow(
  db: Db,
  id: string,
  by: string,
  now: Date,
): Promise<AlertRow | undefined> {
  return db
    .updateTable('alert')
    .set({ acknowledged_at: now, acknowledged_by: by })
    .where('id', '=', id)
    .where('resolved_at', 'is', null)
    .where('acknowledged_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
}

export async function getAlert(db: Db, id: string): Promise<AlertRow | undefined> {
  return db.selectFrom('alert').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface AlertFilter {
  readonly state: 'open' | 'resolved' | 'all';
  readonly kind?: AlertKind;
}

/** A page of alerts, newest opened first (keyset on opened_at, id). */
export async function listAlertsPage(
  db: Db,
  filter: AlertFilter,
  page: { limit: number; cursor?: PageCursor },
): Promise<AlertRow[]> {
  let query = db.selectFrom('alert').selectAll();
  if (filter.state === 'open') query = query.where('resolved_at', 'is', null);
  if (filter.state === 'resolved') query = query.where('resolved_at', 'is not', null);
  if (filter.kind !== undefined) query = query.where('kind', '=', filter.kind);
  return newestFirstPage(query, 'opened_at', 'id', page).execute();
}
