import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertHost } from '../db/hosts.js';
import { insertVolume } from '../db/volumes.js';
import { generateToken } from '../secrets/tokens.js';
import type { RunningManager } from '../server.js';
import { runCli } from '../testing/cli.js';
import { startTestManager, type TestManager } from '../testing/manager.js';
import { EXIT } from './exit-codes.js';

// The CLI in process against a real manager (PGlite, no agent): the real client, the real server, real HTTP.

const cli = (argv: string[], env: NodeJS.ProcessEnv = {}) => runCli(argv, env, null);

let system: TestManager;
let home: string;
let manager: RunningManager;
let adminToken: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  system = await startTestManager({ prefix: 'manager-cli' });
  ({ home, manager, adminToken } = system);
  env = { MANAGER_URL: manager.url, MANAGER_TOKEN: adminToken };
});

afterAll(async () => {
  await system?.stop();
});

describe('tokens', () => {
  it('creates a token that works, lists it, revokes it, and a revoked token is refused', async () => {
    const created = await cli(['token', 'create', 'ci', '--role', 'operator', '--json'], env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(EXIT.ok);
    const answer = JSON.parse(created.stdout) as { token: { id: string; role: string }; secret: string };
    expect(answer.token.role).toBe('operator');

    // The new token itself lists tokens (operators read the inventory).
    const withNew = { MANAGER_URL: manager.url, MANAGER_TOKEN: answer.secret };
    const listed = await cli(['token', 'list', '--json'], env);
    expect(listed.code).toBe(EXIT.ok);
    const page = JSON.parse(listed.stdout) as { items: { id: string; name: string }[]; next_cursor: null };
    expect(page.items.map((t) => t.name)).toContain('ci');

    const table = await cli(['token', 'list'], env);
    expect(table.code).toBe(EXIT.ok);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+ROLE/);
    expect(table.stdout).toContain(answer.token.id);

    const revoked = await cli(['token', 'revoke', answer.token.id], env);
    expect(revoked).toMatchObject({ code: EXIT.ok, stderr: '' });
    expect(revoked.stdout).toBe(`revoked token ${answer.token.id}\n`);

    const refused = await cli(['token', 'list'], withNew);
    expect(refused.code).toBe(EXIT.unauthorized);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^manager: .+\n$/);
  });

  it('prints the secret alone on stdout, the note on stderr', async () => {
    const created = await cli(['token', 'create', 'piped'], env);
    expect(created.code).toBe(EXIT.ok);
    expect(created.stdout).toMatch(/^stw_[A-Za-z0-9_-]+\n$/);
    expect(created.stderr).toContain('shown once');
  });

  it('exits with the unauthorized code for a wrong token, in one line', async () => {
    const wrong = await cli(['token', 'list'], { MANAGER_URL: manager.url, MANAGER_TOKEN: generateToken() });
    expect(wrong.code).toBe(EXIT.unauthorized);
    expect(wrong.stderr.split('\n')).toHaveLength(2);
    expect(wrong.stderr).toMatch(/^manager: /);
    expect(wrong.stderr).toContain('MANAGER_TOKEN');
  });

  it('revoking an unknown token is not found', async () => {
    const missing = await cli(['token', 'revoke', randomUUID()], env);
    expect(missing.code).toBe(EXIT.notFound);
  });

  it('a name the server refuses is a usage error', async () => {
    const bad = await cli(['token', 'create', 'bad\u0007name'], env);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toMatch(/^manager: .*\n$/);
  });
});

describe('targets', () => {
  it('creates a filesystem target, prints its passphrase once with a warning, tests and deletes it', async () => {
    const dir = join(home, 'repo-a');
    const created = await cli(['target', 'create', 'nas', '--path', dir, '--avg-chunk-size', '512K'], env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(EXIT.ok);
    expect(created.stdout).toMatch(/^created target [0-9a-f-]{36} "nas" \(filesystem: /);
    expect(created.stdout).toMatch(/recovery passphrase: [0-9a-z-]{20,}\n/);
    expect(created.stdout).toContain('WARNING: shown once');
    const id = /created target ([0-9a-f-]{36})/.exec(created.stdout)![1]!;

    const tested = await cli(['target', 'test', id], env);
    expect(tested).toMatchObject({ code: EXIT.ok, stderr: '' });
    expect(tested.stdout).toMatch(/^ok: write ok .*read ok.*list ok.*delete ok/);

    const got = await cli(['target', 'get', id, '--json'], env);
    expect(got.code).toBe(EXIT.ok);
    expect(JSON.parse(got.stdout)).toMatchObject({
      id,
      name: 'nas',
      kind: 'filesystem',
      filesystem: { path: dir },
    });
    expect(JSON.parse(got.stdout).chunker.avg_size).toBe(512 * 1024);

    const byName = await cli(['target', 'get', 'nas', '--json'], env);
    expect(JSON.parse(byName.stdout).id).toBe(id);

    const listed = await cli(['target', 'list'], env);
    expect(listed.stdout).toContain(id);

    const again = await cli(['target', 'create', 'nas', '--path', join(home, 'repo-b')], env);
    expect(again.code).toBe(EXIT.conflict);

    const deleted = await cli(['target', 'delete', id, '--json'], env);
    expect(deleted.code).toBe(EXIT.ok);
    expect(JSON.parse(deleted.stdout)).toEqual({ id, deleted: true });
    expect((await cli(['target', 'get', id], env)).code).toBe(EXIT.notFound);
  });

  it('takes the passphrase from a file and then prints none', async () => {
    const file = join(home, 'passphrase');
    await writeFile(file, 'a long enough passphrase\n');
    const created = await cli(
      ['target', 'create', 'given', '--path', join(home, 'repo-c'), '--passphrase-file', file, '--json'],
      env,
    );
    expect(created.code).toBe(EXIT.ok);
    expect(JSON.parse(created.stdout).recovery_passphrase).toBeNull();
  });

  it('resolves a target by name in volume list', async () => {
    const byName = await cli(['volume', 'list', '--target', 'given', '--json'], env);
    expect(byName.code).toBe(EXIT.ok);
    expect(JSON.parse(byName.stdout)).toEqual({ items: [], next_cursor: null });
    const unknown = await cli(['volume', 'list', '--target', 'nope'], env);
    expect(unknown.code).toBe(EXIT.notFound);
  });
});

describe('lists and connections', () => {
  it('follows next_cursor with --all and shows one page with --limit', async () => {
    for (const name of ['page-1', 'page-2', 'page-3']) {
      expect((await cli(['token', 'create', name], env)).code).toBe(EXIT.ok);
    }
    const one = await cli(['token', 'list', '--limit', '2', '--json'], env);
    const first = JSON.parse(one.stdout) as { items: unknown[]; next_cursor: string | null };
    expect(first.items).toHaveLength(2);
    expect(first.next_cursor).not.toBeNull();
    const human = await cli(['token', 'list', '--limit', '2'], env);
    expect(human.stderr).toContain(`--cursor ${first.next_cursor}`);
    const next = await cli(['token', 'list', '--limit', '2', '--cursor', first.next_cursor!, '--json'], env);
    expect(JSON.parse(next.stdout).items).toHaveLength(2);

    const all = await cli(['token', 'list', '--all', '--json'], env);
    const everything = JSON.parse(all.stdout) as { items: { name: string }[]; next_cursor: null };
    expect(everything.next_cursor).toBeNull();
    expect(everything.items.map((t) => t.name)).toEqual(
      expect.arrayContaining(['page-1', 'page-2', 'page-3']),
    );
  });

  it("uses the embedded home's URL and admin token when MANAGER_URL and MANAGER_TOKEN are unset", async () => {
    const embedded = await mkdtemp(join(tmpdir(), 'stowage-manager-home-'));
    try {
      await writeFile(join(embedded, 'admin-token'), `${adminToken}\n`, { mode: 0o600 });
      const port = new URL(manager.url).port;
      const listed = await cli(['host', 'list', '--json'], { STOWAGE_HOME: embedded, PORT: port });
      expect(listed.stderr).toBe('');
      expect(JSON.parse(listed.stdout)).toEqual({ items: [], next_cursor: null });
      const tokenFile = await cli(['host', 'list', '--token-file', join(embedded, 'admin-token')], {
        MANAGER_URL: manager.url,
      });
      expect(tokenFile.code).toBe(EXIT.ok);
      expect(tokenFile.stderr).toBe('no hosts\n');
    } finally {
      await rm(embedded, { recursive: true, force: true });
    }
  });

  it('never sends the home token to a URL that is not loopback', async () => {
    const embedded = await mkdtemp(join(tmpdir(), 'stowage-manager-home-'));
    try {
      await writeFile(join(embedded, 'admin-token'), `${adminToken}\n`);
      const far = await cli(['host', 'list'], {
        STOWAGE_HOME: embedded,
        MANAGER_URL: 'http://203.0.113.9:8080',
      });
      expect(far.code).toBe(EXIT.usage);
      expect(far.stderr).toMatch(/^manager: no token for http:\/\/203\.0\.113\.9:8080/);
    } finally {
      await rm(embedded, { recursive: true, force: true });
    }
  });

  it('reports an unreachable manager with its own code and the system error', async () => {
    // A port that was just free: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const down = await cli(['volume', 'list'], {
      MANAGER_URL: `http://127.0.0.1:${port}`,
      MANAGER_TOKEN: adminToken,
    });
    expect(down.code).toBe(EXIT.unavailable);
    expect(down.stderr).toMatch(/^manager: cannot reach the manager .*ECONNREFUSED.*is the manager running/);
  });

  it('a missing job is not found', async () => {
    expect((await cli(['job', 'get', randomUUID()], env)).code).toBe(EXIT.notFound);
    expect((await cli(['job', 'watch', randomUUID()], env)).code).toBe(EXIT.notFound);
    expect((await cli(['backup', 'now', randomUUID()], env)).code).toBe(EXIT.notFound);
  });
});

describe('users and the audit log', () => {
  it('adds a user with a generated password that signs in, changes it, lists, audits and removes', async () => {
    const added = await cli(['user', 'add', 'ops', '--role', 'operator'], env);
    expect(added.code).toBe(EXIT.ok);
    const password = added.stdout.trim();
    expect(password).toMatch(/^[\w-]{24}$/);
    expect(added.stderr).toMatch(
      /^added user [0-9a-f-]{36} "ops" \(operator\); the password above is shown once/,
    );
    const signIn = (pw: string) =>
      fetch(`${manager.url}/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'ops', password: pw }),
      });
    expect((await signIn(password)).status).toBe(200);

    const file = join(home, 'ops.pw');
    await writeFile(file, 'a new long password\n');
    expect((await cli(['user', 'passwd', 'ops', '--password-file', file], env)).code).toBe(EXIT.ok);
    expect((await signIn(password)).status).toBe(401);
    expect((await signIn('a new long password')).status).toBe(200);
    const promoted = await cli(['user', 'passwd', 'ops', '--role', 'admin'], env);
    expect(promoted.stdout).toBe('ops is now admin\n');

    const listed = await cli(['user', 'list'], env);
    expect(listed.stdout).toMatch(/^ID +NAME +ROLE +CREATED +LAST SIGN-IN\n.* ops +admin /);
    expect((await cli(['user', 'add', 'ops'], env)).code).toBe(EXIT.conflict);
    expect((await cli(['user', 'add', 'Not A Name'], env)).code).toBe(EXIT.usage);

    const audit = await cli(['audit', 'list', '--action', 'updateUser', '--json'], env);
    const entries = JSON.parse(audit.stdout) as { items: { actor: { name: string } }[] };
    expect(entries.items).toHaveLength(2);
    expect(entries.items[0]?.actor.name).toBe('test admin');
    expect(audit.stdout).not.toContain('a new long password');
    const failed = await cli(['audit', 'list', '--failed', '--action', 'signIn'], env);
    expect(failed.stdout).toMatch(/anonymous:ops +signIn +- +401 unauthorized/);

    // The only admin user stays one (tokens do not count: a console needs someone to sign in as admin).
    const last = await cli(['user', 'remove', 'ops'], env);
    expect(last.code).toBe(EXIT.conflict);
    expect(last.stderr).toContain('ops is the last admin');
    expect((await cli(['user', 'passwd', 'ops', '--role', 'viewer'], env)).code).toBe(EXIT.conflict);
    await cli(['user', 'add', 'root', '--role', 'admin'], env);
    expect((await cli(['user', 'remove', 'ops'], env)).code).toBe(EXIT.ok);
    expect((await cli(['user', 'remove', 'ops'], env)).code).toBe(EXIT.notFound);
  });
});

describe('volume schedule', () => {
  it("sets a volume's cron, zone and retention, prints the next five fire times, and switches it off", async () => {
    const host = await insertHost(manager.ctx.db, {
      id: randomUUID(),
      name: 'sched-host',
      url: 'http://127.0.0.1:1',
      agentToken: new Uint8Array(40),
      backends: [],
      now: new Date(),
    });
    const volume = await insertVolume(manager.ctx.db, {
      id: randomUUID(),
      name: 'sched',
      host_id: host.id,
      backend: 'local-file',
      locator: '/images/sched.img',
      size: 1 << 20,
      state: 'available',
    });
    const set = await cli(
      [
        'volume',
        'schedule',
        volume.id,
        '--cron',
        '0 2 * * *',
        '--timezone',
        'Europe/Paris',
        '--keep-daily',
        '7',
      ],
      env,
    );
    expect(set.stderr).toBe('');
    expect(set.code).toBe(EXIT.ok);
    expect(set.stdout).toMatch(
      /^schedule: 0 2 \* \* \* \(Europe\/Paris\), on, \w+\nretention: keep daily 7\nnext fire times:\n/,
    );
    const times = set.stdout.split('\n').filter((line) => line.startsWith('  '));
    expect(times).toHaveLength(5);
    // 02:00 in Paris is 01:00 or 00:00 UTC, by the season.
    for (const t of times) expect(t.trim()).toMatch(/T0[01]:00:00\.000Z$/);

    const off = await cli(['volume', 'schedule', volume.id, '--disable', '--no-retention', '--json'], env);
    const answer = JSON.parse(off.stdout) as {
      volume: { schedule: { enabled: boolean; retention: unknown } };
    };
    expect(answer.volume.schedule).toMatchObject({ enabled: false, retention: null });
    expect((await cli(['volume', 'schedule', volume.id], env)).code).toBe(EXIT.usage);
    expect((await cli(['volume', 'schedule', volume.id, '--cron', 'not cron'], env)).code).toBe(EXIT.usage);
    expect((await cli(['volume', 'schedule', volume.id, '--enable', '--disable'], env)).code).toBe(
      EXIT.usage,
    );
  });
});
