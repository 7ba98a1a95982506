import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ApiError, type ManagerClient } from '@stowage/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { raiseAlert, resolveAlert } from './db/alerts.js';
import { insertBackup } from './db/backups.js';
import { insertTarget } from './db/targets.js';
import { insertVolume } from './db/volumes.js';
import { jsonLogger } from './log.js';
import { subjectOf } from './loops/alert-rules.js';
import type { RunningManager } from './server.js';
import { createWebhook } from './services/webhooks.js';
import { runCli } from './testing/cli.js';
import { startTestManager, type TestManager } from './testing/manager.js';
import { signatureIsValid, startWebhookReceiver, type WebhookReceiver } from './testing/webhook-receiver.js';

/** The alert and webhook routes through a real manager, with the logs it writes kept to be read. */
describe('the alerts and webhooks API', () => {
  let system: TestManager;
  let manager: RunningManager;
  let client: ManagerClient;
  let receiver: WebhookReceiver;
  let admin: string;
  const logLines: string[] = [];

  const refusal = async (call: Promise<unknown>) => {
    const error = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  };

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    system = await startTestManager({
      prefix: 'alerts-api',
      logger: jsonLogger({ level: 'debug', write: (line) => logLines.push(line) }),
    });
    ({ manager, admin: client, adminToken: admin } = system);
  }, 60_000);
  afterAll(async () => {
    await system?.stop();
    await receiver?.close();
  });

  const raise = async (kind: 'backup_failed' | 'gc_failed', now: Date) =>
    (await raiseAlert(manager.ctx.db, {
      id: randomUUID(),
      kind,
      subjectKey: randomUUID(),
      severity: 'warning',
      message: `${kind} for the test`,
      subject: subjectOf({}),
      now,
    }))!;

  it('lists alerts by state and kind, pages them, gets and acknowledges one', async () => {
    const a = await raise('backup_failed', new Date('2026-01-01T00:00:00Z'));
    const b = await raise('gc_failed', new Date('2026-01-01T00:01:00Z'));
    const c = await raise('backup_failed', new Date('2026-01-01T00:02:00Z'));
    await resolveAlert(manager.ctx.db, b.id, new Date('2026-01-01T00:03:00Z'));
    const first = await client.request('listAlerts', { query: { limit: 1 } });
    expect(first.items.map((x) => x.id)).toEqual([c.id]);
    const second = await client.request('listAlerts', { query: { limit: 1, cursor: first.next_cursor! } });
    expect(second.items.map((x) => x.id)).toEqual([a.id]);
    expect(second.next_cursor).toBeNull();
    expect((await client.request('listAlerts', { query: { state: 'resolved' } })).items).toMatchObject([
      { id: b.id, state: 'resolved', kind: 'gc_failed' },
    ]);
    expect(
      (await client.request('listAlerts', { query: { state: 'all', kind: 'gc_failed' } })).items,
    ).toHaveLength(1);
    expect(await client.request('getAlert', { params: { id: a.id } })).toMatchObject({
      id: a.id,
      state: 'open',
    });

    const acked = await client.request('acknowledgeAlert', { params: { id: a.id } });
    expect(acked).toMatchObject({ acknowledged_by: 'token test admin', state: 'open' });
    expect(acked.acknowledged_at).not.toBeNull();
    // Again: the first acknowledgement stands.
    expect(await client.request('acknowledgeAlert', { params: { id: a.id } })).toEqual(acked);
    const conflict = await refusal(client.request('acknowledgeAlert', { params: { id: b.id } }));
    expect(conflict.code).toBe('conflict');
    expect(conflict.message).toMatch(/was resolved at 2026-01-01T00:03:00.000Z/);
    expect((await refusal(client.request('getAlert', { params: { id: randomUUID() } }))).code).toBe(
      'not_found',
    );
  });

  it('refuses bad filters and bad webhooks with errors that say what is wrong', async () => {
    const badKind = await refusal(client.request('listAlerts', { query: { kind: 'disk_full' as never } }));
    expect(badKind).toMatchObject({ code: 'invalid_request' });
    expect(badKind.message).toMatch(/kind/);
    const badState = await refusal(client.request('listAlerts', { query: { state: 'closed' as never } }));
    expect(badState.message).toMatch(/state/);
    const ftp = await refusal(client.request('createWebhook', { body: { url: 'ftp://example.com/hook' } }));
    expect(ftp).toMatchObject({ code: 'invalid_request' });
    expect(ftp.message).toMatch(/url/);
    const withPassword = await refusal(
      client.request('createWebhook', { body: { url: 'https://u:p@example.com/hook' } }),
    );
    expect(withPassword.message).toMatch(/must not carry a user name or password/);
    const badEvent = await refusal(
      client.request('createWebhook', {
        body: { url: 'https://example.com/hook', events: ['backup.done' as never] },
      }),
    );
    expect(badEvent.message).toMatch(/events/);
    const none = await refusal(
      client.request('createWebhook', { body: { url: 'https://example.com/hook', events: [] } }),
    );
    expect(none.message).toMatch(/at least one event type/);
    const twice = await refusal(
      client.request('createWebhook', {
        body: { url: 'https://example.com/hook', events: ['alert.opened', 'alert.opened'] },
      }),
    );
    expect(twice.message).toMatch(/must not repeat an event type/);
    const extra = await refusal(
      client.request('createWebhook', { body: { url: 'https://example.com/hook', secret: 'mine' } as never }),
    );
    expect(extra.message).toMatch(/secret/);
  });

  it('creates a webhook with a secret shown once, tests it against a real server, lists and deletes it', async () => {
    const created = await client.request('createWebhook', {
      body: { url: receiver.url, description: 'pager' },
    });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(created.webhook).toMatchObject({
      url: receiver.url,
      description: 'pager',
      events: ['alert.opened', 'alert.resolved', 'alert.acknowledged'],
      last_status: null,
    });

    receiver.answer = () => ({ status: 202 });
    const ok = await client.request('testWebhook', { params: { id: created.webhook.id } });
    expect(ok).toMatchObject({ ok: true, status: 202, error: null });
    const request = receiver.received.at(-1)!;
    expect(request.headers['x-stowage-event']).toBe('webhook.test');
    expect(request.headers['x-stowage-delivery']).toBe(ok.delivery_id);
    expect(signatureIsValid(created.secret, request)).toBe(true);
    expect(JSON.parse(request.body)).toMatchObject({ type: 'webhook.test', alert: null });

    receiver.answer = () => ({ status: 503 });
    expect(await client.request('testWebhook', { params: { id: created.webhook.id } })).toMatchObject({
      ok: false,
      status: 503,
      error: 'answered 503',
    });

    const listed = await client.request('listWebhooks', {});
    expect(listed.items).toMatchObject([
      { id: created.webhook.id, last_status: 503, last_error: 'answered 503' },
    ]);
    expect(JSON.stringify(listed)).not.toContain(created.secret);
    expect(JSON.stringify(await client.getOpenApi())).not.toContain(created.secret);
    expect(logLines.join('')).not.toContain(created.secret);
    expect(logLines.some((line) => line.includes('"msg":"webhook tested"'))).toBe(true);

    await client.request('deleteWebhook', { params: { id: created.webhook.id } });
    expect((await client.request('listWebhooks', {})).items).toEqual([]);
    expect((await refusal(client.request('testWebhook', { params: { id: created.webhook.id } }))).code).toBe(
      'not_found',
    );
    expect(
      (await refusal(client.request('deleteWebhook', { params: { id: created.webhook.id } }))).code,
    ).toBe('not_found');
  });

  it('lets an operator acknowledge and a viewer read alerts; webhooks are an admin’s alone', async () => {
    const [operator, viewer] = [await system.clientFor('operator'), await system.clientFor('viewer')];
    const alert = await raise('backup_failed', new Date('2026-03-01T00:00:00Z'));
    expect((await viewer.request('listAlerts', {})).items.map((a) => a.id)).toContain(alert.id);
    expect((await refusal(viewer.request('acknowledgeAlert', { params: { id: alert.id } }))).code).toBe(
      'forbidden',
    );
    expect(await operator.request('acknowledgeAlert', { params: { id: alert.id } })).toMatchObject({
      acknowledged_by: 'token operator',
    });
    for (const caller of [operator, viewer]) {
      expect((await refusal(caller.request('listWebhooks', {}))).code).toBe('forbidden');
      expect(
        (await refusal(caller.request('createWebhook', { body: { url: 'https://example.com/hook' } }))).code,
      ).toBe('forbidden');
    }
  });

  describe('the CLI', () => {
    const cli = (...argv: string[]) => runCli(argv, { MANAGER_URL: manager.url, MANAGER_TOKEN: admin });

    it('adds, lists, tests and removes a webhook; the secret alone on stdout, once', async () => {
      const added = await cli('webhook', 'add', receiver.url, '--events', 'alert.opened,alert.resolved');
      expect(added).toMatchObject({ code: 0 });
      const secret = added.stdout.trim();
      expect(secret).toMatch(/^whsec_/);
      expect(added.stderr).toMatch(/shown once/);
      const id = /added webhook (\S+)/.exec(added.stderr)![1]!;

      const listed = await cli('webhook', 'list');
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(id);
      expect(listed.stdout).toContain('alert.opened,alert.resolved');
      expect(listed.stdout).not.toContain(secret);

      receiver.answer = () => ({ status: 200 });
      const tested = await cli('webhook', 'test', id);
      expect(tested.code).toBe(0);
      expect(tested.stdout).toMatch(/status:\s+200/);
      expect(signatureIsValid(secret, receiver.received.at(-1)!)).toBe(true);
      receiver.answer = () => ({ status: 500 });
      const failed = await cli('webhook', 'test', id);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toMatch(/failed its test: answered 500/);

      expect(await cli('webhook', 'remove', id)).toMatchObject({ code: 0 });
      expect((await cli('webhook', 'remove', id)).code).toBe(3);
    });

    it('refuses a bad event or state before sending anything', async () => {
      const badEvent = await cli('webhook', 'add', receiver.url, '--events', 'alert.opened,backup.done');
      expect(badEvent.code).toBe(2);
      expect(badEvent.stderr).toMatch(
        /--events must be one of alert.opened, alert.resolved, alert.acknowledged/,
      );
      const badState = await cli('alert', 'list', '--state', 'closed');
      expect(badState.code).toBe(2);
      expect((await cli('alert', 'ack', 'not-an-id')).code).toBe(2);
    });

    it('lists open alerts and acknowledges one', async () => {
      const alert = await raise('gc_failed', new Date('2026-02-01T00:00:00Z'));
      const listed = await cli('alert', 'list', '--kind', 'gc_failed');
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain(alert.id);
      expect(listed.stdout).toContain('gc_failed for the test');
      const acked = await cli('alert', 'ack', alert.id, '--json');
      expect(acked.code).toBe(0);
      expect(JSON.parse(acked.stdout)).toMatchObject({ id: alert.id, acknowledged_by: 'token test admin' });
      await resolveAlert(manager.ctx.db, alert.id, new Date('2026-02-01T00:05:00Z'));
      expect((await cli('alert', 'ack', alert.id)).code).toBe(4);
      expect((await cli('alert', 'list', '--kind', 'gc_failed')).stderr).toMatch(/no alerts/);
    });
  });
});

/** The loop as `manager serve` runs it: its real clock, probes and deliveries, ticking every 100 ms. */
describe('the alerts loop in a running manager', () => {
  let system: TestManager;
  let home: string;
  let manager: RunningManager;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    system = await startTestManager({ prefix: 'alerts-loop', env: { MANAGER_LOOP_INTERVAL_MS: '100' } });
    ({ home, manager } = system);
  }, 60_000);
  afterAll(async () => {
    await system?.stop();
    await receiver?.close();
  });

  it('tells a webhook of a failed backup, signed', async () => {
    const { ctx } = manager;
    const { secret } = await createWebhook(ctx, { url: receiver.url });
    const target = await insertTarget(ctx.db, {
      id: randomUUID(),
      name: 'fs',
      kind: 'filesystem',
      path: join(home, 'no-repository-here'),
      target_key: new Uint8Array(60),
      repository_id: randomUUID(),
      chunker: JSON.stringify({ min_size: 262144, avg_size: 1048576, max_size: 4194304 }),
    });
    const volume = await insertVolume(ctx.db, {
      id: randomUUID(),
      name: 'web',
      host_id: null,
      backend: 'local-file',
      locator: '/images/web.img',
      size: 1 << 20,
      state: 'available',
      backup_target_id: target.id,
    });
    await insertBackup(ctx.db, {
      id: randomUUID(),
      volume_id: volume.id,
      backup_target_id: target.id,
      state: 'failed',
      manifest_key: `manifests/${volume.id}/x`,
      started_at: new Date(),
      finished_at: new Date(),
      error: JSON.stringify({ code: 'unavailable', message: 'the agent went away' }),
    });
    // Polled, not timed: the loop ticks every 100 ms; the bound only keeps a broken loop from hanging.
    for (let i = 0; i < 300 && receiver.received.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const [delivery] = receiver.received;
    expect(delivery).toBeDefined();
    expect(signatureIsValid(secret, delivery!)).toBe(true);
    expect(JSON.parse(delivery!.body)).toMatchObject({
      type: 'alert.opened',
      alert: {
        kind: 'backup_failed',
        volume_id: volume.id,
        message: expect.stringContaining('the agent went away'),
      },
    });
  });
});
