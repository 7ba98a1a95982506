import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { GcRun } from '@stowage/api';
import { DEFAULT_CHUNKER_PARAMS } from '@stowage/chunker';
import { Repository } from '@stowage/engine';
import { DEFAULT_SEGMENT_ENTRIES, FORMAT_VERSION } from '@stowage/format';
import { openObjectStore } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningManager } from '../server.js';
import { runCli } from '../testing/cli.js';
import { TEST_KDF } from '../testing/embedded.js';
import { startTestManager, type TestManager } from '../testing/manager.js';
import { EXIT } from './exit-codes.js';

// `target import`, `backup index-rebuild`, `target gc` and `target gc-runs` in process: the first two against a
// real manager (PGlite) over real HTTP and a real filesystem repository; the GC commands against a stand-in
// server that records what they sent (the manager's GC routes answer 503 until their server side lands).

const cli = (argv: string[], env: NodeJS.ProcessEnv = {}) => runCli(argv, env);

const PASSPHRASE = 'recovery passphrase for the CLI test';

/** A repository made the way a standalone agent makes one, holding `count` committed roots. */
async function repositoryWithManifests(dir: string, count: number) {
  const store = openObjectStore(`file://${dir}`);
  const repository = await Repository.init(store, {
    passphrase: PASSPHRASE,
    chunker: DEFAULT_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  const volumeId = randomUUID();
  for (let i = 0; i < count; i++) {
    const backupId = randomUUID();
    const size = (i + 1) * 4096;
    const root = repository.encodeManifest({
      version: FORMAT_VERSION,
      backupId,
      volumeId,
      volumeName: 'cli-volume',
      volumeSize: size,
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)),
      chunker: repository.config.chunker,
      entryCount: 1,
      chunkCount: 0,
      chunkBytes: 0,
      holeBytes: size,
      segmentEntries: DEFAULT_SEGMENT_ENTRIES,
      segments: randomBytes(32),
    });
    await store.put(`manifests/${volumeId}/${backupId}`, root);
  }
  return { repository, store, volumeId };
}

describe('target import and backup index-rebuild against a real manager', () => {
  let system: TestManager;
  let home: string;
  let manager: RunningManager;
  let env: NodeJS.ProcessEnv;
  let passphraseFile: string;

  beforeAll(async () => {
    system = await startTestManager({ prefix: 'manager-dr-cli' });
    ({ home, manager } = system);
    env = { MANAGER_URL: manager.url, MANAGER_TOKEN: system.adminToken };
    passphraseFile = join(home, 'passphrase');
    await writeFile(passphraseFile, `${PASSPHRASE}\n`);
  }, 60_000);
  afterAll(async () => {
    await system?.stop();
  });

  it('imports a repository with its passphrase; a wrong one stores nothing', async () => {
    const dir = join(home, 'repo-import');
    const { repository } = await repositoryWithManifests(dir, 0);
    const wrongFile = join(home, 'wrong');
    await writeFile(wrongFile, 'not the passphrase\n');
    const wrong = await cli(['target', 'import', 'nas', '--path', dir, '--passphrase-file', wrongFile], env);
    expect(wrong.code).toBe(EXIT.failure);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr).toMatch(/^manager: the recovery passphrase does not open the repository at file:/);
    expect(JSON.parse((await cli(['target', 'list', '--json'], env)).stdout).items).toEqual([]);

    const imported = await cli(
      ['target', 'import', 'nas', '--path', dir, '--passphrase-file', passphraseFile, '--gc-hour', '4'],
      env,
    );
    expect(imported.code, imported.stderr).toBe(EXIT.ok);
    expect(imported.stdout).toMatch(
      new RegExp(
        `^imported target [0-9a-f-]{36} "nas" \\(filesystem: ${dir}\\), repository ${repository.config.repositoryId}\\n$`,
      ),
    );
    expect(imported.stderr).toMatch(/^next, record its backups: manager backup index-rebuild --target /);
    const got = JSON.parse((await cli(['target', 'get', 'nas', '--json'], env)).stdout);
    expect(got).toMatchObject({ gc_hour: 4, repository_id: repository.config.repositoryId });

    const again = await cli(
      ['target', 'import', 'nas-again', '--path', dir, '--passphrase-file', passphraseFile, '--json'],
      env,
    );
    expect(again.code).toBe(EXIT.conflict);
    expect(again.stderr).toMatch(/is already target/);

    const nothing = await cli(
      ['target', 'import', 'empty', '--path', join(home, 'nothing'), '--passphrase-file', passphraseFile],
      env,
    );
    expect(nothing.code).toBe(EXIT.notFound);
    expect(nothing.stderr).toMatch(/holds no Stowage repository/);
  });

  it("refuses a key file copied in from another repository: its key does not match this config's MAC", async () => {
    const victim = join(home, 'repo-victim');
    const other = join(home, 'repo-other');
    await repositoryWithManifests(victim, 0);
    const { store: otherStore } = await repositoryWithManifests(other, 0);
    // Same passphrase, another repository: its key file opens with it, but holds the other target's key.
    const victimStore = openObjectStore(`file://${victim}`);
    for await (const info of victimStore.list('keys/')) await victimStore.delete(info.key);
    for await (const info of otherStore.list('keys/'))
      await victimStore.put(info.key, await otherStore.get(info.key));
    const refused = await cli(
      ['target', 'import', 'victim', '--path', victim, '--passphrase-file', passphraseFile],
      env,
    );
    expect(refused.code).toBe(EXIT.failure);
    expect(refused.stderr).toMatch(
      /a key file at file:.* opened, but its key does not match the repository's config/,
    );
    const names = JSON.parse((await cli(['target', 'list', '--json'], env)).stdout).items.map(
      (t: { name: string }) => t.name,
    );
    expect(names).not.toContain('victim');
  });

  it('rebuilds batch by batch with progress on stderr, the totals on stdout; a second run records nothing', async () => {
    const dir = join(home, 'repo-rebuild');
    await repositoryWithManifests(dir, 5);
    const imported = await cli(
      ['target', 'import', 'clean', '--path', dir, '--passphrase-file', passphraseFile, '--json'],
      env,
    );
    const id = JSON.parse(imported.stdout).target.id as string;

    const first = await cli(['backup', 'index-rebuild', '--target', 'clean', '--batch', '2'], env);
    expect(first.code, first.stderr).toBe(EXIT.ok);
    expect(first.stderr.trim().split('\n')).toEqual([
      'batch 1: 2 manifests read, 2 backups recorded, 0 already known, 1 archived volumes recorded',
      'batch 2: 4 manifests read, 4 backups recorded, 0 already known, 1 archived volumes recorded',
      'batch 3: 5 manifests read, 5 backups recorded, 0 already known, 1 archived volumes recorded',
    ]);
    expect(first.stdout).toMatch(/^target: +[0-9a-f-]{36}\nmanifests: +5\nrecorded: +5\n/);

    const second = await cli(['backup', 'index-rebuild', '--target', id, '--json'], env);
    expect(second.code).toBe(EXIT.ok);
    expect(JSON.parse(second.stdout)).toMatchObject({
      backup_target_id: id,
      batches: 1,
      manifests: 5,
      inserted: 0,
      existing: 5,
      damaged: 0,
      problems: [],
      next_start_after: null,
    });
    const backups = JSON.parse((await cli(['backup', 'list', '--target', id, '--json'], env)).stdout);
    expect(backups.items).toHaveLength(5);
  });

  it('lists each damaged manifest on stderr and exits 1 once the rest is recorded', async () => {
    const dir = join(home, 'repo-damaged');
    const { store, volumeId } = await repositoryWithManifests(dir, 3);
    const damaged = `manifests/${volumeId}/${randomUUID()}`;
    await store.put(damaged, randomBytes(200));
    await cli(['target', 'import', 'damaged', '--path', dir, '--passphrase-file', passphraseFile], env);

    const result = await cli(['backup', 'index-rebuild', '--target', 'damaged', '--json'], env);
    expect(result.code).toBe(EXIT.failure);
    expect(result.stderr).toContain(`not recorded: ${damaged} (integrity): integrity check failed`);
    expect(result.stderr).toMatch(
      /manager: 1 manifest\(s\) could not be recorded \(listed above\); every other backup is recorded\n$/,
    );
    const totals = JSON.parse(result.stdout);
    expect(totals).toMatchObject({ manifests: 4, inserted: 3, damaged: 1 });
    expect(totals.problems).toEqual([
      { manifest_key: damaged, kind: 'integrity', message: expect.stringMatching(/integrity check failed/) },
    ]);
  });

  it('says how to resume when the manager goes away mid-rebuild', async () => {
    const id = randomUUID();
    const result = await cli(
      ['backup', 'index-rebuild', '--target', id, '--start-after', `manifests/${randomUUID()}/x`],
      { MANAGER_URL: 'http://127.0.0.1:9', MANAGER_TOKEN: 'stw_test' },
    );
    expect(result.code).toBe(EXIT.unavailable);
    expect(result.stderr).toMatch(
      new RegExp(`resume it with: manager backup index-rebuild --target ${id} --start-after manifests/`),
    );
  });
});

describe('usage errors of the recovery and GC commands', () => {
  const env = { MANAGER_URL: 'http://127.0.0.1:9', MANAGER_TOKEN: 'stw_test' };
  it.each([
    [['target', 'import', 'x', '--path', '/srv/x'], /missing --passphrase-file FILE/],
    [['target', 'import', 'x', '--passphrase-file', '/p'], /one location: --path DIR or --s3-bucket BUCKET/],
    [['target', 'import', '--path', '/srv/x'], /missing NAME/],
    [['target', 'import', 'x', '--path', '/srv/x', '--passphrase-file', '/nonexistent'], /cannot read/],
    [['backup', 'index-rebuild'], /missing --target TARGET/],
    [
      ['backup', 'index-rebuild', '--target', 't', '--batch', '0'],
      /--batch must be an integer from 1 to 10000/,
    ],
    [
      ['backup', 'index-rebuild', '--target', 't', '--volume-backend', 'tape'],
      /--volume-backend must be one of/,
    ],
    [['backup', 'index-rebuild', '--target', 't', '--start-after', 'chunks/x'], /must be a manifest key/],
    [['target', 'gc'], /missing ID/],
    [['target', 'gc', 't', '--dry-run=yes'], /option --dry-run takes no value/],
    [['target', 'gc-runs', 't', '--all', '--limit', '3'], /options --all and --limit exclude each other/],
  ])('%j is a usage error', async (argv, message) => {
    const result = await cli(argv, env);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
  });
});

describe('target gc and target gc-runs', () => {
  // A stand-in for the manager's GC routes: records each request, answers as routes-gc.ts says.
  let server: Server;
  let url: string;
  const requests: { method: string; url: string; auth: string | undefined }[] = [];
  const targetId = randomUUID();
  const gcRun = (dryRun: boolean): GcRun => ({
    id: randomUUID(),
    backup_target_id: targetId,
    state: 'running',
    phase: 'mark',
    trigger: 'api',
    dry_run: dryRun,
    grace_seconds: 86_400,
    cutoff: '2026-12-01T12:00:00.000Z',
    started_at: '2026-12-02T12:00:00.000Z',
    finished_at: null,
    duration_seconds: null,
    manifests: 0,
    packs_listed: 0,
    packs_live: 0,
    packs_deleted: 0,
    segments_listed: 0,
    segments_live: 0,
    segments_deleted: 0,
    index_objects_listed: 0,
    index_objects_deleted: 0,
    bytes_listed: 0,
    bytes_freed: 0,
    error: null,
  });
  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization });
      const path = new URL(req.url!, 'http://x');
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && path.pathname === `/v1/backup_targets/${targetId}/gc`) {
        res.statusCode = 202;
        res.end(JSON.stringify(gcRun(path.searchParams.get('dry_run') === 'true')));
      } else if (req.method === 'GET' && path.pathname === `/v1/backup_targets/${targetId}/gc_runs`) {
        res.end(JSON.stringify({ items: [gcRun(true), gcRun(false)], next_cursor: null }));
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ code: 'not_found', message: `no route ${req.method} ${path.pathname}` }));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('starts a run with dry_run as asked and prints it', async () => {
    const env = { MANAGER_URL: url, MANAGER_TOKEN: 'stw_gc' };
    const planned = await cli(['target', 'gc', targetId, '--dry-run'], env);
    expect(planned.code, planned.stderr).toBe(EXIT.ok);
    expect(requests.at(-1)).toEqual({
      method: 'POST',
      url: `/v1/backup_targets/${targetId}/gc?dry_run=true`,
      auth: 'Bearer stw_gc',
    });
    expect(planned.stdout).toMatch(/\ndry run: +yes \(nothing is deleted\)\n/);
    expect(planned.stderr).toContain(`follow it with: manager target gc-runs ${targetId}`);

    const swept = await cli(['target', 'gc', targetId, '--json'], env);
    expect(requests.at(-1)?.url).toBe(`/v1/backup_targets/${targetId}/gc?dry_run=false`);
    expect(JSON.parse(swept.stdout)).toMatchObject({ backup_target_id: targetId, dry_run: false });
  });

  it('lists runs as a table, or as the page with --json', async () => {
    const env = { MANAGER_URL: url, MANAGER_TOKEN: 'stw_gc' };
    const table = await cli(['target', 'gc-runs', targetId, '--limit', '5'], env);
    expect(table.code, table.stderr).toBe(EXIT.ok);
    expect(requests.at(-1)?.url).toBe(`/v1/backup_targets/${targetId}/gc_runs?limit=5`);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID +STATE +PHASE +TRIGGER +DRY RUN +STARTED +TOOK +DELETED +FREED$/);
    expect(lines).toHaveLength(3);
    const page = JSON.parse((await cli(['target', 'gc-runs', targetId, '--json'], env)).stdout);
    expect(page.items).toHaveLength(2);
    expect(page.next_cursor).toBeNull();
  });

  it('exits with the manager’s answer: a target it does not know is not found', async () => {
    const result = await cli(['target', 'gc', randomUUID()], { MANAGER_URL: url, MANAGER_TOKEN: 'stw_gc' });
    expect(result.code).toBe(EXIT.notFound);
  });
});
