import {
  backupsWithVerifyProblems,
  claimTargetProbe,
  hostsToHeartbeat,
  recordTargetProbe,
  targetsWithFailedLastGc,
  targetsWithHealth,
  volumesWithFailedLastBackup,
} from '../db/alert-facts.js';
import type { AlertCondition } from '../db/alerts.js';
import { openAlerts } from '../db/alerts.js';
import type { BackupTargetRow } from '../db/schema.js';
import type { AlertKind } from '../db/schema-alerts.js';
import { getTarget } from '../db/targets.js';
import { scheduledVolumes } from '../db/volumes.js';
import { purgeFinishedDeliveries } from '../db/webhooks.js';
import { type AppliedPlan, applyAlertPlan } from '../services/alerts.js';
import type { ManagerContext } from '../services/context.js';
import { callAgent } from '../services/hosts.js';
import { type DeliveryReport, deliverDue, type PostOptions } from '../services/webhooks.js';
import { locationOf } from '../targets/locations.js';
import { classifyStoreError } from '../targets/probe.js';
import { openLocation, targetCredentials } from '../targets/targets.js';
import {
  agentUnreachableFor,
  type KindObservation,
  minutesInWords,
  overdueCheck,
  planAlerts,
  subjectOf,
  TARGET_FAILED_PROBES,
} from './alert-rules.js';
import { parseSchedule } from './schedule.js';

/** An idle agent (no job, no call) is called this often, so that one that died is noticed. */
export const AGENT_HEARTBEAT_MS = 60_000;
/** Each target's store is probed this often (one HEAD of its `config`), by one replica. */
export const TARGET_PROBE_EVERY_MS = 5 * 60_000;
const TARGET_PROBE_TIMEOUT_MS = 10_000;
/** The repository's config object (docs/format.md): present in every repository, small, read by nothing else
 * often. */
const CONFIG_KEY = 'config';
/** Delivered and given-up deliveries are kept this long, for whoever looks into a receiver's trouble. */
const DELIVERY_KEEP_MS = 7 * 24 * 3_600_000;
/** Verify problems turned into alerts at most (the newest backups first). */
const VERIFY_ALERTS_MAX = 1_000;

export interface AlertsLoopOptions extends PostOptions {
  /** How a target's store is checked; resolves to null when it is reachable and holds its repository, or
   * to what is wrong (tests replace it). */
  readonly probeTarget?: (ctx: ManagerContext, target: BackupTargetRow) => Promise<string | null>;
}

export interface AlertsReport extends AppliedPlan {
  readonly heartbeats: number;
  readonly probes: number;
  readonly deliveries: DeliveryReport;
}

/**
 * One alerts tick (every 30 s): call idle agents and probe targets whose turn it is (what the rules read of
 * hosts and targets), decide which conditions hold (loops/alert-rules.ts), open, touch and resolve alerts
 * with their webhook events in the outbox, then send what the outbox holds. Safe with two replicas: alerts
 * are raised and resolved by statements only one replica's can change (the open-alert unique index), and
 * probes and deliveries are claimed row by row.
 */
export async function alertsOnce(
  ctx: ManagerContext,
  options: AlertsLoopOptions = {},
): Promise<AlertsReport> {
  const heartbeats = await heartbeatHosts(ctx);
  const probes = await probeTargets(ctx, options.probeTarget ?? probeTargetStore);
  const observations: KindObservation[] = [];
  for (const [kind, rule] of RULES) {
    try {
      observations.push({ kind, conditions: await rule(ctx), scope: 'all' });
    } catch (error) {
      // Its alerts stay as they are until the rule works again.
      ctx.logger.error('an alert rule failed', { kind, error });
    }
  }
  const applied = await applyAlertPlan(ctx, planAlerts(await openAlerts(ctx.db), observations));
  const deliveries = await deliverDue(ctx, options);
  await purgeFinishedDeliveries(ctx.db, new Date(ctx.now().getTime() - DELIVERY_KEEP_MS));
  return { ...applied, heartbeats, probes, deliveries };
}

type Rule = (ctx: ManagerContext) => Promise<AlertCondition[]>;

const iso = (d: Date | string) => new Date(d).toISOString();
const errorMessage = (error: unknown) =>
  typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string'
    ? (error as { message: string }).message
    : 'no cause recorded';

const RULES: readonly (readonly [AlertKind, Rule])[] = [
  [
    'backup_failed',
    async (ctx) =>
      (await volumesWithFailedLastBackup(ctx.db)).map((row) => ({
        kind: 'backup_failed',
        subjectKey: row.volume_id,
        severity: 'warning',
        message: `the last backup of volume ${row.name} (started ${iso(row.backup_started_at)}) failed: ${errorMessage(row.backup_error)}`,
        subject: subjectOf({
          volume_id: row.volume_id,
          host_id: row.host_id,
          backup_target_id: row.backup_target_id,
          backup_id: row.backup_id,
          job_id: row.job_id,
        }),
      })),
  ],
  [
    'volume_overdue',
    async (ctx) => {
      const now = ctx.now();
      const conditions: AlertCondition[] = [];
      for (const volume of await scheduledVolumes(ctx.db)) {
        let check: ReturnType<typeof overdueCheck>;
        try {
          const schedule = parseSchedule(volume.backup_cron!, volume.timezone);
          const last = volume.last_success_started_at;
          check = overdueCheck(schedule, last === null ? null : new Date(last), volume.schedule_since);
        } catch {
          continue; // a schedule that no longer parses: the volume's schedule status says so
        }
        if (check === null || check.overdueAt.getTime() > now.getTime()) continue;
        const since =
          volume.last_success_started_at === null
            ? 'no successful backup yet'
            : `no successful backup since ${iso(volume.last_success_started_at)}`;
        conditions.push({
          kind: 'volume_overdue',
          subjectKey: volume.id,
          severity: 'critical',
          message: `volume ${volume.name} is overdue: ${since}; its schedule (${volume.backup_cron}, ${volume.timezone}) wanted one at ${check.slot.toISOString()}`,
          subject: subjectOf({
            volume_id: volume.id,
            host_id: volume.host_id,
            backup_target_id: volume.backup_target_id,
          }),
        });
      }
      return conditions;
    },
  ],
  [
    'agent_unreachable',
    async (ctx) => {
      const now = ctx.now();
      const hosts = await ctx.db.selectFrom('host').selectAll().where('status', '=', 'down').execute();
      return hosts.flatMap((host) => {
        const silentMs = agentUnreachableFor(now, host);
        if (silentMs === null) return [];
        return [
          {
            kind: 'agent_unreachable' as const,
            subjectKey: host.id,
            severity: 'critical' as const,
            message: `the agent of host ${host.name} at ${host.url} has been unreachable for ${minutesInWords(silentMs)}: ${host.last_error ?? 'no cause recorded'}`,
            subject: subjectOf({ host_id: host.id }),
          },
        ];
      });
    },
  ],
  [
    'gc_failed',
    async (ctx) =>
      (await targetsWithFailedLastGc(ctx.db)).map((row) => ({
        kind: 'gc_failed',
        subjectKey: row.target_id,
        severity: 'warning',
        message: `the last GC run of target ${row.name} (started ${iso(row.started_at)}) failed: ${errorMessage(row.error)}`,
        subject: subjectOf({ backup_target_id: row.target_id, gc_run_id: row.run_id }),
      })),
  ],
  [
    'verify_failed',
    async (ctx) =>
      (await backupsWithVerifyProblems(ctx.db, VERIFY_ALERTS_MAX)).map((row) => ({
        kind: 'verify_failed',
        subjectKey: row.backup_id,
        severity: row.verify_state === 'damaged' ? 'critical' : 'warning',
        message:
          row.verify_state === 'damaged'
            ? `backup ${row.backup_id} of volume ${row.volume_name} is damaged: ${row.damaged_chunks ?? 'some'} chunk objects it names are missing or corrupt`
            : `the last verify of backup ${row.backup_id} of volume ${row.volume_name} could not check it: ${errorMessage(row.verify_error)}`,
        subject: subjectOf({
          backup_id: row.backup_id,
          volume_id: row.volume_id,
          host_id: row.host_id,
          backup_target_id: row.backup_target_id,
          job_id: row.verify_job_id,
        }),
      })),
  ],
  [
    'target_unreachable',
    async (ctx) =>
      (await targetsWithHealth(ctx.db))
        .filter((t) => t.ok === false && (t.failures ?? 0) >= TARGET_FAILED_PROBES)
        .map((t) => ({
          kind: 'target_unreachable',
          subjectKey: t.id,
          severity: 'critical',
          message: `target ${t.name} has failed its last ${t.failures} probes, since ${t.failing_since === null ? 'its first probe' : iso(t.failing_since)}: ${t.error ?? 'no cause recorded'}`,
          subject: subjectOf({ backup_target_id: t.id }),
        })),
  ],
];

/** Runs `work` over `items`, `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Calls the agents not heard from for `AGENT_HEARTBEAT_MS`; `callAgent` records up or down on the host. */
async function heartbeatHosts(ctx: ManagerContext): Promise<number> {
  const hosts = await hostsToHeartbeat(ctx.db, new Date(ctx.now().getTime() - AGENT_HEARTBEAT_MS));
  await eachLimited(hosts, 8, async (host) => {
    await callAgent(ctx, host, (agent) => agent.backends()).catch((error: unknown) => {
      ctx.logger.debug('agent heartbeat failed', { host_id: host.id, error });
    });
  });
  return hosts.length;
}

/** Probes the targets whose turn it is (claimed, so one replica probes each) and records what it found. */
async function probeTargets(
  ctx: ManagerContext,
  probe: NonNullable<AlertsLoopOptions['probeTarget']>,
): Promise<number> {
  const now = ctx.now();
  const staleBefore = new Date(now.getTime() - TARGET_PROBE_EVERY_MS);
  const due = (await targetsWithHealth(ctx.db)).filter(
    (t) => t.claimed_at === null || t.claimed_at <= staleBefore,
  );
  let probed = 0;
  await eachLimited(due, 4, async ({ id }) => {
    if (!(await claimTargetProbe(ctx.db, id, now, staleBefore))) return;
    const target = await getTarget(ctx.db, id);
    if (target === undefined) return;
    const error = await probe(ctx, target).catch((e: unknown) =>
      e instanceof Error ? e.message : String(e),
    );
    probed++;
    await recordTargetProbe(ctx.db, id, { at: ctx.now(), error });
    if (error !== null) ctx.logger.warn('target probe failed', { target_id: id, error });
  });
  return probed;
}

/** The default probe: one HEAD of the repository's `config` with a timeout, through the target's store. */
export async function probeTargetStore(ctx: ManagerContext, target: BackupTargetRow): Promise<string | null> {
  const store = openLocation(locationOf(target), targetCredentials(ctx, target));
  try {
    const config = await store.head(CONFIG_KEY, { signal: AbortSignal.timeout(TARGET_PROBE_TIMEOUT_MS) });
    return config === undefined
      ? 'its repository is gone (no config object where it should be: the bucket was emptied or the prefix moved)'
      : null;
  } catch (error) {
    const failure = classifyStoreError(error);
    return `${failure.cause}: ${failure.message}`;
  } finally {
    (store as { destroy?: () => void }).destroy?.();
  }
}
