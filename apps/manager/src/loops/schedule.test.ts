import { CronExpression, CronExpressionParser } from 'cron-parser';
import { describe, expect, it } from 'vitest';
import {
  decideSchedule,
  MAX_FIRE_TIMES,
  nextFireTime,
  nextFireTimes,
  parseSchedule,
  planSchedule,
  type ScheduledVolume,
  ScheduleError,
} from './schedule.js';

const at = (iso: string) => new Date(iso);
const iso = (dates: readonly Date[]) => dates.map((d) => d.toISOString());
const fires = (cron: string, zone: string, after: string, count: number) =>
  iso(nextFireTimes(parseSchedule(cron, zone), at(after), count));

function refused(cron: string, zone = 'UTC'): ScheduleError {
  try {
    parseSchedule(cron, zone);
  } catch (error) {
    if (error instanceof ScheduleError) return error;
    throw error;
  }
  throw new Error(`"${cron}" in ${zone} was accepted`);
}

function volume(overrides: Partial<ScheduledVolume> = {}): ScheduledVolume {
  return {
    id: 'v1',
    cron: '30 2 * * *',
    timeZone: 'UTC',
    enabled: true,
    scheduleSince: at('2026-01-01T00:00:00Z'),
    lastSuccessAt: null,
    lastAttemptAt: null,
    running: false,
    ...overrides,
  };
}

/**
 * The scheduler's shell on a fake clock: it wakes every minute (7 s past it, as a real timer drifts), finishes
 * the backup whose time is up, asks `planSchedule` and starts a backup of a due volume, stamped with the tick's
 * time. Returns the starts.
 */
function simulate(
  start: Partial<ScheduledVolume>,
  from: string,
  to: string,
  options: { minutes?: number; fail?: boolean; down?: [string, string] } = {},
): string[] {
  let state = volume({ scheduleSince: at(from), ...start });
  let endsAt = 0;
  let startedAt: Date | null = null;
  const starts: Date[] = [];
  const down = options.down?.map((t) => at(t).getTime());
  for (let t = at(from).getTime() + 7_000; t < at(to).getTime(); t += 60_000) {
    if (down && t >= down[0]! && t < down[1]!) continue;
    const now = new Date(t);
    if (state.running && t >= endsAt) {
      state = { ...state, running: false, lastSuccessAt: options.fail ? state.lastSuccessAt : startedAt };
    }
    const { due } = planSchedule(now, [state]);
    if (due.includes(state.id)) {
      expect(state.running).toBe(false);
      starts.push(now);
      startedAt = now;
      endsAt = t + (options.minutes ?? 20) * 60_000;
      state = { ...state, running: true, lastAttemptAt: now };
    }
  }
  return iso(starts);
}

describe('parseSchedule', () => {
  it('accepts five fields, names, ranges, steps, lists, L, # and the macros', () => {
    for (const cron of [
      '30 2 * * *',
      ' 0\t3  * *  * ',
      '*/15 9-17 * * mon-fri',
      '0 3 * JAN-MAR,dec Sun',
      '10-50/20 */6 1,15 * ?',
      '0 0 L * *',
      '0 0 * * 5L',
      '0 4 * * 1#2',
      '0 0 * * 7',
      '@yearly',
      '@annually',
      '@monthly',
      '@weekly',
      '@daily',
      '@hourly',
      '@minutely',
      '@weekdays',
      '@weekends',
    ]) {
      expect(parseSchedule(cron, 'Europe/Berlin').cron).toBe(cron.trim());
    }
    expect(parseSchedule('@hourly', 'UTC').everyHour).toBe(true);
    expect(parseSchedule('*/10 0-23 * * *', 'UTC').everyHour).toBe(true);
    expect(parseSchedule('0 */2 * * *', 'UTC').everyHour).toBe(false);
  });

  it("refuses what the parser refuses, in cron-parser's words", () => {
    expect(refused('61 * * * *')).toMatchObject({
      field: 'cron',
      reason: 'Constraint error, got value 61 expected range 0-59',
    });
    expect(refused('0 0 30 2 *').reason).toBe('Invalid explicit day of month definition');
    expect(refused('*/0 * * * *').reason).toMatch(/cannot repeat at every 0 time/);
    expect(refused('0 0 * * fri-sun').reason).toMatch(/Invalid range: 5-0/);
    expect(refused('0 3 * * monday').reason).toMatch(/cannot resolve alias/);
    expect(refused('61 * * * *').message).toBe(
      'invalid cron expression: Constraint error, got value 61 expected range 0-59',
    );
  });

  it('refuses seconds, the wrong number of fields, unknown macros and H', () => {
    expect(refused('0 30 2 * * *').reason).toMatch(/seconds are not supported/);
    expect(refused('@secondly').reason).toMatch(/one minute/);
    // cron-parser would read these as every minute or fill in the missing fields.
    expect(refused('').reason).toBe('expected 5 fields (minute hour day-of-month month day-of-week), got 0');
    expect(refused('   ').reason).toMatch(/got 0/);
    expect(refused('* * * *').reason).toMatch(/got 4/);
    expect(refused('0 0 0 0 * * *').reason).toMatch(/got 7/);
    expect(refused('@DAILY').reason).toMatch(/unknown macro "@DAILY", expected one of @yearly/);
    expect(refused('@reboot').reason).toMatch(/unknown macro/);
    expect(refused('H 3 * * *').reason).toMatch(/^H /);
    expect(refused('0 H(0-3)/2 * * *').reason).toMatch(/^H /);
    expect(refused('0,H/5 3 * * *').reason).toMatch(/^H /);
  });

  it('refuses a time zone that is not an exact IANA name, and accepts UTC', () => {
    for (const zone of ['Europe/Atlantis', 'utc', 'europe/berlin', '+02:00', 'CEST', '']) {
      expect(refused('0 3 * * *', zone)).toMatchObject({ field: 'timezone' });
    }
    expect(refused('0 3 * * *', 'Mars/Olympus').message).toBe(
      'invalid time zone: "Mars/Olympus" is not an IANA time zone such as Europe/Paris or UTC',
    );
    expect(parseSchedule('0 3 * * *', 'UTC').timeZone).toBe('UTC');
    expect(parseSchedule('0 3 * * *', 'Australia/Lord_Howe').timeZone).toBe('Australia/Lord_Howe');
  });
});

describe('nextFireTimes', () => {
  it('lists count fire times strictly after `after`, earliest first', () => {
    expect(fires('30 2 * * *', 'UTC', '2026-06-01T00:00:00Z', 3)).toEqual([
      '2026-06-01T02:30:00.000Z',
      '2026-06-02T02:30:00.000Z',
      '2026-06-03T02:30:00.000Z',
    ]);
    // A fire time equal to `after` is not after it.
    expect(fires('30 2 * * *', 'UTC', '2026-06-01T02:30:00Z', 1)).toEqual(['2026-06-02T02:30:00.000Z']);
    expect(fires('30 2 * * *', 'UTC', '2026-06-01T02:29:59.999Z', 1)).toEqual(['2026-06-01T02:30:00.000Z']);
    expect(fires('30 2 * * *', 'UTC', '2026-06-01T02:30:00.001Z', 1)).toEqual(['2026-06-02T02:30:00.000Z']);
    expect(fires('30 2 * * *', 'UTC', '2026-06-01T00:00:00Z', 0)).toEqual([]);
    const schedule = parseSchedule('30 2 * * *', 'UTC');
    expect(nextFireTime(schedule, at('2026-06-01T02:30:00Z'))?.toISOString()).toBe(
      '2026-06-02T02:30:00.000Z',
    );
  });

  it(`lists up to ${MAX_FIRE_TIMES} and refuses more, fewer than none or fractions`, () => {
    const minutes = nextFireTimes(parseSchedule('* * * * *', 'UTC'), at('2026-06-01T00:00:30Z'), 100);
    expect(minutes).toHaveLength(100);
    expect(minutes[0]?.toISOString()).toBe('2026-06-01T00:01:00.000Z');
    expect(minutes[99]?.toISOString()).toBe('2026-06-01T01:40:00.000Z');
    expect(minutes.every((d, i) => i === 0 || d.getTime() - minutes[i - 1]!.getTime() === 60_000)).toBe(true);
    const schedule = parseSchedule('@daily', 'UTC');
    for (const count of [101, -1, 1.5, Number.NaN]) {
      expect(() => nextFireTimes(schedule, at('2026-06-01T00:00:00Z'), count)).toThrow(RangeError);
    }
    expect(() => nextFireTimes(schedule, new Date(Number.NaN), 1)).toThrow(RangeError);
  });

  it('reads the schedule on the wall clock of its zone', () => {
    expect(fires('@daily', 'Europe/Berlin', '2026-06-01T12:00:00Z', 1)).toEqual(['2026-06-01T22:00:00.000Z']);
    expect(fires('0 9 * * mon-fri', 'America/New_York', '2026-06-05T14:00:00Z', 2)).toEqual([
      '2026-06-08T13:00:00.000Z', // Friday 09:00 EDT has passed; Monday
      '2026-06-09T13:00:00.000Z',
    ]);
    // Both day fields restricted: either matches (the 13th, or a Friday).
    expect(fires('0 0 13 * 5', 'UTC', '2026-01-01T00:00:00Z', 3)).toEqual([
      '2026-01-02T00:00:00.000Z',
      '2026-01-09T00:00:00.000Z',
      '2026-01-13T00:00:00.000Z',
    ]);
  });

  it('skips the months without a 31st, and L is the last day of each', () => {
    expect(fires('0 0 31 * *', 'UTC', '2026-01-01T00:00:00Z', 8)).toEqual([
      '2026-01-31T00:00:00.000Z',
      '2026-03-31T00:00:00.000Z',
      '2026-05-31T00:00:00.000Z',
      '2026-07-31T00:00:00.000Z',
      '2026-08-31T00:00:00.000Z',
      '2026-10-31T00:00:00.000Z',
      '2026-12-31T00:00:00.000Z',
      '2027-01-31T00:00:00.000Z',
    ]);
    expect(fires('0 0 L * *', 'UTC', '2026-01-01T00:00:00Z', 3)).toEqual([
      '2026-01-31T00:00:00.000Z',
      '2026-02-28T00:00:00.000Z',
      '2026-03-31T00:00:00.000Z',
    ]);
    expect(fires('0 0 L 2 *', 'UTC', '2027-03-01T00:00:00Z', 1)).toEqual(['2028-02-29T00:00:00.000Z']);
  });

  it('finds leap days, 2100 not being one', () => {
    expect(fires('0 0 29 2 *', 'UTC', '2026-01-01T00:00:00Z', 3)).toEqual([
      '2028-02-29T00:00:00.000Z',
      '2032-02-29T00:00:00.000Z',
      '2036-02-29T00:00:00.000Z',
    ]);
    expect(fires('0 0 29 2 *', 'UTC', '2097-01-01T00:00:00Z', 1)).toEqual(['2104-02-29T00:00:00.000Z']);
    expect(fires('0 0 29 2 *', 'Europe/Berlin', '2026-01-01T00:00:00Z', 1)).toEqual([
      '2028-02-28T23:00:00.000Z',
    ]);
  });
});

// Europe/Berlin, 2026: clocks jump 02:00 CET -> 03:00 CEST on 29 March (01:00Z) and fall back 03:00 CEST ->
// 02:00 CET on 25 October (01:00Z), so 02:30 is skipped in March and happens twice in October.
describe('DST, Europe/Berlin', () => {
  it('fires a 02:30 job at 03:30 CEST on the spring-forward day: never a day without its backup', () => {
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-03-27T12:00:00Z', 3)).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:30:00.000Z', // 03:30 CEST, an hour past the jump as 02:30 is an hour past 01:30
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
    // Wherever the search starts before it, the same answer (cron-parser's differs, see below).
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-03-29T01:10:00Z', 1)).toEqual([
      '2026-03-29T01:30:00.000Z',
    ]);
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-03-29T01:30:00Z', 1)).toEqual([
      '2026-03-30T00:30:00.000Z',
    ]);
    expect(
      simulate({ cron: '30 2 * * *', timeZone: 'Europe/Berlin' }, '2026-03-28T12:00Z', '2026-03-30T12:00Z'),
    ).toEqual(['2026-03-29T01:30:07.000Z', '2026-03-30T00:30:07.000Z']);
  });

  it('fires a 02:30 job once on the fall-back day, at the first 02:30', () => {
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-10-24T12:00:00Z', 2)).toEqual([
      '2026-10-25T00:30:00.000Z', // 02:30 CEST; 02:30 CET (01:30Z) does not fire
      '2026-10-26T01:30:00.000Z',
    ]);
    // Not even when the anchor (a backup by hand at 02:10 CET) lies between the two.
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-10-25T01:10:00Z', 1)).toEqual([
      '2026-10-26T01:30:00.000Z',
    ]);
    expect(
      simulate({ cron: '30 2 * * *', timeZone: 'Europe/Berlin' }, '2026-10-24T12:00Z', '2026-10-26T12:00Z'),
    ).toEqual(['2026-10-25T00:30:07.000Z', '2026-10-26T01:30:07.000Z']);
  });

  it('keeps an hourly job hourly in real time: 23 runs on the short day, 25 on the long one', () => {
    const spring = fires('0 * * * *', 'Europe/Berlin', '2026-03-28T22:59:00Z', 24);
    expect(spring[0]).toBe('2026-03-28T23:00:00.000Z'); // 00:00 CET on the 29th
    expect(spring[22]).toBe('2026-03-29T21:00:00.000Z'); // 23:00 CEST
    expect(spring[23]).toBe('2026-03-29T22:00:00.000Z'); // 00:00 CEST on the 30th
    expect(spring.every((t, i) => i === 0 || Date.parse(t) - Date.parse(spring[i - 1]!) === 3600_000)).toBe(
      true,
    );

    const fall = fires('0 * * * *', 'Europe/Berlin', '2026-10-24T21:59:00Z', 26);
    expect(fall[0]).toBe('2026-10-24T22:00:00.000Z'); // 00:00 CEST on the 25th
    expect(fall.slice(2, 4)).toEqual(['2026-10-25T00:00:00.000Z', '2026-10-25T01:00:00.000Z']); // 02:00 twice
    expect(fall[25]).toBe('2026-10-25T23:00:00.000Z'); // 00:00 CET on the 26th
    expect(fall.every((t, i) => i === 0 || Date.parse(t) - Date.parse(fall[i - 1]!) === 3600_000)).toBe(true);

    expect(fires('*/20 * * * *', 'Europe/Berlin', '2026-10-25T00:30:00Z', 5)).toEqual([
      '2026-10-25T00:40:00.000Z', // 02:40 CEST
      '2026-10-25T01:00:00.000Z', // 02:00 CET
      '2026-10-25T01:20:00.000Z',
      '2026-10-25T01:40:00.000Z',
      '2026-10-25T02:00:00.000Z', // 03:00 CET
    ]);
    expect(fires('30 * * * *', 'Europe/Berlin', '2026-03-29T00:00:00Z', 3)).toEqual([
      '2026-03-29T00:30:00.000Z', // 01:30 CET
      '2026-03-29T01:30:00.000Z', // 02:30 is 03:30 CEST, which fires anyway: once
      '2026-03-29T02:30:00.000Z',
    ]);
  });

  it('fires a schedule of some hours once per wall-clock time', () => {
    // 02:00 happens twice; a job for 01:00, 02:00 and 03:00 runs three times.
    expect(fires('0 1-3 * * *', 'Europe/Berlin', '2026-10-24T12:00:00Z', 4)).toEqual([
      '2026-10-24T23:00:00.000Z',
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T02:00:00.000Z',
      '2026-10-26T00:00:00.000Z',
    ]);
    // 02:00 does not happen; it and 03:00 are the same instant, one run.
    expect(fires('0 1-3 * * *', 'Europe/Berlin', '2026-03-28T12:00:00Z', 3)).toEqual([
      '2026-03-29T00:00:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-29T23:00:00.000Z',
    ]);
  });

  it('is why we map wall-clock times ourselves: cron-parser alone depends on where it starts', () => {
    const raw = (cron: string, zone: string, from: string) =>
      CronExpressionParser.parse(cron, { tz: zone, currentDate: at(from) })
        .next()
        .toISOString();
    // From 03:10 CEST it has forgotten that 02:30 moved to 03:30 and goes to the next day...
    expect(raw('30 2 * * *', 'Europe/Berlin', '2026-03-29T01:10:00Z')).toBe('2026-03-30T00:30:00.000Z');
    // ...and from 02:10 CET it fires the second 02:30 of the fall-back day.
    expect(raw('30 2 * * *', 'Europe/Berlin', '2026-10-25T01:10:00Z')).toBe('2026-10-25T01:30:00.000Z');
    // On Lord Howe's half-hour jump it skips the day: 5 October 02:15 comes first.
    expect(raw('15 2 * * *', 'Australia/Lord_Howe', '2026-10-03T00:00:00Z')).toBe('2026-10-04T15:15:00.000Z');
  });
});

describe('DST elsewhere', () => {
  // America/New_York, 2026: 02:00 EST -> 03:00 EDT on 8 March (07:00Z); 02:00 EDT -> 01:00 EST on
  // 1 November (06:00Z). There the repeated half hour is 01:30, not 02:30.
  it('America/New_York: 02:30 on the spring-forward day, 01:30 on the fall-back day', () => {
    expect(fires('30 2 * * *', 'America/New_York', '2026-03-07T00:00:00Z', 3)).toEqual([
      '2026-03-07T07:30:00.000Z', // 02:30 EST
      '2026-03-08T07:30:00.000Z', // 03:30 EDT
      '2026-03-09T06:30:00.000Z', // 02:30 EDT
    ]);
    expect(fires('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 2)).toEqual([
      '2026-11-01T05:30:00.000Z', // 01:30 EDT; 01:30 EST (06:30Z) does not fire
      '2026-11-02T06:30:00.000Z',
    ]);
    expect(fires('30 2 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 1)).toEqual([
      '2026-11-01T07:30:00.000Z', // 02:30 EST, once: it is not repeated here
    ]);
  });

  // Australia/Lord_Howe, 2026: 02:00 (+10:30) -> 02:30 (+11) on 4 October (15:30Z on the 3rd); 02:00 (+11)
  // -> 01:30 (+10:30) on 5 April (15:00Z on the 4th). Its changes are half an hour.
  it('Australia/Lord_Howe: a skipped 02:15 fires at 02:45, a repeated 01:45 once', () => {
    expect(fires('15 2 * * *', 'Australia/Lord_Howe', '2026-10-02T00:00:00Z', 3)).toEqual([
      '2026-10-02T15:45:00.000Z', // 3 October 02:15 +10:30
      '2026-10-03T15:45:00.000Z', // 4 October 02:45 +11
      '2026-10-04T15:15:00.000Z', // 5 October 02:15 +11
    ]);
    expect(fires('45 1 * * *', 'Australia/Lord_Howe', '2026-04-03T00:00:00Z', 3)).toEqual([
      '2026-04-03T14:45:00.000Z',
      '2026-04-04T14:45:00.000Z', // 5 April, the first 01:45 (+11); not the second at 15:15Z
      '2026-04-05T15:15:00.000Z',
    ]);
    expect(fires('*/15 * * * *', 'Australia/Lord_Howe', '2026-04-04T14:20:00Z', 5)).toEqual([
      '2026-04-04T14:30:00.000Z', // 01:30 +11
      '2026-04-04T14:45:00.000Z',
      '2026-04-04T15:00:00.000Z', // 01:30 +10:30
      '2026-04-04T15:15:00.000Z',
      '2026-04-04T15:30:00.000Z', // 02:00 +10:30
    ]);
    expect(
      simulate(
        { cron: '15 2 * * *', timeZone: 'Australia/Lord_Howe' },
        '2026-10-03T00:00Z',
        '2026-10-05T00:00Z',
      ),
    ).toEqual(['2026-10-03T15:45:07.000Z', '2026-10-04T15:15:07.000Z']);
  });

  it('orders fire times that a half-hour gap moves past later ones', () => {
    // 02:20 lies in the gap and fires at 02:50, after 02:35.
    expect(fires('20,35 2 * * *', 'Australia/Lord_Howe', '2026-10-03T12:00:00Z', 3)).toEqual([
      '2026-10-03T15:35:00.000Z',
      '2026-10-03T15:50:00.000Z',
      '2026-10-04T15:20:00.000Z',
    ]);
    expect(fires('20,35 2 * * *', 'Australia/Lord_Howe', '2026-10-03T15:36:00Z', 1)).toEqual([
      '2026-10-03T15:50:00.000Z',
    ]);
    expect(fires('20,35 2 * * *', 'Australia/Lord_Howe', '2026-10-03T12:00:00Z', 1)).toEqual([
      '2026-10-03T15:35:00.000Z',
    ]);
  });
});

describe('nextFireTimes against a minute-by-minute scan of the real clock', () => {
  /**
   * The rules stated a second way: walk real time a minute at a time and read the zone's clock. A reading that
   * matches fires, unless the clock showed it before (a repeated hour) and the schedule is not hourly; when
   * the clock jumps, each matching reading it skipped fires as far past the jump as it lies past the last
   * reading before it.
   */
  function scan(cron: string, zone: string, from: string, to: string): string[] {
    const schedule = parseSchedule(cron, zone);
    const expression = CronExpression.fieldsToExpression(schedule.fields, { tz: 'UTC', currentDate: 0 });
    const matches = (reading: number) => expression.includesDate(new Date(reading));
    const format = new Intl.DateTimeFormat('en-CA', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    });
    const read = (instant: number) => Date.parse(`${format.format(instant).replace(', ', 'T')}:00Z`);
    const out = new Set<number>();
    for (let t = Date.parse(from) + 60_000; t <= Date.parse(to); t += 60_000) {
      const reading = read(t);
      const previous = read(t - 60_000) + 60_000;
      for (let skipped = previous; skipped < reading; skipped += 60_000) {
        if (matches(skipped)) out.add(t + (skipped - previous));
      }
      const seenBefore = [15, 30, 45, 60, 90, 120, 180].some((m) => read(t - m * 60_000) === reading);
      if (matches(reading) && (schedule.everyHour || !seenBefore)) out.add(t);
    }
    return iso([...out].sort((a, b) => a - b).map((ms) => new Date(ms)));
  }

  const cases: [string, string, string][] = [
    ['30 2 * * *', 'Europe/Berlin', '2026-03-28T13:00:00Z'],
    ['30 2 * * *', 'Europe/Berlin', '2026-10-24T13:00:00Z'],
    ['*/20 1-3 * * *', 'Europe/Berlin', '2026-03-28T13:00:00Z'],
    ['*/20 1-3 * * *', 'Europe/Berlin', '2026-10-24T13:00:00Z'],
    ['0 * * * *', 'Europe/Berlin', '2026-10-24T13:00:00Z'],
    ['15,45 2 * * sun', 'Europe/Berlin', '2026-03-28T13:00:00Z'],
    ['30 1 * * *', 'America/New_York', '2026-10-31T18:00:00Z'],
    ['10,50 2 * * *', 'America/New_York', '2026-03-07T18:00:00Z'],
    ['20,35 2 * * *', 'Australia/Lord_Howe', '2026-10-03T03:00:00Z'],
    ['*/15 1-2 * * *', 'Australia/Lord_Howe', '2026-10-03T03:00:00Z'],
    ['*/15 1-2 * * *', 'Australia/Lord_Howe', '2026-04-04T03:00:00Z'],
    ['*/10 * * * *', 'Australia/Lord_Howe', '2026-04-04T03:00:00Z'],
  ];
  it.each(cases)('%s in %s from %s', (cron, zone, from) => {
    const to = new Date(Date.parse(from) + 24 * 3600_000).toISOString();
    const expected = scan(cron, zone, from, to);
    expect(expected.length).toBeGreaterThan(0);
    expect(fires(cron, zone, from, Math.min(expected.length, MAX_FIRE_TIMES))).toEqual(
      expected.slice(0, MAX_FIRE_TIMES),
    );
  });
});

describe('decideSchedule and planSchedule', () => {
  const now = at('2026-06-10T12:00:00Z');

  it('is due once the slot after the last backup has passed, and says when the next one is', () => {
    const done = volume({
      lastSuccessAt: at('2026-06-10T02:30:04Z'),
      lastAttemptAt: at('2026-06-10T02:30:04Z'),
    });
    expect(decideSchedule(now, done)).toEqual({
      id: 'v1',
      status: 'waiting',
      nextFireAt: at('2026-06-11T02:30:00Z'),
    });
    const yesterday = volume({ lastSuccessAt: at('2026-06-09T02:30:04Z') });
    expect(decideSchedule(now, yesterday)).toEqual({
      id: 'v1',
      status: 'due',
      nextFireAt: at('2026-06-10T02:30:00Z'),
    });
    expect(decideSchedule(at('2026-06-10T02:30:00Z'), yesterday).status).toBe('due');
    expect(decideSchedule(at('2026-06-10T02:29:59.999Z'), yesterday).status).toBe('waiting');
  });

  it('never fires while a backup of the volume runs, nor when the schedule is off or missing', () => {
    const overdue = volume({ lastSuccessAt: at('2026-06-01T02:30:00Z') });
    expect(decideSchedule(now, { ...overdue, running: true })).toEqual({
      id: 'v1',
      status: 'running',
      nextFireAt: at('2026-06-02T02:30:00Z'),
    });
    const running = { ...overdue, running: true, lastAttemptAt: at('2026-06-10T11:00:00Z') };
    expect(decideSchedule(now, running).nextFireAt).toEqual(at('2026-06-11T02:30:00Z'));
    expect(decideSchedule(now, { ...overdue, enabled: false })).toEqual({
      id: 'v1',
      status: 'disabled',
      nextFireAt: null,
    });
    expect(decideSchedule(now, { ...overdue, cron: null })).toEqual({
      id: 'v1',
      status: 'unscheduled',
      nextFireAt: null,
    });
  });

  it('does not fire when a schedule is set, unless one of its slots passes', () => {
    const setAfter = volume({ scheduleSince: at('2026-06-10T02:31:00Z') });
    expect(decideSchedule(now, setAfter)).toMatchObject({
      status: 'waiting',
      nextFireAt: at('2026-06-11T02:30:00Z'),
    });
    const setBefore = volume({ scheduleSince: at('2026-06-10T02:29:00Z') });
    expect(decideSchedule(now, setBefore)).toMatchObject({
      status: 'due',
      nextFireAt: at('2026-06-10T02:30:00Z'),
    });
    // A changed schedule starts from the change, not from the last backup (which would make 04:00 of the
    // 9th due at once).
    const changed = volume({
      cron: '0 4 * * *',
      lastSuccessAt: at('2026-06-09T02:30:00Z'),
      scheduleSince: at('2026-06-10T11:00:00Z'),
    });
    expect(decideSchedule(now, changed)).toMatchObject({
      status: 'waiting',
      nextFireAt: at('2026-06-11T04:00:00Z'),
    });
  });

  it('runs once after three days down, then keeps to the schedule', () => {
    expect(
      simulate(
        { lastSuccessAt: at('2026-06-01T02:30:07Z'), lastAttemptAt: at('2026-06-01T02:30:07Z') },
        '2026-06-01T02:31Z',
        '2026-06-05T03:00Z',
        { down: ['2026-06-01T03:00Z', '2026-06-04T10:00Z'] },
      ),
    ).toEqual(['2026-06-04T10:00:07.000Z', '2026-06-05T02:30:07.000Z']);
  });

  it('retries a failed backup at the next slot, not at the next tick', () => {
    expect(
      simulate({ cron: '0 */6 * * *' }, '2026-05-31T23:59Z', '2026-06-02T00:00Z', { fail: true }),
    ).toEqual([
      '2026-06-01T00:00:07.000Z',
      '2026-06-01T06:00:07.000Z',
      '2026-06-01T12:00:07.000Z',
      '2026-06-01T18:00:07.000Z',
    ]);
    const failed = volume({
      lastSuccessAt: at('2026-06-09T02:30:00Z'),
      lastAttemptAt: at('2026-06-10T02:30:05Z'),
    });
    expect(decideSchedule(now, failed)).toMatchObject({
      status: 'waiting',
      nextFireAt: at('2026-06-11T02:30:00Z'),
    });
  });

  it('follows a backup longer than the interval with one more, never two at once', () => {
    // Hourly, 90 minutes each: the slots missed while one runs collapse into the next.
    expect(
      simulate({ cron: '0 * * * *' }, '2026-05-31T23:59Z', '2026-06-01T06:00Z', { minutes: 90 }),
    ).toEqual([
      '2026-06-01T00:00:07.000Z',
      '2026-06-01T01:30:07.000Z',
      '2026-06-01T03:00:07.000Z',
      '2026-06-01T04:30:07.000Z',
    ]);
  });

  it('reports a stored schedule that no longer parses, and plans the others', () => {
    const volumes = [
      volume({ id: 'bad', cron: '61 * * * *' }),
      volume({ id: 'zone', timeZone: 'Mars/Olympus' }),
      volume({ id: 'a' }),
      volume({ id: 'b', lastSuccessAt: at('2026-06-10T03:00:00Z') }),
      volume({ id: 'c', enabled: false }),
      volume({ id: 'd', running: true }),
    ];
    const plan = planSchedule(now, volumes);
    expect(plan.due).toEqual(['a']);
    expect(plan.decisions.map((d) => [d.id, d.status])).toEqual([
      ['bad', 'invalid'],
      ['zone', 'invalid'],
      ['a', 'due'],
      ['b', 'waiting'],
      ['c', 'disabled'],
      ['d', 'running'],
    ]);
    expect(plan.decisions[0]?.error).toMatchObject({ field: 'cron', reason: expect.stringMatching(/61/) });
    expect(plan.decisions[1]?.error).toMatchObject({ field: 'timezone' });
    expect(decideSchedule(now, volumes[0]!)).toMatchObject({ status: 'invalid', nextFireAt: null });
  });
});
