import { randomBytes, randomUUID } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import { ApiError, type WebhookEvent } from '@stowage/api';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AgentClient } from '../agents/agent-client.js';
import { insertBackup } from '../db/backups.js';
import { openDatabase } from '../db/database.js';
import { insertHost } from '../db/hosts.js';
import type { AlertRow } from '../db/schema-alerts.js';
import { insertTarget } from '../db/targets.js';
import { insertVolume } from '../db/volumes.js';
import { silentLogger } from '../log.js';
import { createSecretBox } from '../secrets/envelope.js';
import { acknowledgeAlert } from '../services/alerts.js';
import type { ManagerContext } from '../services/context.js';
import { createWebhook } from '../services/webhooks.js';
import { describeOnDatabases, describeOnPostgres } from '../testing/databases.js';
import { signatureIsValid, startWebhookReceiver, type WebhookReceiver } from '../testing/webhook-receiver.js';
import {
  afterFailedAttempt,
  type KindObservation,
  overdueCheck,
  overdueMarginMs,
  planAlerts,
  retryDelayMs,
  subjectOf,
} from './alert-rules.js';
import { type AlertsLoopOptions, alertsOnce } from './alerts.js';
import { parseSchedule } from './schedule.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const T0 = new Date('2026-06-01T12:00:00Z');

describe('the alert rules', () => {
  it('gives a margin of a quarter of the period, at least ten minutes', () => {
    expect(overdueMarginMs(24 * HOUR)).toBe(6 * HOUR);
    expect(overdueMarginMs(HOUR)).toBe(15 * MINUTE);
    expect(overdueMarginMs(5 * MINUTE)).toBe(10 * MINUTE);
    expect(overdueMarginMs(0)).toBe(10 * MINUTE);
  });

  it('finds when a volume becomes overdue from the scheduler’s own fire times', () => {
    const daily = parseSchedule('0 2 * * *', 'UTC');
    const since = new Date('2026-05-01T00:00:00Z');
    // Last success yesterday 02:00: today's 02:00 slot, a 24 h period, six hours' margin.
    expect(overdueCheck(daily, new Date('2026-06-01T02:00:30Z'), since)).toEqual({
      slot: new Date('2026-06-02T02:00:00Z'),
      periodMs: 24 * HOUR,
      overdueAt: new Date('2026-06-02T08:00:00Z'),
    });
    // Never backed up: the first slot after the schedule began.
    expect(overdueCheck(daily, null, since)?.slot).toEqual(new Date('2026-05-01T02:00:00Z'));
    // Weekdays at 02:00: a Friday backup's next slot is Monday, its period a day.
    const weekdays = parseSchedule('0 2 * * 1-5', 'UTC');
    const friday = new Date('2026-06-05T02:00:00Z');
    expect(overdueCheck(weekdays, friday, since)).toMatchObject({
      slot: new Date('2026-06-08T02:00:00Z'),
      overdueAt: new Date('2026-06-08T08:00:00Z'),
    });
  });

  it('raises what has no open alert, touches what has, resolves only within what was looked at', () => {
    const alert = (kind: AlertRow['kind'], key: string) =>
      ({ id: `${kind}-${key}`, kind, subject_key: key }) as AlertRow;
    const condition = (kind: AlertRow['kind'], key: string) => ({
      kind,
      subjectKey: key,
      severity: 'warning' as const,
      message: 'm',
      subject: subjectOf({}),
    });
    const open = [alert('backup_failed', 'a'), alert('backup_failed', 'b'), alert('gc_failed', 't')];
    const observations: KindObservation[] = [
      {
        kind: 'backup_failed',
        scope: 'all',
        conditions: [condition('backup_failed', 'b'), condition('backup_failed', 'c')],
      },
      { kind: 'target_unreachable', scope: new Set(['x']), conditions: [] },
    ];
    const plan = planAlerts(open, observations);
    expect(plan.raise.map((c) => c.subjectKey)).toEqual(['c']);
    expect(plan.touch.map((t) => t.alert.id)).toEqual(['backup_failed-b']);
    // gc_failed was not observed (its rule failed): its alert stays open.
    expect(plan.resolve.map((a) => a.id)).toEqual(['backup_failed-a']);
  });

  it('retries after 30 s, doubling to an hour, and gives up after a day', () => {
    expect([1, 2, 3, 4, 7, 8, 20].map(retryDelayMs)).toEqual([
      30_000, 60_000, 120_000, 240_000, 1_920_000, 3_600_000, 3_600_000,
    ]);
    const created = T0;
    expect(afterFailedAttempt(T0, { created_at: created, attempts: 0 })).toEqual({
      state: 'pending',
      nextAttemptAt: new Date(T0.getTime() + 30_000),
    });
    const late = new Date(T0.getTime() + 23.5 * HOUR);
    expect(afterFailedAttempt(late, { created_at: created, attempts: 30 }).state).toBe('failed');
  });
});

/** A URL on a port nothing listens on (one just freed). */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/hook`;
}

describeOnDatabases('the alerts loop', (subject) => {
  let clock: Date;
  let ctx: ManagerContext;
  let agentUp: boolean;
  let probeAnswer: string | null;
  let receiver: WebhookReceiver;
  const logs: string[] = [];
  const options = (): AlertsLoopOptions => ({ probeTarget: async () => probeAnswer });
  const tick = () => alertsOnce(ctx, options());
  const advance = (ms: number) => {
    clock = new Date(clock.getTime() + ms);
  };
  const open = async () =>
    ctx.db.selectFrom('alert').selectAll().where('resolved_at', 'is', null).orderBy('opened_at').execute();
  const all = async () => ctx.db.selectFrom('alert').selectAll().orderBy('opened_at').execute();

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
  });
  afterAll(() => receiver?.close());
  beforeEach(async () => {
    const { db } = subject().database;
    await sql`TRUNCATE alert, webhook, webhook_delivery, target_health, backup_gc_run CASCADE`.execute(db);
    clock = T0;
    agentUp = true;
    probeAnswer = null;
    receiver.received.length = 0;
    receiver.answer = () => ({ status: 204 });
    logs.length = 0;
    const record = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
      logs.push(JSON.stringify({ level, msg, ...fields }));
    };
    ctx = {
      db,
      secrets: createSecretBox(randomBytes(32)),
      now: () => clock,
      agentFor: () =>
        ({
          backends: async () => {
            if (!agentUp) throw new ApiError('unavailable', 'connect ECONNREFUSED 127.0.0.1:7471');
            return [];
          },
        }) as unknown as AgentClient,
      logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') },
      jobChanged: () => {},
    };
  });

  async function seed() {
    const target = await insertTarget(ctx.db, {
      id: randomUUID(),
      name: 'fs',
      kind: 'filesystem',
      path: '/srv/backups',
      target_key: new Uint8Array(60),
      repository_id: randomUUID(),
      chunker: JSON.stringify({ min_size: 262144, avg_size: 1048576, max_size: 4194304 }),
    });
    const host = await insertHost(ctx.db, {
      id: randomUUID(),
      name: 'storage-1',
      url: 'http://127.0.0.1:7471',
      agentToken: new Uint8Array(40),
      backends: [],
      now: clock,
    });
    const volume = await insertVolume(ctx.db, {
      id: randomUUID(),
      name: 'db-data',
      host_id: host.id,
      backend: 'local-file',
      locator: `/images/${randomUUID()}.img`,
      size: 1 << 20,
      state: 'available',
      backup_target_id: target.id,
      created_at: clock,
      updated_at: clock,
      schedule_since: clock,
    });
    return { target, host, volume };
  }

  async function backup(
    volumeId: string,
    targetId: string,
    state: 'completed' | 'failed' | 'running',
    startedAt: Date,
    fields: Record<string, unknown> = {},
  ) {
    return insertBackup(ctx.db, {
      id: randomUUID(),
      volume_id: volumeId,
      backup_target_id: targetId,
      state,
      manifest_key: `manifests/${volumeId}/${randomUUID()}`,
      started_at: startedAt,
      finished_at: state === 'running' ? null : startedAt,
      error:
        state === 'failed'
          ? JSON.stringify({ code: 'unavailable', message: 'the bucket refused the upload' })
          : null,
      ...fields,
    });
  }

  it('raises a failed backup once, keeps it through a running retry, resolves it on a success', async () => {
    const { volume, target } = await seed();
    await backup(volume.id, target.id, 'completed', new Date(T0.getTime() - 2 * HOUR));
    await tick();
    expect(await open()).toEqual([]);
    const failed = await backup(volume.id, target.id, 'failed', new Date(T0.getTime() - HOUR));
    await tick();
    advance(MINUTE);
    await tick();
    const [alert, ...more] = await open();
    expect(more).toEqual([]);
    expect(alert).toMatchObject({
      kind: 'backup_failed',
      severity: 'warning',
      subject_key: volume.id,
      opened_at: T0,
      last_seen_at: clock,
    });
    expect(alert!.message).toContain('the bucket refused the upload');
    expect(alert!.subject).toMatchObject({ volume_id: volume.id, backup_id: failed.id });
    const retry = await backup(volume.id, target.id, 'running', clock);
    await tick();
    expect(await open()).toHaveLength(1);
    await ctx.db
      .updateTable('backup')
      .set({ state: 'completed', finished_at: clock })
      .where('id', '=', retry.id)
      .execute();
    advance(MINUTE);
    await tick();
    expect(await open()).toEqual([]);
    expect((await all())[0]).toMatchObject({ id: alert!.id, resolved_at: clock });
    // It recurs: a new alert, the resolved one left as it was.
    await backup(volume.id, target.id, 'failed', clock);
    await tick();
    const rows = await all();
    expect(rows).toHaveLength(2);
    expect(rows[1]!.id).not.toBe(alert!.id);
    expect(rows[1]!.resolved_at).toBeNull();
  });

  it('takes a cancelled backup for neither a failure nor a success', async () => {
    const { volume, target } = await seed();
    await backup(volume.id, target.id, 'completed', new Date(T0.getTime() - 3 * HOUR));
    const cancelled = { error: JSON.stringify({ code: 'cancelled', message: 'cancelled by the operator' }) };
    await backup(volume.id, target.id, 'failed', new Date(T0.getTime() - 2 * HOUR), cancelled);
    await tick();
    expect(await open()).toEqual([]);
    await backup(volume.id, target.id, 'failed', new Date(T0.getTime() - HOUR));
    await backup(volume.id, target.id, 'failed', T0, cancelled);
    advance(MINUTE);
    await tick();
    expect((await open()).map((a) => a.kind)).toEqual(['backup_failed']);
  });

  it('raises an overdue volume past its slot and margin, and resolves it on a successful backup', async () => {
    const { volume, target } = await seed();
    // Hourly at :00 from 12:00: the slot is 13:00, the margin 15 min.
    await ctx.db
      .updateTable('volume')
      .set({ backup_cron: '0 * * * *', timezone: 'UTC', schedule_since: T0, schedule_enabled: true })
      .where('id', '=', volume.id)
      .execute();
    clock = new Date('2026-06-01T13:14:59Z');
    await tick();
    expect(await open()).toEqual([]);
    clock = new Date('2026-06-01T13:15:00Z');
    await tick();
    expect(await open()).toMatchObject([
      { kind: 'volume_overdue', severity: 'critical', subject_key: volume.id },
    ]);
    expect((await open())[0]!.message).toContain('no successful backup yet');
    // Switching the schedule off clears it as well; here a late success does.
    await backup(volume.id, target.id, 'completed', new Date('2026-06-01T13:16:00Z'));
    advance(2 * MINUTE);
    await tick();
    expect(await open()).toEqual([]);
  });

  it('raises an unreachable agent after five minutes down, from its heartbeat, and resolves it when it answers', async () => {
    const { host } = await seed();
    agentUp = false;
    advance(2 * MINUTE); // silent past the heartbeat: called, found down
    await tick();
    expect(
      await ctx.db.selectFrom('host').select('status').where('id', '=', host.id).executeTakeFirst(),
    ).toEqual({ status: 'down' });
    expect(await open()).toEqual([]); // down 2 min: not yet
    advance(3 * MINUTE);
    await tick();
    const [alert] = await open();
    expect(alert).toMatchObject({ kind: 'agent_unreachable', severity: 'critical', subject_key: host.id });
    expect(alert!.message).toContain('unreachable for 5 min: connect ECONNREFUSED 127.0.0.1:7471');
    agentUp = true;
    advance(2 * MINUTE);
    await tick();
    expect(await open()).toEqual([]);
  });

  it('raises a failed GC run and resolves it with the next successful run', async () => {
    const { target } = await seed();
    const run = (state: 'failed' | 'succeeded', startedAt: Date) =>
      ctx.db
        .insertInto('backup_gc_run')
        .values({
          id: randomUUID(),
          backup_target_id: target.id,
          state,
          phase: state === 'failed' ? 'list' : 'done',
          trigger: 'schedule',
          dry_run: false,
          grace_seconds: 3600,
          cutoff: startedAt,
          started_at: startedAt,
          finished_at: startedAt,
          heartbeat_at: startedAt,
          error:
            state === 'failed'
              ? JSON.stringify({ code: 'unavailable', message: 'the bucket timed out' })
              : null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    const failed = await run('failed', new Date(T0.getTime() - HOUR));
    await tick();
    const [alert] = await open();
    expect(alert).toMatchObject({ kind: 'gc_failed', subject_key: target.id });
    expect(alert!.subject.gc_run_id).toBe(failed.id);
    expect(alert!.message).toContain('the bucket timed out');
    await run('succeeded', T0);
    advance(MINUTE);
    await tick();
    expect(await open()).toEqual([]);
  });

  it('raises a damaged backup as critical and one that could not be checked as a warning', async () => {
    const { volume, target } = await seed();
    const damaged = await backup(volume.id, target.id, 'completed', new Date(T0.getTime() - HOUR), {
      verify_state: 'damaged',
      damaged_chunks: 3,
    });
    const unchecked = await backup(volume.id, target.id, 'completed', new Date(T0.getTime() - 2 * HOUR), {
      verify_error: JSON.stringify({ code: 'unavailable', message: 'the agent stopped' }),
    });
    await tick();
    const alerts = await open();
    expect(alerts.map((a) => [a.subject_key, a.severity]).sort()).toEqual(
      [
        [damaged.id, 'critical'],
        [unchecked.id, 'warning'],
      ].sort(),
    );
    expect(alerts.find((a) => a.subject_key === damaged.id)!.message).toContain('3 chunk objects');
    // A verify that succeeds clears the error; a damaged backup deleted takes its alert with it.
    await ctx.db
      .updateTable('backup')
      .set({ verify_error: null, verify_state: 'ok' })
      .where('id', '=', unchecked.id)
      .execute();
    await ctx.db.deleteFrom('backup').where('id', '=', damaged.id).execute();
    advance(MINUTE);
    await tick();
    expect(await open()).toEqual([]);
  });

  it('raises an unreachable target after two failed probes five minutes apart, and resolves it after one good one', async () => {
    const { target } = await seed();
    probeAnswer = 'unreachable: connect ECONNREFUSED 127.0.0.1:9000';
    expect((await tick()).probes).toBe(1);
    advance(MINUTE);
    expect((await tick()).probes).toBe(0); // probed a minute ago: not its turn
    expect(await open()).toEqual([]);
    advance(4 * MINUTE);
    await tick();
    const [alert] = await open();
    expect(alert).toMatchObject({ kind: 'target_unreachable', severity: 'critical', subject_key: target.id });
    expect(alert!.message).toContain('failed its last 2 probes, since 2026-06-01T12:00:00.000Z: unreachable');
    probeAnswer = null;
    advance(5 * MINUTE);
    await tick();
    expect(await open()).toEqual([]);
  });

  it('delivers each change, signed, to a real HTTP server; retries after a 500 with backoff', async () => {
    const { volume, target } = await seed();
    const { row: hook, secret } = await createWebhook(ctx, { url: receiver.url });
    const statuses = [500];
    receiver.answer = () => ({ status: statuses.shift() ?? 200 });
    await backup(volume.id, target.id, 'failed', T0);
    expect((await tick()).deliveries).toMatchObject({ attempted: 1, retrying: 1 });
    expect(receiver.received).toHaveLength(1);
    const [first] = receiver.received;
    expect(signatureIsValid(secret, first!)).toBe(true);
    expect(signatureIsValid('whsec_another', first!)).toBe(false);
    expect(first!.headers).toMatchObject({
      'content-type': 'application/json',
      'x-stowage-event': 'alert.opened',
      'x-stowage-timestamp': String(T0.getTime() / 1000),
    });
    const event = JSON.parse(first!.body) as WebhookEvent;
    expect(event).toMatchObject({
      type: 'alert.opened',
      at: T0.toISOString(),
      alert: { kind: 'backup_failed', state: 'open', volume_id: volume.id },
    });
    const delivery = await ctx.db.selectFrom('webhook_delivery').selectAll().executeTakeFirstOrThrow();
    expect(delivery).toMatchObject({
      state: 'pending',
      attempts: 1,
      last_status: 500,
      last_error: 'answered 500',
    });
    expect(delivery.next_attempt_at).toEqual(new Date(T0.getTime() + 30_000));
    expect(
      await ctx.db
        .selectFrom('webhook')
        .select(['last_status', 'last_error'])
        .where('id', '=', hook.id)
        .executeTakeFirst(),
    ).toEqual({ last_status: 500, last_error: 'answered 500' });

    advance(29_000);
    expect((await tick()).deliveries.attempted).toBe(0);
    advance(1_000);
    expect((await tick()).deliveries).toMatchObject({ attempted: 1, delivered: 1 });
    const [, second] = receiver.received;
    // The same delivery (its id) and event, signed anew with the time of this attempt.
    expect(second!.headers['x-stowage-delivery']).toBe(first!.headers['x-stowage-delivery']);
    expect(second!.body).toBe(first!.body);
    expect(second!.headers['x-stowage-timestamp']).toBe(String(T0.getTime() / 1000 + 30));
    expect(signatureIsValid(secret, second!)).toBe(true);
    expect(
      await ctx.db.selectFrom('webhook_delivery').select(['state', 'attempts']).executeTakeFirst(),
    ).toEqual({ state: 'delivered', attempts: 2 });

    // Acknowledged and then resolved: two more events, in that order.
    const [alert] = await open();
    await acknowledgeAlert(ctx, alert!.id, 'token ops');
    await backup(volume.id, target.id, 'completed', clock);
    advance(MINUTE);
    await tick();
    const types = receiver.received.slice(2).map((r) => JSON.parse(r.body) as WebhookEvent);
    expect(types.map((e) => [e.type, e.alert?.acknowledged_by, e.alert?.state])).toEqual([
      ['alert.acknowledged', 'token ops', 'open'],
      ['alert.resolved', 'token ops', 'resolved'],
    ]);
    // The secret is in no log line and no delivery row.
    expect(logs.join('\n')).not.toContain(secret);
    const rows = await ctx.db.selectFrom('webhook_delivery').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(secret);
  });

  it('tells a webhook only of the events it asked for, and follows no redirect', async () => {
    const { volume, target } = await seed();
    await createWebhook(ctx, { url: receiver.url, events: ['alert.resolved'] });
    receiver.answer = () => ({ status: 302, headers: { location: 'http://127.0.0.1:1/elsewhere' } });
    await backup(volume.id, target.id, 'failed', T0);
    await tick();
    expect(receiver.received).toEqual([]);
    await backup(volume.id, target.id, 'completed', T0);
    advance(MINUTE);
    expect((await tick()).deliveries).toMatchObject({ attempted: 1, retrying: 1 });
    expect(receiver.received.map((r) => r.headers['x-stowage-event'])).toEqual(['alert.resolved']);
    expect(await ctx.db.selectFrom('webhook_delivery').select('last_error').executeTakeFirst()).toEqual({
      last_error: 'answered 302, a redirect to http://127.0.0.1:1/elsewhere, which is not followed',
    });
  });

  it('gives a delivery up after a day of failures and records it', async () => {
    const { volume, target } = await seed();
    await createWebhook(ctx, { url: await closedPortUrl() });
    await backup(volume.id, target.id, 'failed', T0);
    await tick();
    let attempts = 1;
    for (let i = 0; i < 40; i++) {
      const delivery = await ctx.db.selectFrom('webhook_delivery').selectAll().executeTakeFirstOrThrow();
      if (delivery.state !== 'pending') break;
      clock = delivery.next_attempt_at;
      attempts = (await tick()).deliveries.attempted > 0 ? delivery.attempts + 1 : attempts;
    }
    const delivery = await ctx.db.selectFrom('webhook_delivery').selectAll().executeTakeFirstOrThrow();
    expect(delivery.state).toBe('failed');
    expect(delivery.last_error).toMatch(/ECONNREFUSED/);
    expect(delivery.finished_at!.getTime() - delivery.created_at.getTime()).toBeLessThanOrEqual(24 * HOUR);
    expect(delivery.finished_at!.getTime() - delivery.created_at.getTime()).toBeGreaterThan(22 * HOUR);
    expect(delivery.attempts).toBe(attempts);
    expect(logs.some((line) => line.includes('webhook delivery given up'))).toBe(true);
  });

  it('sends nothing it cannot sign: a secret sealed under another master key is recorded as the cause', async () => {
    const { volume, target } = await seed();
    await createWebhook(ctx, { url: receiver.url });
    ctx = { ...ctx, secrets: createSecretBox(randomBytes(32)) };
    await backup(volume.id, target.id, 'failed', T0);
    expect((await tick()).deliveries).toMatchObject({ attempted: 1, retrying: 1 });
    expect(receiver.received).toEqual([]);
    expect(await ctx.db.selectFrom('webhook_delivery').select('last_error').executeTakeFirst()).toEqual({
      last_error: 'its signing secret does not open with this master key',
    });
  });
});

describeOnPostgres('the alerts loop on two replicas', (subject) => {
  it('opens one alert and sends one delivery when two managers tick at once', async () => {
    const { db } = subject().database;
    await sql`TRUNCATE alert, webhook, webhook_delivery, target_health CASCADE`.execute(db);
    const receiver = await startWebhookReceiver();
    const other = await openDatabase({ url: subject().url! });
    try {
      const secrets = createSecretBox(randomBytes(32));
      const contextOf = (database: typeof db): ManagerContext => ({
        db: database,
        secrets,
        now: () => T0,
        agentFor: () => ({ backends: async () => [] }) as unknown as AgentClient,
        logger: silentLogger,
        jobChanged: () => {},
      });
      const [a, b] = [contextOf(db), contextOf(other.db)];
      const target = await insertTarget(db, {
        id: randomUUID(),
        name: 'fs',
        kind: 'filesystem',
        path: '/srv/backups',
        target_key: new Uint8Array(60),
        repository_id: randomUUID(),
        chunker: JSON.stringify({ min_size: 262144, avg_size: 1048576, max_size: 4194304 }),
      });
      const volumes = [];
      for (let i = 0; i < 5; i++) {
        const volume = await insertVolume(db, {
          id: randomUUID(),
          name: `v${i}`,
          host_id: null,
          backend: 'local-file',
          locator: `/images/${randomUUID()}.img`,
          size: 1 << 20,
          state: 'available',
          backup_target_id: target.id,
        });
        await insertBackup(db, {
          id: randomUUID(),
          volume_id: volume.id,
          backup_target_id: target.id,
          state: 'failed',
          manifest_key: `manifests/${volume.id}/${randomUUID()}`,
          started_at: T0,
          finished_at: T0,
          error: JSON.stringify({ code: 'internal', message: 'failed' }),
        });
        volumes.push(volume);
      }
      await createWebhook(a, { url: receiver.url });
      const options = { probeTarget: async () => null };
      const reports = await Promise.all([alertsOnce(a, options), alertsOnce(b, options)]);
      expect(reports[0]!.opened + reports[1]!.opened).toBe(5);
      expect(await db.selectFrom('alert').select('subject_key').execute()).toHaveLength(5);
      expect(await db.selectFrom('webhook_delivery').select('id').execute()).toHaveLength(5);
      // Deliveries sent by the first tick that claimed them; any left are sent by either replica's next one.
      await Promise.all([alertsOnce(a, options), alertsOnce(b, options)]);
      const ids = receiver.received.map((r) => r.headers['x-stowage-delivery']);
      expect(ids).toHaveLength(5);
      expect(new Set(ids).size).toBe(5);
      expect(await db.selectFrom('target_health').select('backup_target_id').execute()).toHaveLength(1);
    } finally {
      await other.close();
      await receiver.close();
    }
  });
});
