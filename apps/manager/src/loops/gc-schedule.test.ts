import { describe, expect, it } from 'vitest';
import { gcDue } from './gc-schedule.js';

const target = (over: Partial<Parameters<typeof gcDue>[1]> = {}) => ({
  id: 't',
  enabled: true,
  gcHour: 3,
  timeZone: 'Europe/Berlin',
  since: new Date('2026-03-01T00:00:00Z'),
  lastScheduledRun: null,
  ...over,
});

describe('gcDue', () => {
  it('fires once per daily window at the local hour, and not again in the same window', () => {
    // 03:00 in Berlin in winter is 02:00 UTC.
    expect(
      gcDue(new Date('2026-03-02T01:59:00Z'), target({ lastScheduledRun: new Date('2026-03-01T02:00:10Z') })),
    ).toBe(false);
    expect(
      gcDue(new Date('2026-03-02T02:00:00Z'), target({ lastScheduledRun: new Date('2026-03-01T02:00:10Z') })),
    ).toBe(true);
    expect(
      gcDue(new Date('2026-03-02T02:30:00Z'), target({ lastScheduledRun: new Date('2026-03-02T02:00:10Z') })),
    ).toBe(false);
  });

  it('after downtime runs once, then keeps to the hour (no run per missed day)', () => {
    const last = new Date('2026-03-01T02:00:10Z');
    const now = new Date('2026-03-09T12:00:00Z'); // eight windows missed
    expect(gcDue(now, target({ lastScheduledRun: last }))).toBe(true);
    expect(gcDue(now, target({ lastScheduledRun: now }))).toBe(false);
    expect(gcDue(new Date('2026-03-10T02:00:00Z'), target({ lastScheduledRun: now }))).toBe(true);
  });

  it('follows the zone across DST: 03:00 local is 01:00 UTC in summer, and a skipped 02:00 still runs once', () => {
    expect(
      gcDue(new Date('2026-04-02T01:00:00Z'), target({ lastScheduledRun: new Date('2026-04-01T01:00:05Z') })),
    ).toBe(true);
    expect(
      gcDue(new Date('2026-04-02T00:59:00Z'), target({ lastScheduledRun: new Date('2026-04-01T01:00:05Z') })),
    ).toBe(false);
    // 2026-03-29: Berlin skips 02:00-03:00; a 02:00 GC runs as far past the jump (03:00 CEST = 01:00 UTC).
    const two = target({ gcHour: 2, lastScheduledRun: new Date('2026-03-28T01:00:05Z') });
    expect(gcDue(new Date('2026-03-29T00:59:00Z'), two)).toBe(false);
    expect(gcDue(new Date('2026-03-29T01:00:00Z'), two)).toBe(true);
  });

  it('never fires for a target whose daily GC is off; the first window counts from the target’s creation', () => {
    expect(gcDue(new Date('2026-03-05T12:00:00Z'), target({ enabled: false }))).toBe(false);
    expect(gcDue(new Date('2026-03-01T01:00:00Z'), target())).toBe(false);
    expect(gcDue(new Date('2026-03-01T02:00:00Z'), target())).toBe(true);
  });
});
