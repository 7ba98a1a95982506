import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ApiError, type IndexRebuildResult, type ManagedJob, type ManagerClient } from '@stowage/api';
import { DEFAULT_CHUNKER_PARAMS } from '@stowage/chunker';
import { Repository } from '@stowage/engine';
import { DEFAULT_SEGMENT_ENTRIES, FORMAT_VERSION } from '@stowage/format';
import { type ObjectStore, openObjectStore } from '@stowage/object-store';
import { startS3rver, type TestS3Server } from '@stowage/object-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from './cli/exit-codes.js';
import { run } from './cli/main.js';
import { startTestSystem, TEST_KDF, type TestSystem } from './testing/embedded.js';
import { postgresUnavailableReason, startPostgres, type TestPostgres } from './testing/postgres.js';

/**
 * Disaster recovery end to end (issue 10, point 7): a real manager and a real agent back up into a real S3
 * server (s3rver, over HTTP); the database is then dropped (the first system is stopped and its home, PGlite
 * included, deleted), a manager on a fresh database imports the target with its recovery passphrase, rebuilds
 * the index from well over 1,000 manifests (S3 pages hold 1,000 keys) and restores a backup byte-exact.
 */

const MiB = 1024 * 1024;
const BUCKET = 'dr-bucket';
const PREFIX = 'repo';
const PASSPHRASE = 'the recovery passphrase, kept offline';
/** Synthetic roots written straight into the bucket, beside the real backups: past two S3 list pages. */
const SYNTHETIC = 1_200;
const SYNTHETIC_VOLUMES = 5;

async function waitForJob(client: ManagerClient, id: string): Promise<ManagedJob> {
  for await (const _ of client.jobEvents(id)) {
    // the stream closes after a terminal state
  }
  return client.getJob(id);
}

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Every batch of a rebuild, as the CLI runs it: `start_after` from one answer to the next. */
async function rebuildAll(
  client: ManagerClient,
  targetId: string,
  limit?: number,
): Promise<{ batches: IndexRebuildResult[]; total: Omit<IndexRebuildResult, 'next_start_after'> }> {
  const batches: IndexRebuildResult[] = [];
  let startAfter: string | undefined;
  do {
    const batch = await client.request('rebuildIndex', {
      params: { id: targetId },
      body: { ...(startAfter === undefined ? {} : { start_after: startAfter }), ...(limit ? { limit } : {}) },
    });
    batches.push(batch);
    startAfter = batch.next_start_after ?? undefined;
  } while (startAfter !== undefined);
  const sum = (k: 'manifests' | 'inserted' | 'existing' | 'vanished' | 'volumes_created' | 'damaged') =>
    batches.reduce((n, b) => n + b[k], 0);
  return {
    batches,
    total: {
      backup_target_id: targetId,
      manifests: sum('manifests'),
      inserted: sum('inserted'),
      existing: sum('existing'),
      vanished: sum('vanished'),
      volumes_created: sum('volumes_created'),
      damaged: sum('damaged'),
      conflicts: batches.reduce((n, b) => n + b.conflicts, 0),
      problems: batches.flatMap((b) => b.problems),
      duration_seconds: batches.reduce((n, b) => n + b.duration_seconds, 0),
    },
  };
}

function s3Store(s3: TestS3Server): ObjectStore {
  return openObjectStore(
    `s3://${BUCKET}/${PREFIX}?endpoint=${encodeURIComponent(s3.endpoint)}&region=us-east-1&path_style=true`,
    { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
  );
}

/** Roots of empty-bodied backups (one hole each; their segment is never read), made with the format's own
 * encoder: a thousand real backups would take minutes, and the rebuild reads roots only. */
async function writeSyntheticManifests(repository: Repository, count: number, volumes: readonly string[]) {
  const written: { volumeId: string; backupId: string; size: number; createdAt: Date }[] = [];
  const base = Date.parse('2026-01-01T00:00:00Z');
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const volumeId = volumes[i % volumes.length]!;
      const backupId = randomUUID();
      const size = (i + 1) * 4096;
      const createdAt = new Date(base + i * 60_000);
      const root = repository.encodeManifest({
        version: FORMAT_VERSION,
        backupId,
        volumeId,
        volumeName: `synthetic-${volumes.indexOf(volumeId)}`,
        volumeSize: size,
        createdAt,
        chunker: repository.config.chunker,
        entryCount: 1,
        chunkCount: 0,
        chunkBytes: 0,
        holeBytes: size,
        segmentEntries: DEFAULT_SEGMENT_ENTRIES,
        segments: randomBytes(32),
      });
      await repository.store.put(`manifests/${volumeId}/${backupId}`, root);
      written.push({ volumeId, backupId, size, createdAt });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return written;
}

/** Where each manager's database lives: the first one's is lost (dropped), the second starts on a fresh one. */
interface Databases {
  first(): Promise<string | undefined>;
  drop(): Promise<void>;
  second(): Promise<string | undefined>;
}

const withDatabase = (url: string | undefined) => (url === undefined ? {} : { databaseUrl: url });

function describeRecovery(name: string, databases: Databases) {
  describe(`disaster recovery on ${name}: import a target, rebuild the index, restore`, () => {
    let s3: TestS3Server;
    let first: TestSystem | undefined;
    let second: TestSystem;
    let store: ObjectStore;
    const data = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(2 * MiB), randomBytes(3 * MiB)]);
    let original: {
      targetId: string;
      repositoryId: string;
      chunker: unknown;
      volumeId: string;
      backups: { id: string; size: number | null; chunks: number | null; started_at: string }[];
    };
    let synthetic: Awaited<ReturnType<typeof writeSyntheticManifests>>;
    let importedId: string;
    const damagedKeys: string[] = [];

    beforeAll(async () => {
      s3 = await startS3rver({ buckets: [BUCKET] });
      store = s3Store(s3);
      first = await startTestSystem(withDatabase(await databases.first()));
      const { client } = first;
      const created = await client.createTarget({
        kind: 's3',
        name: 'offsite',
        s3: { endpoint: s3.endpoint, bucket: BUCKET, prefix: PREFIX, path_style: true },
        credentials: { access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey },
        passphrase: PASSPHRASE,
        chunker: { avg_size: 512 * 1024 },
      });
      const [host] = (await client.listHosts()).items;
      const volume = await client.createVolume({
        name: 'web-data',
        host_id: host!.id,
        backend: 'local-file',
        size: 8 * MiB,
        backup_target_id: created.target.id,
        snapshot: 'copy',
      });
      // Two backups: the first of other bytes, the second of `data`, the one restored later.
      writeFileSync(volume.locator!, randomBytes(8 * MiB));
      for (const content of [undefined, data]) {
        if (content) writeFileSync(volume.locator!, content);
        const started = await client.backupNow(volume.id);
        const done = await waitForJob(client, started.job.id);
        expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
      }
      const backups = (await client.listBackups({ volume_id: volume.id })).items;
      expect(backups).toHaveLength(2);
      original = {
        targetId: created.target.id,
        repositoryId: created.target.repository_id,
        chunker: created.target.chunker,
        volumeId: volume.id,
        backups: backups.map(({ id, size, chunks, started_at }) => ({ id, size, chunks, started_at })),
      };

      const repository = await Repository.open(store, { passphrase: PASSPHRASE });
      const volumes = Array.from({ length: SYNTHETIC_VOLUMES }, () => randomUUID());
      synthetic = await writeSyntheticManifests(repository, SYNTHETIC, volumes);
      // Damage, which the rebuild must report: garbage, a root copied under another backup's key (its AAD binds
      // the ids), a key that is no manifest's.
      const garbage = `manifests/${randomUUID()}/${randomUUID()}`;
      await store.put(garbage, randomBytes(300));
      const copied = `manifests/${original.volumeId}/${randomUUID()}`;
      await store.put(copied, await store.get(`manifests/${original.volumeId}/${original.backups[0]!.id}`));
      const badKey = `manifests/${randomUUID()}/not-a-uuid`;
      await store.put(badKey, randomBytes(100));
      damagedKeys.push(garbage, copied, badKey);

      // The database is lost: the first manager, its agent and its home (PGlite) are gone.
      await first.stop();
      first = undefined;
      await databases.drop();
      second = await startTestSystem(withDatabase(await databases.second()));
    }, 300_000);

    afterAll(async () => {
      await first?.stop();
      await second?.stop();
      (store as { destroy?: () => void } | undefined)?.destroy?.();
      await s3?.stop();
    });

    const importBody = (passphrase: string, name = 'offsite') => ({
      kind: 's3' as const,
      name,
      s3: { endpoint: s3.endpoint, bucket: BUCKET, prefix: PREFIX, path_style: true },
      credentials: { access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey },
      passphrase,
    });

    it('refuses a wrong passphrase with a 422 and stores nothing', async () => {
      const { client } = second;
      const before = (await client.listTargets()).items.map((t) => t.id);
      const error = await failure(client.request('importTarget', { body: importBody('not the passphrase') }));
      expect(error.code).toBe('wrong_key');
      expect(error.status).toBe(422);
      expect(error.message).toMatch(
        /recovery passphrase does not open the repository at s3:\/\/dr-bucket\/repo/,
      );
      expect((await client.listTargets()).items.map((t) => t.id)).toEqual(before);
    });

    it('refuses a location without a repository with a 404 saying so', async () => {
      const { client } = second;
      const error = await failure(
        client.request('importTarget', {
          body: { ...importBody(PASSPHRASE), s3: { ...importBody(PASSPHRASE).s3, prefix: 'nothing-here' } },
        }),
      );
      expect(error.code).toBe('not_found');
      expect(error.message).toMatch(/holds no Stowage repository/);
    });

    it('imports the target from the bucket and its passphrase: the same repository and chunker', async () => {
      const { client } = second;
      // What createTarget now says about an existing repository is true: it points at this route.
      const refused = await failure(
        client.createTarget({ ...importBody(PASSPHRASE), name: 'offsite-new', passphrase: PASSPHRASE }),
      );
      expect(refused.code).toBe('conflict');
      expect(refused.message).toMatch(/POST \/v1\/backup_targets\/import/);

      const { target } = await client.request('importTarget', { body: importBody(PASSPHRASE) });
      importedId = target.id;
      expect(target).toMatchObject({
        name: 'offsite',
        kind: 's3',
        repository_id: original.repositoryId,
        chunker: original.chunker,
        has_credentials: true,
        usage: { backups: 0 },
      });
      // The imported key opens the repository: the connection test checks it against config's MAC.
      expect(await client.testTarget(target.id)).toMatchObject({ ok: true, error: null });
      // The passphrase is not kept anywhere the API shows, nor logged.
      expect(JSON.stringify(await client.getTarget(target.id))).not.toContain(PASSPHRASE);
      expect(second.logs.join('')).not.toContain(PASSPHRASE);

      const again = await failure(client.request('importTarget', { body: importBody(PASSPHRASE, 'twice') }));
      expect(again.code).toBe('conflict');
      expect(again.details?.target_id).toBe(target.id);
    });

    it('rebuilds the index from every manifest, past S3 pages of 1,000 keys, reporting the damaged ones', async () => {
      const { client } = second;
      const manifests = SYNTHETIC + original.backups.length + damagedKeys.length;
      // Two rebuilds at once, as two operators (or replicas) might: no row twice, nothing lost.
      const [a, b] = await Promise.all([
        client.request('rebuildIndex', { params: { id: importedId }, body: { limit: 10_000 } }),
        client.request('rebuildIndex', { params: { id: importedId }, body: { limit: 10_000 } }),
      ]);
      for (const batch of [a, b]) {
        expect(batch.manifests).toBe(manifests);
        expect(batch.next_start_after).toBeNull();
        expect(batch.damaged).toBe(3);
        expect(batch.inserted + batch.existing).toBe(SYNTHETIC + original.backups.length);
        expect(batch.problems.map((p) => [p.manifest_key, p.kind]).sort()).toEqual(
          [
            [damagedKeys[0], 'integrity'],
            [damagedKeys[1], 'integrity'],
            [damagedKeys[2], 'bad_key'],
          ].sort(),
        );
      }
      expect(a.inserted + b.inserted).toBe(SYNTHETIC + original.backups.length);
      expect(a.volumes_created + b.volumes_created).toBe(SYNTHETIC_VOLUMES + 1);

      const backups = [];
      for await (const backup of client.paginate(client.listBackups, { backup_target_id: importedId }))
        backups.push(backup);
      expect(backups).toHaveLength(SYNTHETIC + original.backups.length);
      expect(new Set(backups.map((x) => x.id)).size).toBe(backups.length);
      // The figures come from the roots.
      const byId = new Map(backups.map((x) => [x.id, x]));
      for (const s of synthetic.slice(0, 50)) {
        expect(byId.get(s.backupId)).toMatchObject({
          volume_id: s.volumeId,
          state: 'completed',
          size: s.size,
          chunks: 0,
          started_at: s.createdAt.toISOString(),
          manifest_key: `manifests/${s.volumeId}/${s.backupId}`,
          job_id: null,
        });
      }
      for (const o of original.backups) {
        const rebuilt = byId.get(o.id)!;
        expect(rebuilt).toMatchObject({
          volume_id: original.volumeId,
          state: 'completed',
          size: o.size,
          chunks: o.chunks,
          bytes_uploaded: null,
        });
        // The root records when the agent began the backup, a moment after the manager queued it.
        const lag = Date.parse(rebuilt.started_at) - Date.parse(o.started_at);
        expect(lag).toBeGreaterThanOrEqual(0);
        expect(lag).toBeLessThan(60_000);
        expect(Date.parse(rebuilt.finished_at!)).toBeGreaterThanOrEqual(Date.parse(rebuilt.started_at));
      }
      const volume = await client.getVolume(original.volumeId);
      expect(volume).toMatchObject({
        name: 'web-data',
        state: 'archived',
        host_id: null,
        locator: null,
        backend: 'local-file',
        size: 8 * MiB,
        backup_target_id: importedId,
      });
      expect(volume.last_backup_id).toBe(original.backups[0]!.id);
      const target = await client.getTarget(importedId);
      expect(target.usage.backups).toBe(SYNTHETIC + original.backups.length);
    }, 240_000);

    it('is idempotent: a second rebuild, in batches, inserts nothing and reports the same damage', async () => {
      const { client } = second;
      const { batches, total } = await rebuildAll(client, importedId, 700);
      const manifests = SYNTHETIC + original.backups.length + damagedKeys.length;
      expect(batches).toHaveLength(Math.ceil(manifests / 700));
      expect(batches.slice(0, -1).every((b) => b.manifests === 700 && b.next_start_after !== null)).toBe(
        true,
      );
      expect(total).toMatchObject({
        manifests,
        inserted: 0,
        volumes_created: 0,
        existing: SYNTHETIC + original.backups.length,
        damaged: 3,
        conflicts: 0,
      });
      // The batches cover the keys once each, in order.
      const cursors = batches.map((b) => b.next_start_after).filter((c): c is string => c !== null);
      expect([...cursors].sort()).toEqual(cursors);
      expect(new Set(cursors).size).toBe(cursors.length);
    }, 240_000);

    it('is what "manager backup index-rebuild" runs: batches, progress, the damage listed, exit 1', async () => {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = '';
      let err = '';
      stdout.on('data', (d) => {
        out += d;
      });
      stderr.on('data', (d) => {
        err += d;
      });
      const env = { MANAGER_URL: second.embedded.manager.url, MANAGER_TOKEN: second.embedded.adminToken };
      const code = await run(
        ['backup', 'index-rebuild', '--target', 'offsite', '--batch', '1000', '--json'],
        env,
        { stdout, stderr },
      );
      expect(code).toBe(EXIT.failure);
      const manifests = SYNTHETIC + original.backups.length + damagedKeys.length;
      expect(JSON.parse(out)).toMatchObject({
        batches: Math.ceil(manifests / 1000),
        manifests,
        inserted: 0,
        existing: SYNTHETIC + original.backups.length,
        damaged: 3,
      });
      for (const key of damagedKeys) expect(err).toContain(`not recorded: ${key}`);
      expect(err).toMatch(/^batch 1: 1000 manifests read, 0 backups recorded/m);
    }, 240_000);

    it('restores a rebuilt backup byte-exact onto a volume of a registered host', async () => {
      const { client } = second;
      const backupId = original.backups[0]!.id;
      // The archived volume has no host: a restore must name one.
      const noHost = await failure(client.restoreBackup(backupId, { name: 'web-data-restored' }));
      expect(noHost.code).toBe('invalid_request');
      const [host] = (await client.listHosts()).items;
      expect(host?.status).toBe('up');
      const restore = await client.restoreBackup(backupId, { host_id: host!.id, name: 'web-data-restored' });
      const done = await waitForJob(client, restore.job.id);
      expect(done.state, JSON.stringify(done.error)).toBe('succeeded');
      const restored = await client.getVolume(restore.volume.id);
      expect(restored.state).toBe('available');
      expect(sha(readFileSync(restored.locator!))).toBe(sha(data));
    }, 120_000);

    it('runs safely while the manager serves: a backup racing rebuilds keeps its own row and figures', async () => {
      const { client } = second;
      const [host] = (await client.listHosts()).items;
      const volume = await client.createVolume({
        name: 'busy',
        host_id: host!.id,
        backend: 'local-file',
        size: 4 * MiB,
        backup_target_id: importedId,
        snapshot: 'copy',
      });
      writeFileSync(volume.locator!, randomBytes(4 * MiB));
      const started = await client.backupNow(volume.id);
      const rebuilds: IndexRebuildResult[] = [];
      let finished = false;
      const job = waitForJob(client, started.job.id).finally(() => {
        finished = true;
      });
      // Rebuild over and over while the backup runs and commits, then once more after.
      while (!finished) rebuilds.push((await rebuildAll(client, importedId, 10_000)).batches[0]!);
      expect((await job).state).toBe('succeeded');
      const after = await rebuildAll(client, importedId, 10_000);
      expect(rebuilds.length).toBeGreaterThan(0);
      expect(after.total.inserted).toBe(0);
      // The backup's row is the manager's own: its job, the agent's figures, one row.
      const rows = (await client.listBackups({ volume_id: volume.id })).items;
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ id: started.backup.id, job_id: started.job.id, state: 'completed' });
      expect(rows[0]!.bytes_uploaded).toBeGreaterThan(0);
      expect((await client.getVolume(volume.id)).state).toBe('available');
      // A backup deleted between rebuilds stays deleted (its manifest went first).
      await client.deleteBackup(rows[0]!.id);
      const later = await rebuildAll(client, importedId, 10_000);
      expect(later.total.inserted).toBe(0);
      expect((await client.listBackups({ volume_id: volume.id })).items).toHaveLength(0);
    }, 180_000);

    it('imports a filesystem repository too', async () => {
      const { client } = second;
      const dir = mkdtempSync(join(tmpdir(), 'stowage-dr-fs-'));
      try {
        const fsStore = openObjectStore(`file://${dir}`);
        const repository = await Repository.init(fsStore, {
          passphrase: 'short',
          chunker: DEFAULT_CHUNKER_PARAMS,
          kdf: TEST_KDF,
        });
        const wrong = await failure(
          client.request('importTarget', {
            body: { kind: 'filesystem', name: 'nas', filesystem: { path: dir }, passphrase: 'shorter' },
          }),
        );
        expect(wrong.code).toBe('wrong_key');
        const { target } = await client.request('importTarget', {
          body: {
            kind: 'filesystem',
            name: 'nas',
            filesystem: { path: dir },
            passphrase: 'short',
            gc_hour: 5,
          },
        });
        expect(target).toMatchObject({
          kind: 'filesystem',
          filesystem: { path: dir },
          repository_id: repository.config.repositoryId,
          gc_hour: 5,
          has_credentials: false,
        });
        const empty = await client.request('rebuildIndex', { params: { id: target.id } });
        expect(empty).toMatchObject({ manifests: 0, inserted: 0, next_start_after: null });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

// PGlite: the first system's home, its database with it, is deleted when it stops.
describeRecovery('PGlite', {
  first: async () => undefined,
  drop: async () => {},
  second: async () => undefined,
});

// CI sets STOWAGE_REQUIRE_POSTGRES=1: there a missing PostgreSQL is a failure (testing/databases.ts has the test).
const unavailable = postgresUnavailableReason();
let server: TestPostgres | undefined;
describe.skipIf(unavailable !== undefined)(
  `PostgreSQL${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    afterAll(async () => server?.stop());
    describeRecovery('PostgreSQL', {
      first: async () => {
        server = await startPostgres();
        return server.createDatabase('dr_lost');
      },
      // DROP DATABASE, as a lost database server would leave things: nothing of the first inventory remains.
      drop: async () => {
        const pg = (await import('pg')).default;
        const client = new pg.Client({ connectionString: server!.url });
        await client.connect();
        try {
          await client.query('DROP DATABASE dr_lost');
        } finally {
          await client.end();
        }
      },
      second: async () => server!.createDatabase('dr_fresh'),
    });
  },
);
