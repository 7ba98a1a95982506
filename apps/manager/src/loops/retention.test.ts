import { describe, expect, it } from 'vitest';
import {
  formatKeepWithin,
  isoWeek,
  parseKeepWithin,
  parseRetentionPolicy,
  planRetention,
  type RetentionBackup,
  type RetentionPolicy,
  RetentionPolicyError,
  wallTimeToInstant,
} from './retention.js';

// Times are written with their offsets, so that the cases do not lean on the module's own zone arithmetic.
const farFuture = new Date('2100-01-01T00:00:00Z');

function completed(...times: string[]): RetentionBackup[] {
  return times.map((time) => ({ id: time, time: new Date(time), state: 'completed' as const }));
}

/** The plan as `time → reasons` for kept backups and the list of removed times (ids are the times here). */
function plan(backups: RetentionBackup[], policy: RetentionPolicy, timeZone = 'UTC', now = farFuture) {
  const result = planRetention(backups, policy, { timeZone, now });
  return {
    keep: Object.fromEntries(result.keep.map((entry) => [entry.id, entry.reasons])),
    remove: result.remove.map((entry) => entry.id),
    ignored: result.ignored,
  };
}

describe('planRetention: rules', () => {
  it('keep_last keeps the n newest, whatever order they come in', () => {
    const backups = completed(
      '2026-05-01T10:00:00Z',
      '2026-05-03T10:00:00Z',
      '2026-05-02T10:00:00Z',
      '2026-05-04T10:00:00Z',
    );
    expect(plan(backups, { keep_last: 2 })).toEqual({
      keep: { '2026-05-04T10:00:00Z': ['last snapshot'], '2026-05-03T10:00:00Z': ['last snapshot'] },
      remove: ['2026-05-02T10:00:00Z', '2026-05-01T10:00:00Z'],
      ignored: [],
    });
  });

  it('keeps and removes newest first', () => {
    const backups = completed('2026-05-01T10:00:00Z', '2026-05-03T10:00:00Z', '2026-05-02T10:00:00Z');
    const result = planRetention(backups, { keep_last: 1 }, { timeZone: 'UTC', now: farFuture });
    expect(result.remove.map((entry) => entry.id)).toEqual(['2026-05-02T10:00:00Z', '2026-05-01T10:00:00Z']);
  });

  it('a running or failed backup is never counted and never pruned', () => {
    const backups: RetentionBackup[] = [
      { id: 'running', time: new Date('2026-05-05T10:00:00Z'), state: 'running' },
      { id: 'failed', time: new Date('2026-05-04T10:00:00Z'), state: 'failed' },
      { id: 'new', time: new Date('2026-05-03T10:00:00Z'), state: 'completed' },
      { id: 'old', time: new Date('2026-05-01T10:00:00Z'), state: 'completed' },
      { id: 'old-failed', time: new Date('2026-01-01T10:00:00Z'), state: 'failed' },
    ];
    const result = planRetention(
      backups,
      { keep_last: 1, keep_within: '1d' },
      { timeZone: 'UTC', now: farFuture },
    );
    expect(result).toEqual({
      // keep_within is measured from the newest completed backup, not from the failed or running one.
      keep: [{ id: 'new', reasons: ['within 1d', 'last snapshot'] }],
      remove: [{ id: 'old' }],
      ignored: [
        { id: 'running', state: 'running' },
        { id: 'failed', state: 'failed' },
        { id: 'old-failed', state: 'failed' },
      ],
    });
  });

  it('nothing completed: nothing to plan', () => {
    const backups: RetentionBackup[] = [
      { id: 'r', time: new Date('2026-05-05T10:00:00Z'), state: 'running' },
    ];
    expect(planRetention(backups, { keep_last: 1 }, { timeZone: 'UTC', now: farFuture })).toEqual({
      keep: [],
      remove: [],
      ignored: [{ id: 'r', state: 'running' }],
    });
  });

  it('keep_daily: the newest backup of each of the n newest days that have one', () => {
    const backups = completed(
      '2026-05-10T23:00:00Z',
      '2026-05-10T08:00:00Z',
      '2026-05-07T12:00:00Z',
      '2026-05-07T06:00:00Z',
      '2026-05-01T00:00:00Z',
      '2026-04-30T23:59:59Z',
    );
    expect(plan(backups, { keep_daily: 3 })).toEqual({
      keep: {
        '2026-05-10T23:00:00Z': ['daily snapshot'],
        '2026-05-07T12:00:00Z': ['daily snapshot'],
        '2026-05-01T00:00:00Z': ['daily snapshot'],
      },
      remove: ['2026-05-10T08:00:00Z', '2026-05-07T06:00:00Z', '2026-04-30T23:59:59Z'],
      ignored: [],
    });
  });

  it('a count above the number of buckets keeps one per bucket', () => {
    const backups = completed('2026-06-02T10:00:00Z', '2026-03-02T10:00:00Z', '2026-03-01T10:00:00Z');
    expect(plan(backups, { keep_monthly: 12 })).toEqual({
      keep: { '2026-06-02T10:00:00Z': ['monthly snapshot'], '2026-03-02T10:00:00Z': ['monthly snapshot'] },
      remove: ['2026-03-01T10:00:00Z'],
      ignored: [],
    });
  });

  it('rules are independent: a backup kept by any rule is kept, and every rule that keeps it is named', () => {
    const backups = completed(
      '2026-12-31T23:00:00Z',
      '2026-12-31T22:30:00Z',
      '2026-12-30T10:00:00Z',
      '2026-11-15T10:00:00Z',
      '2025-06-01T10:00:00Z',
    );
    const policy = {
      keep_within: '2h3d',
      keep_last: 1,
      keep_hourly: 2,
      keep_daily: 2,
      keep_weekly: 2,
      keep_monthly: 2,
      keep_yearly: 2,
    };
    expect(plan(backups, policy)).toEqual({
      keep: {
        '2026-12-31T23:00:00Z': [
          'within 3d2h',
          'last snapshot',
          'hourly snapshot',
          'daily snapshot',
          'weekly snapshot',
          'monthly snapshot',
          'yearly snapshot',
        ],
        '2026-12-31T22:30:00Z': ['within 3d2h', 'hourly snapshot'],
        // 2026-12-30 is in the same ISO week (2026-W53) as 12-31: no weekly for it.
        '2026-12-30T10:00:00Z': ['within 3d2h', 'daily snapshot'],
        '2026-11-15T10:00:00Z': ['weekly snapshot', 'monthly snapshot'],
        '2025-06-01T10:00:00Z': ['yearly snapshot'],
      },
      remove: [],
      ignored: [],
    });
  });

  it('a rule stops counting once its n are spent, even if later buckets differ', () => {
    const backups = completed('2026-05-03T10:00:00Z', '2026-05-02T10:00:00Z', '2026-05-01T10:00:00Z');
    expect(plan(backups, { keep_daily: 1, keep_last: 2 }).keep).toEqual({
      '2026-05-03T10:00:00Z': ['last snapshot', 'daily snapshot'],
      '2026-05-02T10:00:00Z': ['last snapshot'],
    });
  });

  it('equal times: ordered by id, so the plan does not depend on the input order', () => {
    const time = new Date('2026-05-01T10:00:00Z');
    const backups: RetentionBackup[] = ['c', 'a', 'b'].map((id) => ({ id, time, state: 'completed' }));
    const forward = planRetention(backups, { keep_daily: 1 }, { timeZone: 'UTC', now: farFuture });
    const backward = planRetention(
      [...backups].reverse(),
      { keep_daily: 1 },
      { timeZone: 'UTC', now: farFuture },
    );
    expect(forward).toEqual(backward);
    expect(forward.keep).toEqual([{ id: 'a', reasons: ['daily snapshot'] }]);
    expect(forward.remove).toEqual([{ id: 'b' }, { id: 'c' }]);
  });
});

describe('planRetention: wall-clock buckets in a time zone', () => {
  it('daily buckets are the zone’s days, not UTC’s', () => {
    // 2026-05-01 23:30 in New York is 2026-05-02 03:30 UTC.
    const backups = completed('2026-05-01T23:30:00-04:00', '2026-05-01T19:00:00-04:00');
    expect(plan(backups, { keep_daily: 5 }, 'America/New_York').remove).toEqual([
      '2026-05-01T19:00:00-04:00',
    ]);
    expect(plan(backups, { keep_daily: 5 }, 'UTC').remove).toEqual([]);
  });

  it('fall-back (Berlin): the repeated 02:00 hour is one hourly bucket', () => {
    const backups = completed(
      '2026-10-25T03:10:00+01:00',
      '2026-10-25T02:50:00+01:00', // second 02:xx, CET
      '2026-10-25T02:10:00+01:00',
      '2026-10-25T02:50:00+02:00', // first 02:xx, CEST
      '2026-10-25T02:10:00+02:00',
      '2026-10-25T01:50:00+02:00',
    );
    expect(plan(backups, { keep_hourly: 3 }, 'Europe/Berlin')).toEqual({
      keep: {
        '2026-10-25T03:10:00+01:00': ['hourly snapshot'],
        '2026-10-25T02:50:00+01:00': ['hourly snapshot'],
        '2026-10-25T01:50:00+02:00': ['hourly snapshot'],
      },
      remove: ['2026-10-25T02:10:00+01:00', '2026-10-25T02:50:00+02:00', '2026-10-25T02:10:00+02:00'],
      ignored: [],
    });
  });

  it('fall-back (Lord Howe, 30-minute DST): 01:30–02:00 repeats, and the 01:00 hour bucket spans 90 minutes', () => {
    // 2026-04-05: 02:00 LHDT (+11:00) becomes 01:30 LHST (+10:30).
    const backups = completed(
      '2026-04-05T02:05:00+10:30',
      '2026-04-05T01:45:00+10:30',
      '2026-04-05T01:55:00+11:00',
      '2026-04-05T01:05:00+11:00',
      '2026-04-05T00:55:00+11:00',
    );
    expect(plan(backups, { keep_hourly: 10 }, 'Australia/Lord_Howe').remove).toEqual([
      '2026-04-05T01:55:00+11:00',
      '2026-04-05T01:05:00+11:00',
    ]);
  });

  it('spring-forward (New York): the 23-hour day is one daily bucket', () => {
    // 2026-03-08: 02:00 EST becomes 03:00 EDT.
    const backups = completed(
      '2026-03-08T23:30:00-04:00',
      '2026-03-08T03:00:00-04:00',
      '2026-03-08T01:59:59-05:00',
      '2026-03-08T00:00:00-05:00',
      '2026-03-07T23:59:59-05:00',
    );
    expect(plan(backups, { keep_daily: 5, keep_hourly: 2 }, 'America/New_York')).toEqual({
      keep: {
        '2026-03-08T23:30:00-04:00': ['hourly snapshot', 'daily snapshot'],
        // 03:00 EDT follows 01:59:59 EST directly: different hourly buckets, one second apart.
        '2026-03-08T03:00:00-04:00': ['hourly snapshot'],
        '2026-03-07T23:59:59-05:00': ['daily snapshot'],
      },
      remove: ['2026-03-08T01:59:59-05:00', '2026-03-08T00:00:00-05:00'],
      ignored: [],
    });
  });

  it('ISO weeks: 2026-12-28 … 2027-01-03 is 2026-W53, 2027-01-04 starts 2027-W01', () => {
    const backups = completed(
      '2027-01-04T00:00:00Z',
      '2027-01-03T23:59:59Z',
      '2027-01-01T12:00:00Z',
      '2026-12-28T00:00:00Z',
      '2026-12-27T23:59:59Z',
    );
    expect(plan(backups, { keep_weekly: 5 })).toEqual({
      keep: {
        '2027-01-04T00:00:00Z': ['weekly snapshot'],
        '2027-01-03T23:59:59Z': ['weekly snapshot'],
        '2026-12-27T23:59:59Z': ['weekly snapshot'],
      },
      remove: ['2027-01-01T12:00:00Z', '2026-12-28T00:00:00Z'],
      ignored: [],
    });
    // A yearly bucket is the calendar year, not the ISO week-year.
    expect(Object.keys(plan(backups, { keep_yearly: 5 }).keep)).toEqual([
      '2027-01-04T00:00:00Z',
      '2026-12-28T00:00:00Z',
    ]);
  });

  it('ISO weeks in a zone: Sunday 23:30 in Berlin is Sunday, not the next Monday as in UTC… and vice versa', () => {
    // 2026-12-27 (Sun) 23:30 UTC is 2026-12-28 (Mon) 00:30 in Berlin.
    const backups = completed('2026-12-28T10:00:00Z', '2026-12-27T23:30:00Z');
    expect(plan(backups, { keep_weekly: 5 }, 'UTC').remove).toEqual([]);
    expect(plan(backups, { keep_weekly: 5 }, 'Europe/Berlin').remove).toEqual(['2026-12-27T23:30:00Z']);
  });

  it('isoWeek matches ISO 8601 at year boundaries', () => {
    expect(isoWeek(2020, 12, 31)).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(2021, 1, 3)).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(2021, 1, 4)).toEqual({ year: 2021, week: 1 });
    expect(isoWeek(2019, 12, 30)).toEqual({ year: 2020, week: 1 });
    expect(isoWeek(2026, 12, 28)).toEqual({ year: 2026, week: 53 });
    expect(isoWeek(2027, 1, 3)).toEqual({ year: 2026, week: 53 });
    expect(isoWeek(2027, 1, 4)).toEqual({ year: 2027, week: 1 });
    expect(isoWeek(2028, 2, 29)).toEqual({ year: 2028, week: 9 });
  });

  it('month ends in a zone: 00:30 on 1 February in Berlin is February', () => {
    const backups = completed('2026-02-01T00:30:00+01:00', '2026-01-31T23:30:00+01:00');
    expect(plan(backups, { keep_monthly: 5 }, 'Europe/Berlin').remove).toEqual([]);
    expect(plan(backups, { keep_monthly: 5 }, 'UTC').remove).toEqual(['2026-01-31T23:30:00+01:00']);
  });

  it('leap day 2028-02-29 is its own day in February', () => {
    const backups = completed(
      '2028-03-01T00:00:00Z',
      '2028-02-29T23:00:00Z',
      '2028-02-29T01:00:00Z',
      '2028-02-28T23:00:00Z',
    );
    expect(plan(backups, { keep_daily: 10, keep_monthly: 10 }).keep).toEqual({
      '2028-03-01T00:00:00Z': ['daily snapshot', 'monthly snapshot'],
      '2028-02-29T23:00:00Z': ['daily snapshot', 'monthly snapshot'],
      '2028-02-28T23:00:00Z': ['daily snapshot'],
    });
  });
});

describe('planRetention: keep_within', () => {
  it('is measured back from the newest backup, not from now, and the cutoff itself is not kept', () => {
    const backups = completed(
      '2020-05-10T12:00:00Z',
      '2020-05-09T12:00:01Z',
      '2020-05-09T12:00:00Z',
      '2020-05-08T12:00:00Z',
    );
    expect(plan(backups, { keep_within: '1d' }, 'UTC', new Date('2026-01-01T00:00:00Z'))).toEqual({
      keep: { '2020-05-10T12:00:00Z': ['within 1d'], '2020-05-09T12:00:01Z': ['within 1d'] },
      remove: ['2020-05-09T12:00:00Z', '2020-05-08T12:00:00Z'],
      ignored: [],
    });
  });

  it('months overflow as Go’s AddDate does: 2026-03-31 minus 1m is "2026-02-31", i.e. 2026-03-03', () => {
    const backups = completed(
      '2026-03-31T12:00:00Z',
      '2026-03-03T12:00:01Z',
      '2026-03-03T12:00:00Z',
      '2026-03-02T12:00:00Z',
      '2026-02-28T12:00:00Z',
    );
    expect(plan(backups, { keep_within: '1m' })).toEqual({
      keep: { '2026-03-31T12:00:00Z': ['within 1m'], '2026-03-03T12:00:01Z': ['within 1m'] },
      remove: ['2026-03-03T12:00:00Z', '2026-03-02T12:00:00Z', '2026-02-28T12:00:00Z'],
      ignored: [],
    });
  });

  it('in a leap year 2028-03-31 minus 1m is 2028-03-02; 2028-02-29 minus 1y is 2027-03-01', () => {
    expect(
      plan(completed('2028-03-31T12:00:00Z', '2028-03-02T12:00:01Z', '2028-03-02T11:59:59Z'), {
        keep_within: '1m',
      }).remove,
    ).toEqual(['2028-03-02T11:59:59Z']);
    expect(
      plan(completed('2028-02-29T12:00:00Z', '2027-03-01T12:00:01Z', '2027-02-28T13:00:00Z'), {
        keep_within: '1y',
      }).remove,
    ).toEqual(['2027-02-28T13:00:00Z']);
  });

  it('days are calendar days on the wall clock (25 hours across fall-back), hours are absolute', () => {
    // Newest 2026-10-25 12:00 CET (11:00 UTC). 1d back: 2026-10-24 12:00 CEST (10:00 UTC), 25 hours.
    // 24h back: 2026-10-24 11:00 UTC.
    const backups = completed('2026-10-25T11:00:00Z', '2026-10-24T10:30:00Z');
    expect(plan(backups, { keep_within: '1d' }, 'Europe/Berlin').remove).toEqual([]);
    expect(plan(backups, { keep_within: '24h' }, 'Europe/Berlin').remove).toEqual(['2026-10-24T10:30:00Z']);
    expect(plan(backups, { keep_within: '1d' }, 'UTC').remove).toEqual(['2026-10-24T10:30:00Z']);
  });

  it('a cutoff in a spring-forward gap resolves as Go’s time.Date: forward in Berlin, backward in New York', () => {
    // Newest 2026-03-30 02:30 CEST; 1d back is 2026-03-29 02:30, which does not exist: Go makes it 03:30 CEST.
    const berlin = completed(
      '2026-03-30T02:30:00+02:00',
      '2026-03-29T03:40:00+02:00',
      '2026-03-29T03:20:00+02:00',
      '2026-03-29T01:40:00+01:00',
    );
    expect(plan(berlin, { keep_within: '1d' }, 'Europe/Berlin').remove).toEqual([
      '2026-03-29T03:20:00+02:00',
      '2026-03-29T01:40:00+01:00',
    ]);
    // Newest 2026-03-09 02:30 EDT; 1d back is 2026-03-08 02:30, which does not exist: Go makes it 01:30 EST.
    const newYork = completed(
      '2026-03-09T02:30:00-04:00',
      '2026-03-08T03:20:00-04:00',
      '2026-03-08T01:40:00-05:00',
      '2026-03-08T01:20:00-05:00',
    );
    expect(plan(newYork, { keep_within: '1d' }, 'America/New_York').remove).toEqual([
      '2026-03-08T01:20:00-05:00',
    ]);
  });

  it('a cutoff in a fall-back overlap: the later instant in Berlin, the earlier in New York', () => {
    // Berlin: 2026-10-25 02:30 happens twice; Go picks 02:30 CET (01:30 UTC).
    const berlin = completed(
      '2026-10-26T02:30:00+01:00',
      '2026-10-25T02:40:00+02:00',
      '2026-10-25T02:20:00+01:00',
    );
    expect(plan(berlin, { keep_within: '1d' }, 'Europe/Berlin').remove).toEqual([
      '2026-10-25T02:20:00+01:00',
      '2026-10-25T02:40:00+02:00',
    ]);
    // New York: 2026-11-01 01:30 happens twice; Go picks 01:30 EDT (05:30 UTC).
    const newYork = completed(
      '2026-11-02T01:30:00-05:00',
      '2026-11-01T01:40:00-04:00',
      '2026-11-01T01:20:00-04:00',
    );
    expect(plan(newYork, { keep_within: '1d' }, 'America/New_York').remove).toEqual([
      '2026-11-01T01:20:00-04:00',
    ]);
  });

  it('wallTimeToInstant resolves gaps and overlaps as Go does', () => {
    const wall = (year: number, month: number, day: number, hour: number, minute: number) => ({
      year,
      month,
      day,
      hour,
      minute,
      second: 0,
    });
    expect(wallTimeToInstant('Europe/Berlin', wall(2026, 3, 29, 2, 30)).toISOString()).toBe(
      '2026-03-29T01:30:00.000Z',
    );
    expect(wallTimeToInstant('Europe/Berlin', wall(2026, 10, 25, 2, 30)).toISOString()).toBe(
      '2026-10-25T01:30:00.000Z',
    );
    expect(wallTimeToInstant('America/New_York', wall(2026, 3, 8, 2, 30)).toISOString()).toBe(
      '2026-03-08T06:30:00.000Z',
    );
    expect(wallTimeToInstant('America/New_York', wall(2026, 11, 1, 1, 30)).toISOString()).toBe(
      '2026-11-01T05:30:00.000Z',
    );
    expect(wallTimeToInstant('Europe/London', wall(2026, 10, 25, 1, 30)).toISOString()).toBe(
      '2026-10-25T01:30:00.000Z',
    );
    expect(wallTimeToInstant('Australia/Lord_Howe', wall(2026, 4, 5, 1, 45)).toISOString()).toBe(
      '2026-04-04T15:15:00.000Z',
    );
    expect(wallTimeToInstant('UTC', wall(2026, 2, 31, 0, 0)).toISOString()).toBe('2026-03-03T00:00:00.000Z');
  });

  it('a backup in the future never serves as the newest; if all are, keep_within keeps them all', () => {
    const backups = completed('2026-06-10T00:00:00Z', '2026-06-01T12:00:00Z', '2026-06-01T00:00:00Z');
    const now = new Date('2026-06-02T00:00:00Z');
    expect(plan(backups, { keep_within: '6h' }, 'UTC', now)).toEqual({
      keep: { '2026-06-10T00:00:00Z': ['within 6h'], '2026-06-01T12:00:00Z': ['within 6h'] },
      remove: ['2026-06-01T00:00:00Z'],
      ignored: [],
    });
    expect(plan(backups, { keep_within: '6h' }, 'UTC', new Date('2026-05-01T00:00:00Z')).remove).toEqual([]);
  });

  it('is reported in restic’s normal form', () => {
    const backups = completed('2026-06-10T00:00:00Z');
    expect(plan(backups, { keep_within: ' 4h3d2m1y ' }).keep).toEqual({
      '2026-06-10T00:00:00Z': ['within 1y2m3d4h'],
    });
    expect(plan(backups, { keep_within: '0y36h' }).keep).toEqual({ '2026-06-10T00:00:00Z': ['within 36h'] });
  });

  it('of zero length is off, beside another rule', () => {
    const backups = completed('2026-06-10T00:00:00Z', '2026-06-09T23:00:00Z');
    expect(plan(backups, { keep_within: '0d', keep_last: 1 }).keep).toEqual({
      '2026-06-10T00:00:00Z': ['last snapshot'],
    });
  });
});

describe('retention policies', () => {
  it('parseKeepWithin and formatKeepWithin', () => {
    expect(parseKeepWithin('1y2m3d4h')).toEqual({ years: 1, months: 2, days: 3, hours: 4 });
    expect(parseKeepWithin('36h')).toEqual({ years: 0, months: 0, days: 0, hours: 36 });
    expect(formatKeepWithin(parseKeepWithin('2h3d'))).toBe('3d2h');
    expect(formatKeepWithin(parseKeepWithin('0y0m'))).toBe('');
  });

  it.each([
    ['', /empty/],
    ['1w', /unknown unit "w"/],
    ['1d1d', /unit d given twice/],
    ['-1d', /expected a number/],
    ['1.5d', /unknown unit "\."/],
    ['d', /expected a number/],
    ['12', /no unit after 12/],
    ['100001h', /more than 100000/],
  ])('refuses keep_within %j', (text, message) => {
    expect(() => parseKeepWithin(text)).toThrow(RetentionPolicyError);
    expect(() => parseKeepWithin(text)).toThrow(message);
  });

  it.each([
    [{}, /keeps nothing/],
    [{ keep_last: 0, keep_daily: 0 }, /keeps nothing/],
    [{ keep_within: '0d' }, /keeps nothing/],
    [{ keep_last: -1 }, /at least 0/],
    [{ keep_daily: 1.5 }, /whole number/],
    [{ keep_daily: '3' }, /whole number/],
    [{ keep_within: 3 }, /string/],
    [{ keep_within_daily: '3d' }, /unknown retention rule "keep_within_daily"/],
    [null, /object/],
    [[1], /object/],
  ])('refuses the policy %j', (policy, message) => {
    expect(() => parseRetentionPolicy(policy)).toThrow(RetentionPolicyError);
    expect(() => parseRetentionPolicy(policy)).toThrow(message);
  });

  it('planRetention refuses what parseRetentionPolicy refuses', () => {
    expect(() =>
      planRetention(completed('2026-06-10T00:00:00Z'), {}, { timeZone: 'UTC', now: farFuture }),
    ).toThrow(RetentionPolicyError);
  });

  it('takes null as an absent rule', () => {
    expect(parseRetentionPolicy({ keep_last: 3, keep_daily: null, keep_within: null })).toEqual({
      keep_last: 3,
    });
  });

  it('an unknown time zone is a RangeError', () => {
    expect(() =>
      planRetention(
        completed('2026-06-10T00:00:00Z'),
        { keep_last: 1 },
        { timeZone: 'Mars/Olympus', now: farFuture },
      ),
    ).toThrow(RangeError);
  });
});
