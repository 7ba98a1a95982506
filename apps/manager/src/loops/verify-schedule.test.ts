import { describe, expect, it } from 'vitest';
import { planVerifies, type VerifyScheduledBackup, verifyDueAt } from './verify-schedule.js';

const DAY = 86_400_000;
const T0 = new Date('2026-03-01T00:00:00Z');
const at = (days: number) => new Date(T0.getTime() + days * DAY);

function backup(id: string, fields: Partial<VerifyScheduledBackup> = {}): VerifyScheduledBackup {
  return {
    backupId: id,
    hostId: 'host-a',
    everyDays: 7,
    samplePercent: 100,
    verifiedAt: null,
    finishedAt: T0,
    verifyStartedAt: null,
    verifying: false,
    ...fields,
  };
}

const ids = (plan: ReturnType<typeof planVerifies>) => plan.start.map((s) => s.backupId);

describe('the verify schedule', () => {
  it('is due a period after the last verify, or after the backup was written if never verified', () => {
    expect(verifyDueAt(backup('a'))).toEqual(at(7));
    expect(verifyDueAt(backup('a', { verifiedAt: at(3) }))).toEqual(at(10));
    expect(verifyDueAt(backup('a', { everyDays: 30, verifiedAt: at(1) }))).toEqual(at(31));
    // Across Europe's spring-forward (2026-03-29): 24 h days, not wall-clock ones.
    expect(verifyDueAt(backup('a', { verifiedAt: new Date('2026-03-28T12:00:00Z') }))).toEqual(
      new Date('2026-04-04T12:00:00Z'),
    );
  });

  it('picks on a fake clock exactly the backups not verified within the period', () => {
    const backups = [
      backup('never-old', { finishedAt: at(-8) }),
      backup('never-new', { finishedAt: at(-1) }),
      backup('verified-long-ago', { verifiedAt: at(-7), hostId: 'host-b' }),
      backup('verified-recently', { verifiedAt: at(-6.99) }),
      backup('monthly', { everyDays: 30, verifiedAt: at(-20), hostId: 'host-c' }),
    ];
    const plan = planVerifies(T0, backups, new Map(), { perHost: 10 });
    expect(ids(plan)).toEqual(['never-old', 'verified-long-ago']);
    // A minute later the recent one is still not due; 15 min later it is.
    expect(ids(planVerifies(new Date(T0.getTime() + 60_000), backups, new Map(), { perHost: 10 }))).toEqual([
      'never-old',
      'verified-long-ago',
    ]);
    expect(
      ids(planVerifies(new Date(T0.getTime() + 15 * 60_000), backups, new Map(), { perHost: 10 })),
    ).toEqual(['never-old', 'verified-long-ago', 'verified-recently']);
    // Nearly ten days on, the monthly one still waits; the new one is due.
    expect(ids(planVerifies(at(9.99), backups, new Map(), { perHost: 10 }))).toEqual([
      'never-old',
      'verified-long-ago',
      'verified-recently',
      'never-new',
    ]);
    expect(ids(planVerifies(at(10), backups, new Map(), { perHost: 10 }))).toContain('monthly');
    expect(plan.start[0]).toEqual({ backupId: 'never-old', hostId: 'host-a', samplePercent: 100 });
  });

  it('starts the most overdue first, one per host at a time, and no more than the tick allows', () => {
    const backups = [
      backup('a1', { finishedAt: at(-9) }),
      backup('a2', { finishedAt: at(-20) }),
      backup('b1', { finishedAt: at(-8), hostId: 'host-b', samplePercent: 5 }),
      backup('c1', { finishedAt: at(-10), hostId: 'host-c' }),
    ];
    const plan = planVerifies(T0, backups, new Map([['host-c', 1]]));
    expect(ids(plan)).toEqual(['a2', 'b1']);
    expect(plan.start[1]).toEqual({ backupId: 'b1', hostId: 'host-b', samplePercent: 5 });
    expect(plan.deferred).toBe(2);
    expect(ids(planVerifies(T0, backups, new Map(), { perHost: 2, perTick: 3 }))).toEqual(['a2', 'c1', 'a1']);
  });

  it('never starts a second verify of a backup, nor retries a failed start before the retry delay', () => {
    const backups = [
      backup('running', { verifying: true, finishedAt: at(-30) }),
      backup('failed-start', { finishedAt: at(-10), verifyStartedAt: at(-0.1), hostId: 'host-b' }),
      backup('failed-long-ago', { finishedAt: at(-9), verifyStartedAt: at(-1), hostId: 'host-c' }),
      // Started before its last completed verify: that one completed, so the period counts from it.
      backup('done', { verifyStartedAt: at(-8.1), verifiedAt: at(-8), hostId: 'host-d' }),
    ];
    // Most overdue first: failed-start was due at -3 days, failed-long-ago at -2, done at -1.
    expect(ids(planVerifies(T0, backups, new Map()))).toEqual(['failed-long-ago', 'done']);
    expect(ids(planVerifies(T0, backups, new Map(), { retryAfterMs: 60_000 }))).toEqual([
      'failed-start',
      'failed-long-ago',
      'done',
    ]);
  });

  it('reports due backups without a host apart instead of starting them', () => {
    const plan = planVerifies(T0, [backup('orphan', { hostId: null, finishedAt: at(-8) })], new Map());
    expect(plan).toEqual({ start: [], deferred: 0, noHost: ['orphan'], restingHosts: [] });
  });

  it('leaves a host found unreachable alone for a while, then tries it with one verify', () => {
    const backups = [
      backup('a1', { finishedAt: at(-9) }),
      backup('a2', { finishedAt: at(-8) }),
      backup('b1', { finishedAt: at(-8), hostId: 'host-b' }),
    ];
    const down = new Map([['host-a', new Date(T0.getTime() - 5 * 60_000)]]);
    const resting = planVerifies(T0, backups, new Map(), {}, down);
    expect(ids(resting)).toEqual(['b1']);
    expect(resting.restingHosts).toEqual(['host-a']);
    const later = new Date(T0.getTime() + 10 * 60_000);
    expect(ids(planVerifies(later, backups, new Map(), {}, down))).toEqual(['a1', 'b1']);
    expect(ids(planVerifies(later, backups, new Map(), { downHostRestMs: 3_600_000 }, down))).toEqual(['b1']);
  });
});
