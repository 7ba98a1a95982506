/**
 * Backup schedules: when a volume's scheduled backup fires. Pure functions of `(now, state)`; the loop that
 * wakes once a minute, reads the volumes and starts the backups is a thin shell around `planSchedule`.
 *
 * **Dialect.** Five fields, `minute hour day-of-month month day-of-week`, as cron-parser reads them: lists
 * (`1,15`), ranges (`1-5`), steps (`*\/15`, `10-50/20`), names (`jan`-`dec`, `sun`-`sat`, any case), `?` for
 * `*`, `L` (last day of the month, or `5L` the last Friday), `#` (`1#2`, the second Monday), and the macros
 * `@yearly` `@annually` `@monthly` `@weekly` `@daily` `@hourly` `@minutely` `@weekdays` `@weekends`
 * (lower case). Day-of-week 0 and 7 are Sunday; ranges do not wrap (`fri-sun` is refused, write `5-7`).
 * When both day fields are restricted a day matches either (Vixie cron's rule): `0 0 13 * 5` fires on
 * every 13th and every Friday. A month without the day named is skipped (`0 0 31 * *` fires seven times a
 * year; `L` means the last day). Refused: a sixth (seconds) field and `@secondly` (the scheduler wakes once
 * a minute), `H` (cron-parser draws it at random on every parse, so the fire time would wander), and a day
 * no month has (`0 0 30 2 *`). The time zone is an exact IANA name this runtime knows, or `UTC` (the API's
 * `isIanaTimeZone`).
 *
 * **Wall-clock times.** A schedule names times on the wall clock of its zone, and each fires once:
 * - A time the clocks skip (spring forward: 02:30 in Europe/Berlin on the last Sunday of March) fires as far
 *   past the jump as it would have been past the last time before it: 02:30 becomes 03:30 CEST (RFC 5545's
 *   rule, Temporal's `compatible`). A daily backup is never lost to a DST change; on Australia/Lord_Howe,
 *   whose clocks jump half an hour, 02:15 becomes 02:45.
 * - A time the clocks repeat (fall back: 02:30 in Berlin on the last Sunday of October) fires at its first
 *   occurrence only. A schedule that fires every hour (hour field `*` or `0-23`) keeps its rhythm through the
 *   repeated hour instead and fires in both passes (as cronie does), so `0 * * * *` runs 25 times that day
 *   and `*\/15 * * * *` every 15 minutes of real time; `0 1-3 * * *` runs three times.
 * We map wall-clock times to instants ourselves (cron-parser enumerates them in UTC, where nothing is skipped
 * or repeated): cron-parser's own zone handling silently drops a daily run on a half-hour DST change, and
 * its answer on a DST day depends on where the search started (see the tests).
 *
 * **When a volume is due.** Its *anchor* is the latest of: the start of its last successful backup, the
 * start of its last backup attempt whatever the outcome (a failed one, or the one running), and the time its
 * schedule was set (`scheduleSince`: when cron, time zone or enabled last changed; a volume's creation time
 * if never). Its next fire time is the first fire time strictly after the anchor, and it is due once that
 * has passed, unless its schedule is disabled or a backup of it is running. So:
 * - setting or changing a schedule never fires at once: the first slot after the change does;
 * - a failed backup is retried at the next slot, not every minute;
 * - after downtime, however many slots were missed, one backup runs, and the slot after *its* start is the
 *   next: missed slots collapse into one, then the schedule resumes. The same holds for a backup that runs
 *   longer than the interval: the one that follows starts when it ends;
 * - a backup started by hand counts: a slot after it still fires.
 * The shell must stamp a scheduled backup's start with a clock reading no earlier than the `now` that made
 * it due (taking `ctx.now()` after the decision does), or the slot would fire again. Two at once for one
 * volume are prevented by the database (one running backup per volume), not here.
 */
import { isIanaTimeZone } from '@stowage/api';
import { CronExpression, CronExpressionParser, type CronFieldCollection } from 'cron-parser';

/** The most fire times `nextFireTimes` lists (the preview's `?count=` bound). */
export const MAX_FIRE_TIMES = 100;

const MACROS: ReadonlySet<string> = new Set([
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@hourly',
  '@minutely',
  '@weekdays',
  '@weekends',
]);

/** A cron expression and time zone that passed `parseSchedule`. Immutable; share it freely. */
export interface Schedule {
  /** The expression as given, trimmed. */
  readonly cron: string;
  readonly timeZone: string;
  /** Fires in every hour of the day, so in both passes of a repeated hour (see the rules above). */
  readonly everyHour: boolean;
  /** cron-parser's fields, read in UTC as wall-clock readings of `timeZone`. */
  readonly fields: CronFieldCollection;
}

/** Why a schedule was refused. `reason` is cron-parser's own words where it found the fault; the API answers
 * 400 with `{ field, reason }` as details. */
export class ScheduleError extends Error {
  override readonly name = 'ScheduleError';

  constructor(
    readonly field: 'cron' | 'timezone',
    readonly reason: string,
  ) {
    super(field === 'cron' ? `invalid cron expression: ${reason}` : `invalid time zone: ${reason}`);
  }
}

/** Checks a cron expression and a time zone; throws `ScheduleError`. */
export function parseSchedule(cron: string, timeZone: string): Schedule {
  if (!isIanaTimeZone(timeZone)) {
    throw new ScheduleError('timezone', `"${timeZone}" is not an IANA time zone such as Europe/Paris or UTC`);
  }
  const expression = cron.trim();
  if (expression.startsWith('@')) {
    if (expression === '@secondly') {
      throw new ScheduleError('cron', '@secondly: schedules have a resolution of one minute');
    }
    if (!MACROS.has(expression)) {
      throw new ScheduleError(
        'cron',
        `unknown macro "${expression}", expected one of ${[...MACROS].join(' ')}`,
      );
    }
  } else {
    const count = expression === '' ? 0 : expression.split(/\s+/).length;
    if (count === 6) {
      throw new ScheduleError(
        'cron',
        'six fields: seconds are not supported, give minute hour day-of-month month day-of-week',
      );
    }
    if (count !== 5) {
      throw new ScheduleError(
        'cron',
        `expected 5 fields (minute hour day-of-month month day-of-week), got ${count}`,
      );
    }
  }
  // Before parsing: what cron-parser says of an expression with H depends on the value it draws.
  if (expression.split(/\s+/).some((field) => field.split(',').some((item) => /^H(?:$|[(/])/.test(item)))) {
    throw new ScheduleError(
      'cron',
      'H (a value cron-parser draws at random on every parse) is not supported',
    );
  }
  let fields: CronFieldCollection;
  try {
    // A current date of our own: without one cron-parser asks luxon for the system zone, a costly Intl call.
    fields = CronExpressionParser.parse(expression, { tz: 'UTC', currentDate: 0 }).fields;
  } catch (error) {
    throw new ScheduleError('cron', error instanceof Error ? error.message : String(error));
  }
  return Object.freeze({ cron: expression, timeZone, everyHour: fields.hour.values.length === 24, fields });
}

/**
 * The next `count` (0 to `MAX_FIRE_TIMES`) fire times strictly after `after`, earliest first. Fewer only for
 * a schedule so sparse that cron-parser gives up searching (its loop limit; `0 0 29 2 *` is not).
 */
export function nextFireTimes(schedule: Schedule, after: Date, count: number): Date[] {
  if (!Number.isInteger(count) || count < 0 || count > MAX_FIRE_TIMES) {
    throw new RangeError(`count must be an integer from 0 to ${MAX_FIRE_TIMES}, got ${count}`);
  }
  const afterMs = after.getTime();
  if (Number.isNaN(afterMs)) throw new RangeError('after is not a valid date');
  if (count === 0) return [];
  const zone = schedule.timeZone;
  // Wall-clock readings are enumerated in order, but near a DST change their instants are not quite: a
  // reading in a gap lands up to the gap's length later (02:20 in a half-hour gap after 02:35). So near a
  // change the search starts that much before `after` and runs that much past the last instant kept.
  const iterator = CronExpression.fieldsToExpression(schedule.fields, {
    currentDate: new Date(wallClock(afterMs, zone) - (steadyAround(afterMs, zone) ? 0 : MAX_DST_SHIFT_MS)),
    tz: 'UTC',
  });
  const found: number[] = [];
  for (;;) {
    let wall: number;
    try {
      wall = iterator.next().getTime();
    } catch {
      break; // cron-parser's loop limit: nothing within its reach
    }
    const before = found[count - 1];
    if (before !== undefined && wall > wallClock(before, zone) + MAX_DST_SHIFT_MS) break;
    for (const instant of instantsOf(wall, zone, schedule.everyHour)) {
      if (instant > afterMs) insertSorted(found, instant);
    }
    const last = found[count - 1];
    if (last !== undefined && wall >= wallClock(last, zone) && steadyAround(last, zone)) break;
  }
  return found.slice(0, count).map((ms) => new Date(ms));
}

/** The first fire time strictly after `after`, or null if cron-parser finds none. */
export function nextFireTime(schedule: Schedule, after: Date): Date | null {
  return nextFireTimes(schedule, after, 1)[0] ?? null;
}

/** What the scheduler knows of one volume. Times are instants; backups are timed by their start. */
export interface ScheduledVolume {
  readonly id: string;
  /** `backup_cron`; null: no schedule. */
  readonly cron: string | null;
  readonly timeZone: string;
  /** `schedule_enabled`. */
  readonly enabled: boolean;
  /** When cron, time zone or enabled last changed; the volume's creation time if they never did. Not
   * `updated_at`, which moves on a rename and would postpone a catch-up run. */
  readonly scheduleSince: Date;
  /** Start of the newest completed backup. */
  readonly lastSuccessAt: Date | null;
  /** Start of the newest backup of any state (running, failed, completed). */
  readonly lastAttemptAt: Date | null;
  /** A backup of the volume is running. */
  readonly running: boolean;
}

export type ScheduleStatus =
  /** Its next fire time has passed: start a backup. */
  | 'due'
  /** Its next fire time is ahead. */
  | 'waiting'
  /** A backup of it is running; `nextFireAt` is the slot after the anchor. */
  | 'running'
  /** Its schedule is off. */
  | 'disabled'
  /** It has no cron expression. */
  | 'unscheduled'
  /** Its stored cron or zone no longer parses (`error` says why). */
  | 'invalid'
  /** cron-parser finds no fire time after the anchor. */
  | 'exhausted';

export interface ScheduleDecision {
  readonly id: string;
  readonly status: ScheduleStatus;
  /** The volume's `next_fire_at`: the slot that is due (in the past) or the next one; null when nothing will
   * fire. */
  readonly nextFireAt: Date | null;
  readonly error?: ScheduleError;
}

/** One volume's decision. `schedule`: the volume's cron and zone already parsed (else parsed here). */
export function decideSchedule(now: Date, volume: ScheduledVolume, schedule?: Schedule): ScheduleDecision {
  const { id } = volume;
  if (volume.cron === null) return { id, status: 'unscheduled', nextFireAt: null };
  let parsed = schedule;
  if (parsed === undefined) {
    try {
      parsed = parseSchedule(volume.cron, volume.timeZone);
    } catch (error) {
      if (!(error instanceof ScheduleError)) throw error;
      return { id, status: 'invalid', nextFireAt: null, error };
    }
  }
  if (!volume.enabled) return { id, status: 'disabled', nextFireAt: null };
  const nextFireAt = nextFireTime(parsed, anchorOf(volume));
  if (nextFireAt === null) return { id, status: 'exhausted', nextFireAt };
  if (volume.running) return { id, status: 'running', nextFireAt };
  return { id, status: nextFireAt.getTime() <= now.getTime() ? 'due' : 'waiting', nextFireAt };
}

/** The scheduler's tick: every volume's decision, and the ids of those to back up now. Volumes that share a
 * cron expression and zone share one parse. */
export function planSchedule(
  now: Date,
  volumes: readonly ScheduledVolume[],
): { due: string[]; decisions: ScheduleDecision[] } {
  const parsed = new Map<string, Schedule | ScheduleError>();
  const decisions = volumes.map((volume) => {
    if (volume.cron === null) return decideSchedule(now, volume);
    const key = `${volume.timeZone}\n${volume.cron}`;
    let schedule = parsed.get(key);
    if (schedule === undefined) {
      try {
        schedule = parseSchedule(volume.cron, volume.timeZone);
      } catch (error) {
        if (!(error instanceof ScheduleError)) throw error;
        schedule = error;
      }
      parsed.set(key, schedule);
    }
    if (schedule instanceof ScheduleError) {
      return {
        id: volume.id,
        status: 'invalid',
        nextFireAt: null,
        error: schedule,
      } satisfies ScheduleDecision;
    }
    return decideSchedule(now, volume, schedule);
  });
  return { due: decisions.filter((d) => d.status === 'due').map((d) => d.id), decisions };
}

function anchorOf(volume: ScheduledVolume): Date {
  let anchor = volume.scheduleSince;
  for (const at of [volume.lastSuccessAt, volume.lastAttemptAt]) {
    if (at !== null && at.getTime() > anchor.getTime()) anchor = at;
  }
  return anchor;
}

// Wall-clock arithmetic. A wall-clock reading is held as the milliseconds of the UTC instant whose UTC fields
// are that reading (02:30 on 29 March 2026 in Berlin is Date.UTC(2026, 2, 29, 2, 30)).

/** Larger than any DST change in the tz database (1 h; Antarctica/Troll 2 h; Lord Howe 30 min). */
const MAX_DST_SHIFT_MS = 3 * 3600_000;
const DAY_MS = 24 * 3600_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The reading of `zone`'s wall clock at an instant. */
function wallClock(instant: number, zone: string): number {
  let format = formatters.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, format);
  }
  // format and a regular expression: a third of the time of formatToParts, and this is the hot path.
  const reading = /^(\d+)\/(\d+)\/(\d+), (\d+):(\d+):(\d+)$/.exec(format.format(instant));
  if (reading === null)
    throw new Error(`unexpected wall-clock reading in ${zone}: ${format.format(instant)}`);
  const [, month, day, year, hour, minute, second] = reading.map(Number) as number[];
  const utc = new Date(0);
  utc.setUTCFullYear(year!, month! - 1, day!);
  utc.setUTCHours(hour!, minute!, second!, ((instant % 1000) + 1000) % 1000);
  return utc.getTime();
}

/** The instants at which `zone`'s wall clock shows `wall`, as a schedule fires them: one, its first
 * occurrence, or both occurrences of a repeated reading for a schedule that fires every hour; for a reading
 * the clocks skip, the instant as far past the jump as the reading was past the last time before it. */
function instantsOf(wall: number, zone: string, everyHour: boolean): number[] {
  // At most one offset change lies within a day of any instant, so the offsets a day either side are the
  // only ones the reading can have been made with.
  const offsetBefore = wallClock(wall - DAY_MS, zone) - (wall - DAY_MS);
  const offsetAfter = wallClock(wall + DAY_MS, zone) - (wall + DAY_MS);
  if (offsetBefore === offsetAfter) return [wall - offsetBefore];
  const exact = [wall - offsetBefore, wall - offsetAfter]
    .filter((instant) => wallClock(instant, zone) === wall)
    .sort((a, b) => a - b);
  if (exact.length === 0) return [wall - offsetBefore];
  return everyHour ? exact : exact.slice(0, 1);
}

/** No offset change within `MAX_DST_SHIFT_MS` of an instant (so readings near it map to instants in order). */
function steadyAround(instant: number, zone: string): boolean {
  const early = instant - MAX_DST_SHIFT_MS;
  const late = instant + MAX_DST_SHIFT_MS;
  return wallClock(early, zone) - early === wallClock(late, zone) - late;
}

function insertSorted(sorted: number[], value: number): void {
  let i = sorted.length;
  while (i > 0 && sorted[i - 1]! > value) i--;
  if (sorted[i - 1] !== value) sorted.splice(i, 0, value);
}
