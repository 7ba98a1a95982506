import type { AlertCondition } from '../db/alerts.js';
import type { AlertKind, AlertRow, AlertSubject } from '../db/schema-alerts.js';
import { nextFireTime, type Schedule } from './schedule.js';

/**
 * The alerts loop's decisions (pure; loops/alerts.ts owns the I/O). Each rule turns what the database says
 * into the conditions that hold now; `planAlerts` compares them with the open alerts.
 */

const MINUTE_MS = 60_000;

/** An agent is unreachable once its host has been `down` this long without a contact (the loop calls idle
 * agents every `AGENT_HEARTBEAT_MS`, so an idle agent that died is found within about that much more). A
 * constant rather than a setting until someone needs another value. */
export const AGENT_UNREACHABLE_AFTER_MS = 5 * MINUTE_MS;
/** A target is unreachable after this many failed probes in a row (one is a blip; probes are 5 min apart). */
export const TARGET_FAILED_PROBES = 2;

/**
 * How late a scheduled backup may be before its volume is overdue: a quarter of the schedule's period (a
 * daily backup may run six hours), never less than ten minutes (a backup's start lags its slot by the
 * scheduler's tick, and it needs time to run).
 */
export function overdueMarginMs(periodMs: number): number {
  return Math.max(10 * MINUTE_MS, Math.round(periodMs / 4));
}

export interface OverdueCheck {
  /** The first slot after the newest success (or since the schedule began): a backup should have run then. */
  readonly slot: Date;
  readonly periodMs: number;
  /** slot + margin: without a success by then, the volume is overdue. */
  readonly overdueAt: Date;
}

/**
 * When a scheduled volume becomes overdue: the scheduler's own next fire time after its newest successful
 * backup's start (or after `scheduleSince`, if later — a schedule turned on is not overdue for slots before
 * it), plus the margin of the period from that slot to the next. Null when the schedule fires no more.
 */
export function overdueCheck(
  schedule: Schedule,
  lastSuccessAt: Date | null,
  scheduleSince: Date,
): OverdueCheck | null {
  const since =
    lastSuccessAt !== null && lastSuccessAt.getTime() > scheduleSince.getTime()
      ? lastSuccessAt
      : scheduleSince;
  const slot = nextFireTime(schedule, since);
  if (slot === null) return null;
  const following = nextFireTime(schedule, slot);
  const periodMs = following === null ? 0 : following.getTime() - slot.getTime();
  return { slot, periodMs, overdueAt: new Date(slot.getTime() + overdueMarginMs(periodMs)) };
}

/** A host's agent is unreachable: found down, and not heard from for `AGENT_UNREACHABLE_AFTER_MS`. */
export function agentUnreachableFor(
  now: Date,
  host: { status: string; last_contact_at: Date | null; created_at: Date },
): number | null {
  if (host.status !== 'down') return null;
  const silentMs = now.getTime() - (host.last_contact_at ?? host.created_at).getTime();
  return silentMs >= AGENT_UNREACHABLE_AFTER_MS ? silentMs : null;
}

/** An alert subject naming only what is given. */
export function subjectOf(ids: Partial<AlertSubject>): AlertSubject {
  return {
    volume_id: ids.volume_id ?? null,
    host_id: ids.host_id ?? null,
    backup_target_id: ids.backup_target_id ?? null,
    backup_id: ids.backup_id ?? null,
    gc_run_id: ids.gc_run_id ?? null,
    job_id: ids.job_id ?? null,
  };
}

/** What a tick found for one kind: its conditions, and which subjects it looked at (`all`: every one, so an
 * open alert of the kind that is not among the conditions has cleared). */
export interface KindObservation {
  readonly kind: AlertKind;
  readonly conditions: readonly AlertCondition[];
  readonly scope: 'all' | ReadonlySet<string>;
}

export interface AlertPlan {
  readonly raise: readonly AlertCondition[];
  readonly touch: readonly { readonly alert: AlertRow; readonly condition: AlertCondition }[];
  readonly resolve: readonly AlertRow[];
}

/**
 * One tick's changes: a condition without an open alert raises one, a condition with one touches it, and an
 * open alert whose condition was looked at and not found is resolved. Kinds not observed this tick (a rule
 * that failed) keep their alerts as they are.
 */
export function planAlerts(open: readonly AlertRow[], observations: readonly KindObservation[]): AlertPlan {
  const openByKey = new Map(open.map((alert) => [`${alert.kind}\n${alert.subject_key}`, alert]));
  const raise: AlertCondition[] = [];
  const touch: { alert: AlertRow; condition: AlertCondition }[] = [];
  const holding = new Set<string>();
  for (const { conditions } of observations) {
    for (const condition of conditions) {
      const key = `${condition.kind}\n${condition.subjectKey}`;
      if (holding.has(key)) continue;
      holding.add(key);
      const alert = openByKey.get(key);
      if (alert === undefined) raise.push(condition);
      else touch.push({ alert, condition });
    }
  }
  const scopes = new Map(observations.map((o) => [o.kind, o.scope]));
  const resolve = open.filter((alert) => {
    const scope = scopes.get(alert.kind);
    if (scope === undefined || holding.has(`${alert.kind}\n${alert.subject_key}`)) return false;
    return scope === 'all' || scope.has(alert.subject_key);
  });
  return { raise, touch, resolve };
}

/** Webhook retries: 30 s after the first failure, doubling to at most an hour. */
export function retryDelayMs(failedAttempts: number): number {
  return Math.min(30_000 * 2 ** Math.max(0, failedAttempts - 1), 3_600_000);
}

/** A delivery is given up on once it has been failing this long (recorded `failed` with its last error). */
export const DELIVERY_GIVE_UP_MS = 24 * 3_600_000;

/** What becomes of a delivery after an attempt that did not succeed. */
export function afterFailedAttempt(
  now: Date,
  delivery: { created_at: Date; attempts: number },
): { state: 'pending' | 'failed'; nextAttemptAt: Date } {
  const attempts = delivery.attempts + 1;
  const next = new Date(now.getTime() + retryDelayMs(attempts));
  if (next.getTime() - delivery.created_at.getTime() > DELIVERY_GIVE_UP_MS) {
    return { state: 'failed', nextAttemptAt: now };
  }
  return { state: 'pending', nextAttemptAt: next };
}

/** Minutes, in words, for messages. */
export function minutesInWords(ms: number): string {
  const minutes = Math.floor(ms / MINUTE_MS);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.floor(hours / 24)} days`;
}
