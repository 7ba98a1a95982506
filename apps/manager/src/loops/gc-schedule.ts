import { nextFireTime, parseSchedule } from './schedule.js';

/** What the GC loop knows of one target. */
export interface GcScheduledTarget {
  readonly id: string;
  readonly enabled: boolean;
  /** Local hour (0-23) of the daily run, in `timeZone`. */
  readonly gcHour: number;
  readonly timeZone: string;
  /** When the schedule counts from: the target's creation. */
  readonly since: Date;
  /** Start of its newest scheduled run, if any. */
  readonly lastScheduledRun: Date | null;
}

/**
 * Whether a target's daily GC is due: its first slot (`gcHour`:00 local, as the cron `0 <hour> * * *` in its
 * zone, DST handled by `parseSchedule`) after its last scheduled run has passed. So one run per window, and
 * after downtime one run, then back on schedule, never a catch-up per missed day.
 */
export function gcDue(now: Date, target: GcScheduledTarget): boolean {
  if (!target.enabled) return false;
  const schedule = parseSchedule(`0 ${target.gcHour} * * *`, target.timeZone);
  const next = nextFireTime(schedule, target.lastScheduledRun ?? target.since);
  return next !== null && next.getTime() <= now.getTime();
}
