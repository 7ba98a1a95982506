/** What the verify loop knows of one completed backup of a target with a verify schedule. */
export interface VerifyScheduledBackup {
  readonly backupId: string;
  /** The host whose agent runs its verify (its volume's); null: none, so it cannot be verified on schedule. */
  readonly hostId: string | null;
  /** The target's period: every backup is verified at least once within this many days. */
  readonly everyDays: number;
  /** The target's share of chunks a scheduled verify reads. */
  readonly samplePercent: number;
  /** When a verify of it last completed; null: never. */
  readonly verifiedAt: Date | null;
  /** When it was written (completed): a backup never verified counts from here. */
  readonly finishedAt: Date;
  /** When a verify of it last started, whatever came of it (a failed start waits `retryAfterMs`). */
  readonly verifyStartedAt: Date | null;
  /** A verify of it is queued or running now. */
  readonly verifying: boolean;
}

export interface VerifyPlanLimits {
  /** Verify jobs queued or running at once per host (default 1), so that backups are never stuck behind a
   * queue of verifies on an agent (it runs two jobs at a time). */
  readonly perHost?: number;
  /** Jobs started in one tick at most (default 20). */
  readonly perTick?: number;
  /** How long after a verify started that did not complete the next try waits (default 6 h). */
  readonly retryAfterMs?: number;
  /** How long a host last found unreachable is left alone (default 15 min): then one verify tries it again,
   * so an agent that is down costs a failed job every quarter hour, not one a minute. */
  readonly downHostRestMs?: number;
}

export interface VerifyPlan {
  /** Backups to verify now, most overdue first, with the share of chunks to read. */
  readonly start: readonly {
    readonly backupId: string;
    readonly hostId: string;
    readonly samplePercent: number;
  }[];
  /** Due but left for a later tick: their host is busy with verifies, or the tick's limit was reached. */
  readonly deferred: number;
  /** Due, but without a host to run on. */
  readonly noHost: readonly string[];
  /** Hosts with due backups left alone because they were found unreachable a moment ago. */
  readonly restingHosts: readonly string[];
}

const DAY_MS = 86_400_000;

/**
 * When a backup's next scheduled verify is due: `everyDays` × 24 h after its last completed verify, or after
 * it was written if never verified — so every backup is checked at least once in each period, and a new one
 * within a period of its creation (as PBS's verify jobs re-verify after "N days"). Durations, not calendar
 * days: a DST change does not move it.
 */
export function verifyDueAt(backup: VerifyScheduledBackup): Date {
  return new Date((backup.verifiedAt ?? backup.finishedAt).getTime() + backup.everyDays * DAY_MS);
}

/**
 * The verify schedule's decision for one tick (pure; the loop owns the I/O): every backup due (`verifyDueAt`
 * passed) that is not being verified and whose last unfinished attempt is older than `retryAfterMs`, most
 * overdue first, while its host has fewer than `perHost` verifies going and fewer than `perTick` were picked,
 * and unless its host was found unreachable less than `downHostRestMs` ago.
 */
export function planVerifies(
  now: Date,
  backups: readonly VerifyScheduledBackup[],
  runningPerHost: ReadonlyMap<string, number>,
  limits: VerifyPlanLimits = {},
  /** Hosts last found unreachable, with when. */
  downHosts: ReadonlyMap<string, Date> = new Map(),
): VerifyPlan {
  const perHost = limits.perHost ?? 1;
  const perTick = limits.perTick ?? 20;
  const retryAfterMs = limits.retryAfterMs ?? 6 * 3_600_000;
  const downHostRestMs = limits.downHostRestMs ?? 15 * 60_000;
  const t = now.getTime();
  const due = backups
    .filter((b) => {
      if (b.verifying || verifyDueAt(b).getTime() > t) return false;
      // A verify that started after the last completed one and is not running any more did not complete.
      const attempt = b.verifyStartedAt?.getTime();
      const completed = b.verifiedAt?.getTime() ?? Number.NEGATIVE_INFINITY;
      return attempt === undefined || attempt <= completed || t - attempt >= retryAfterMs;
    })
    .sort(
      (a, b) => verifyDueAt(a).getTime() - verifyDueAt(b).getTime() || a.backupId.localeCompare(b.backupId),
    );
  const busy = new Map(runningPerHost);
  const start: { backupId: string; hostId: string; samplePercent: number }[] = [];
  const noHost: string[] = [];
  const resting = new Set<string>();
  let deferred = 0;
  for (const b of due) {
    if (b.hostId === null) {
      noHost.push(b.backupId);
      continue;
    }
    const down = downHosts.get(b.hostId);
    if (down !== undefined && t - down.getTime() < downHostRestMs) {
      resting.add(b.hostId);
      continue;
    }
    const running = busy.get(b.hostId) ?? 0;
    if (start.length >= perTick || running >= perHost) {
      deferred++;
      continue;
    }
    busy.set(b.hostId, running + 1);
    start.push({ backupId: b.backupId, hostId: b.hostId, samplePercent: b.samplePercent });
  }
  return { start, deferred, noHost, restingHosts: [...resting] };
}
