import { randomUUID } from 'node:crypto';
import { type ApiError, CSRF_HEADER, ManagerClient, type Session } from '@stowage/api';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { insertAuditEntry } from './db/audit.js';
import { sessionSettings } from './http/handlers-users.js';
import type { RunningManager } from './server.js';
import { SIGN_IN_FAILURES_PER_NAME } from './services/users.js';
import { startTestManager, type TestManager } from './testing/manager.js';

/** A browser's cookie jar, as far as one cookie goes: what the console's client runs with. */
function browser(baseUrl: string) {
  let cookie: string | undefined;
  let setCookie: string | undefined;
  let csrf: string | undefined;
  const jarFetch: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    if (cookie !== undefined) headers.set('cookie', cookie);
    const response = await fetch(input, { ...init, headers });
    const set = response.headers.getSetCookie()[0];
    if (set !== undefined) {
      setCookie = set;
      const pair = set.split(';')[0]!;
      cookie = pair.endsWith('=') ? undefined : pair;
    }
    return response;
  };
  const client = new ManagerClient({ baseUrl, fetch: jarFetch, csrfToken: () => csrf });
  return {
    client,
    jarFetch,
    get cookie() {
      return cookie;
    },
    get setCookie() {
      return setCookie;
    },
    async signIn(name: string, password: string): Promise<Session> {
      const session = await client.signIn({ name, password });
      csrf = session.csrf_token;
      return session;
    },
    forgetCsrf() {
      csrf = undefined;
    },
  };
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as ApiError,
  );

describe('users, sessions, roles and the audit log', () => {
  let system: TestManager;
  let home: string;
  let manager: RunningManager;
  let admin: ManagerClient;
  let adminToken: string;

  beforeAll(async () => {
    system = await startTestManager({ prefix: 'users' });
    ({ home, manager, admin, adminToken } = system);
  }, 60_000);
  afterAll(async () => {
    await system?.stop();
  });

  it('signs in with a name and password into an HttpOnly, SameSite=Strict cookie, and signs out', async () => {
    await admin.createUser({ name: 'alice', role: 'admin', password: 'correct horse battery' });
    const alice = browser(manager.url);
    const session = await alice.signIn('alice', 'correct horse battery');
    expect(session.user).toMatchObject({ name: 'alice', role: 'admin' });
    expect(session.csrf_token.length).toBeGreaterThanOrEqual(40);
    expect(alice.setCookie).toMatch(/^stowage_session=[\w-]{43}; /);
    expect(alice.setCookie).toMatch(/; HttpOnly/);
    expect(alice.setCookie).toMatch(/; SameSite=Strict/);
    // Plain http here: a Secure cookie would never come back.
    expect(alice.setCookie).not.toMatch(/Secure/);
    // The cookie alone is the credential: no bearer token.
    expect((await alice.client.listVolumes()).items).toEqual([]);
    expect((await alice.client.getSession()).user.name).toBe('alice');
    expect((await alice.client.getSession()).csrf_token).toBe(session.csrf_token);

    await alice.client.signOut();
    expect(alice.cookie).toBeUndefined();
    expect((await failure(alice.client.getSession()))?.code).toBe('unauthorized');
    // A copy of the old cookie is dead too: the session row is gone, not only the browser's cookie.
    const replay = await fetch(`${manager.url}/v1/volumes`, {
      headers: { cookie: alice.setCookie!.split(';')[0]! },
    });
    expect(replay.status).toBe(401);
  });

  it('marks the cookie Secure when the manager is reached over TLS', () => {
    const config = parseConfig({ STOWAGE_HOME: home, MANAGER_PUBLIC_URL: 'https://backup.example.com' });
    expect(sessionSettings(config)).toEqual({ ttlMs: 12 * 3_600_000, secure: true });
    expect(sessionSettings(parseConfig({ STOWAGE_HOME: home, MANAGER_SESSION_HOURS: '2' })).ttlMs).toBe(
      7_200_000,
    );
  });

  it('refuses a wrong password and an unknown name with the same words', async () => {
    const wrong = await failure(browser(manager.url).signIn('alice', 'not the password'));
    const unknown = await failure(browser(manager.url).signIn('mallory', 'not the password'));
    expect(wrong?.code).toBe('unauthorized');
    expect(unknown?.code).toBe('unauthorized');
    expect(wrong?.message).toBe(unknown?.message);
  });

  it("refuses a session's state-changing request without its CSRF token", async () => {
    await admin.createUser({ name: 'carol', role: 'operator', password: 'carol password 1' });
    const carol = browser(manager.url);
    await carol.signIn('carol', 'carol password 1');
    carol.forgetCsrf();
    const refused = await failure(
      carol.client.createVolume({ name: 'v', host_id: randomUUID(), backend: 'file', path: '/x' } as never),
    );
    expect(refused?.code).toBe('forbidden');
    expect(refused?.message).toContain('X-CSRF-Token'.toLowerCase());
    // A bearer token needs none: a browser never sends one on its own.
    expect((await admin.listUsers()).items.map((u) => u.name)).toContain('carol');
  });

  it('enforces roles in the API for users as for tokens', async () => {
    await admin.createUser({ name: 'victor', role: 'viewer', password: 'victor password' });
    const victor = browser(manager.url);
    await victor.signIn('victor', 'victor password');
    expect((await victor.client.listVolumes()).items).toEqual([]);
    const deleteBackup = await failure(victor.client.deleteBackup(randomUUID()));
    expect(deleteBackup?.code).toBe('forbidden');
    expect(deleteBackup?.message).toBe(`viewer victor cannot DELETE /v1/backups/{id}`);
    expect((await failure(victor.client.listUsers()))?.code).toBe('forbidden');
    expect((await failure(victor.client.listAudit()))?.code).toBe('forbidden');

    const carol = browser(manager.url);
    await carol.signIn('carol', 'carol password 1');
    // Operators run backups and restores, not targets or people.
    expect((await failure(carol.client.deleteBackup(randomUUID())))?.code).toBe('not_found');
    expect(
      (await failure(carol.client.createTarget({ kind: 'directory', name: 't', path: '/tmp/t' } as never)))
        ?.code,
    ).toBe('forbidden');
    expect(
      (await failure(carol.client.createUser({ name: 'eve', role: 'admin', password: 'x'.repeat(12) })))
        ?.code,
    ).toBe('forbidden');

    // A new role applies to the next request of a session already open.
    const victorId = (await victor.client.getSession()).user.id;
    await admin.updateUser(victorId, { role: 'operator' });
    expect((await failure(victor.client.deleteBackup(randomUUID())))?.code).toBe('not_found');
  });

  it('ends every session of a user whose password changes, and of a removed user', async () => {
    await admin.createUser({ name: 'dave', role: 'viewer', password: 'dave password 1' });
    const dave = browser(manager.url);
    const { user } = await dave.signIn('dave', 'dave password 1');
    await admin.updateUser(user.id, { password: 'dave password 2' });
    expect((await failure(dave.client.listVolumes()))?.code).toBe('unauthorized');
    expect((await failure(dave.signIn('dave', 'dave password 1')))?.code).toBe('unauthorized');
    await dave.signIn('dave', 'dave password 2');
    await admin.deleteUser(user.id);
    expect((await failure(dave.client.listVolumes()))?.code).toBe('unauthorized');
    expect((await failure(admin.deleteUser(user.id)))?.code).toBe('not_found');
  });

  it('ends a session at its expiry', async () => {
    await admin.createUser({ name: 'erin', role: 'viewer', password: 'erin password 1' });
    const erin = browser(manager.url);
    await erin.signIn('erin', 'erin password 1');
    await sql`UPDATE user_session SET expires_at = now() - interval '1 second' WHERE user_id IN
      (SELECT id FROM app_user WHERE name = 'erin')`.execute(manager.ctx.db);
    expect((await failure(erin.client.listVolumes()))?.code).toBe('unauthorized');
  });

  it('keeps one admin: the last cannot be removed or demoted', async () => {
    const users = (await admin.listUsers()).items;
    const admins = users.filter((u) => u.role === 'admin');
    expect(admins.map((u) => u.name)).toEqual(['alice']);
    const alice = admins[0]!;
    expect((await failure(admin.deleteUser(alice.id)))?.code).toBe('conflict');
    expect((await failure(admin.updateUser(alice.id, { role: 'viewer' })))?.message).toContain('last admin');
    const carol = users.find((u) => u.name === 'carol')!;
    await admin.updateUser(carol.id, { role: 'admin' });
    await admin.updateUser(alice.id, { role: 'viewer' });
    await admin.updateUser(alice.id, { role: 'admin' });
  });

  it('validates users: names, roles, password length, duplicates', async () => {
    const bad = [
      { name: 'Bob', role: 'viewer', password: 'long enough password' },
      { name: 'bob', role: 'root', password: 'long enough password' },
      { name: 'bob', role: 'viewer', password: 'short' },
    ];
    for (const body of bad)
      expect((await failure(admin.createUser(body as never)))?.code, JSON.stringify(body)).toBe(
        'invalid_request',
      );
    const duplicate = await failure(
      admin.createUser({ name: 'alice', role: 'viewer', password: 'x'.repeat(12) }),
    );
    expect(duplicate?.code).toBe('conflict');
  });

  it('holds a name after ten wrong passwords, even with the right one, and says when to retry', async () => {
    await admin.createUser({ name: 'frank', role: 'viewer', password: 'frank password 1' });
    for (let i = 0; i < SIGN_IN_FAILURES_PER_NAME; i++)
      expect((await failure(browser(manager.url).signIn('frank', `guess ${i}`)))?.code).toBe('unauthorized');
    const held = await fetch(`${manager.url}/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'frank', password: 'frank password 1' }),
    });
    expect(held.status).toBe(429);
    expect(held.headers.get('retry-after')).toBe('900');
    expect(((await held.json()) as { code: string }).code).toBe('rate_limited');
    // Another name from the same address is not held.
    await browser(manager.url).signIn('carol', 'carol password 1');
  });

  it('records every state-changing call, with its actor and outcome, and never a secret', async () => {
    const gina = browser(manager.url);
    await admin.createUser({ name: 'gina', role: 'viewer', password: 'gina secret password' });
    await gina.signIn('gina', 'gina secret password');
    await failure(gina.client.deleteBackup('6f1d0c1e-0000-4000-8000-000000000001'));
    await failure(browser(manager.url).signIn('gina', 'gina wrong password'));
    const token = await admin.createToken({ name: 'ci', role: 'operator' });
    await admin.listVolumes(); // a read: not recorded

    const entries = (await admin.listAudit({ limit: 500 })).items;
    const text = JSON.stringify(entries);
    for (const secret of ['gina secret password', 'gina wrong password', token.secret, adminToken])
      expect(text).not.toContain(secret);
    expect(entries.some((e) => e.method === 'GET')).toBe(false);

    const [newest] = entries;
    expect(newest).toMatchObject({
      action: 'createToken',
      actor: { kind: 'token', name: 'test admin', role: 'admin' },
      outcome: 'ok',
      status: 201,
      resource: { id: token.token.id },
    });
    expect(entries[1]).toMatchObject({
      action: 'signIn',
      actor: { kind: 'anonymous', id: null, name: 'gina' },
      outcome: 'error',
      status: 401,
      error_code: 'unauthorized',
    });
    expect(entries[1]?.remote).toMatch(/127\.0\.0\.1/);
    expect(entries[2]).toMatchObject({
      action: 'deleteBackup',
      actor: { kind: 'user', name: 'gina', role: 'viewer' },
      outcome: 'error',
      status: 403,
      resource: { id: '6f1d0c1e-0000-4000-8000-000000000001' },
    });
    expect(entries[3]).toMatchObject({
      action: 'signIn',
      actor: { kind: 'user', name: 'gina' },
      outcome: 'ok',
    });

    const signIns = await admin.listAudit({ action: 'signIn', outcome: 'error', actor: 'gina' });
    expect(signIns.items).toHaveLength(1);
    const paged = await admin.listAudit({ limit: 2 });
    const next = await admin.listAudit({ limit: 2, cursor: paged.next_cursor! });
    expect(next.items[0]?.id).toBe(entries[2]?.id);
  });

  it('folds a flood of unauthenticated calls into one entry that counts them', async () => {
    const flood = await Promise.all(
      Array.from({ length: 30 }, () =>
        fetch(`${manager.url}/v1/backup_targets/${randomUUID()}/gc`, {
          method: 'POST',
          headers: { authorization: 'Bearer stw_not_a_token', 'content-type': 'application/json' },
          body: '{}',
        }),
      ),
    );
    expect(flood.map((r) => r.status)).toEqual(Array(30).fill(401));
    const entries = (await admin.listAudit({ action: 'startGc', outcome: 'error' })).items;
    // Concurrent requests may each begin a row before any is committed; every call is counted either way.
    expect(entries.length).toBeGreaterThanOrEqual(1);
    expect(entries.length).toBeLessThan(30);
    expect(entries.reduce((n, e) => n + e.repeats, 0)).toBe(30);
    const [entry] = entries;
    expect(entry).toMatchObject({ actor: { kind: 'anonymous' }, status: 401, error_code: 'unauthorized' });
    expect(entry?.remote).toMatch(/127\.0\.0\.1/);
  });

  it('keeps API tokens working for scripts, each with its role', async () => {
    const made = await admin.createToken({ name: 'reader', role: 'viewer' });
    const reader = new ManagerClient({ baseUrl: manager.url, token: made.secret });
    expect((await reader.listVolumes()).items).toEqual([]);
    expect((await failure(reader.deleteBackup(randomUUID())))?.message).toBe(
      'a viewer token cannot DELETE /v1/backups/{id}',
    );
    // A token beats a cookie: the request is the token's, with the token's role.
    const alice = browser(manager.url);
    await alice.signIn('alice', 'correct horse battery');
    const both = await alice.jarFetch(`${manager.url}/v1/users`, {
      headers: { authorization: `Bearer ${made.secret}` },
    });
    expect(both.status).toBe(403);
    expect(CSRF_HEADER).toBe('x-csrf-token');
  });
});

describe('audit retention', () => {
  it('deletes audit rows older than MANAGER_AUDIT_RETENTION_DAYS, and keeps the rest', async () => {
    const system = await startTestManager({
      prefix: 'audit-retention',
      env: { MANAGER_AUDIT_RETENTION_DAYS: '30', MANAGER_LOOP_INTERVAL_MS: '100' },
    });
    try {
      const { db } = system.manager.ctx;
      const entry = (daysAgo: number) =>
        insertAuditEntry(db, {
          id: randomUUID(),
          at: new Date(Date.now() - daysAgo * 86_400_000),
          actor: { kind: 'token', id: null, name: 'old', role: 'admin' },
          action: `call${daysAgo}`,
          method: 'POST',
          path: '/v1/x',
          resource: {},
          outcome: 'ok',
          status: 200,
          errorCode: null,
          remote: null,
        });
      await Promise.all([entry(400), entry(31), entry(29), entry(1)]);
      await expect
        .poll(async () => (await system.admin.listAudit({ actor: 'old' })).items.map((e) => e.action), {
          timeout: 10_000,
        })
        .toEqual(['call1', 'call29']);
    } finally {
      await system.stop();
    }
  });
});
