import { createHash, randomInt, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ManagedBackup, type ManagedVolume, ManagerClient } from '@stowage/api';
import { ChunkWorkers, verifyBackup } from '@stowage/engine';
import { restoreAndHash, seededBytes } from '@stowage/engine/testing';
import { manifestSegmentRefs, PACK_INDEX_PREFIX, parsePackIndexObjectKey } from '@stowage/format';
import {
  cephUnavailableReason,
  startCeph,
  startS3rver,
  type TestS3Server,
} from '@stowage/object-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config.js';
import { COMMIT_MARGIN_MS, COMMIT_VALID_MS } from '../db/leases.js';
import { getTarget } from '../db/targets.js';
import { jsonLogger } from '../log.js';
import { reconcileOnce } from '../loops/reconciler.js';
import { type RunningManager, startManager } from '../server.js';
import { openTargetRepository } from '../targets/targets.js';
import { startTestSystem, TEST_KDF, type TestSystem } from '../testing/embedded.js';
import { postgresUnavailableReason, startPostgres, type TestPostgres } from '../testing/postgres.js';

// The GC invariant of docs/operations.md#gc, attacked: with grace 0, concurrent backups of overlapping data
// (dedup hits on chunks whose backups are being deleted; the previous manifest's locations reused while
// it is pruned), deletions, retention prunes, GC runs, agent SIGKILLs and manager restarts in a seeded
// random interleaving. Afterwards every committed backup verifies and restores byte-exact, and after two
// quiet GC runs nothing unreferenced is left. Replay a failure with STOWAGE_GC_SEED=<seed> (printed).

const MiB = 1024 * 1024;
const SEED = Number(process.env.STOWAGE_GC_SEED ?? randomInt(2 ** 31));
const DURATION_MS = Number(process.env.STOWAGE_GC_ADVERSARIAL_MS ?? 45_000);
const VOLUMES = 3;
const BLOCKS = 24; // 1 MiB blocks per volume, drawn from a pool shared by every volume
const POOL = 40;
/**
 * The loops tick every second and a job silent for 15 s is reconciled: a job the killed agent never started
 * (accepted, not yet journaled) holds its lease — and so every sweep — until the reconciler ends it.
 */
const FAST_LOOPS = { MANAGER_LOOP_INTERVAL_MS: '1000', MANAGER_STALE_JOB_MINUTES: '0.25' };
/** What a run must have done before it may stop (after DURATION_MS). */
const MIN_BACKUPS = 12;
const MIN_GC_RUNS = 6;

/** mulberry32: small, seedable, good enough to pick interleavings. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const unavailable = postgresUnavailableReason();
// Ceph RGW where it runs (CI requires it, STOWAGE_REQUIRE_CEPH=1), else the in-process s3rver.
const cephUnavailable = await cephUnavailableReason();
const S3_KIND = cephUnavailable === undefined ? 'Ceph RGW' : `s3rver (Ceph RGW: ${cephUnavailable})`;
const required = process.env.STOWAGE_REQUIRE_POSTGRES === '1';

describe.runIf(required && unavailable !== undefined)('the GC invariant (PostgreSQL required)', () => {
  it('has a PostgreSQL server', () => {
    expect.fail(`STOWAGE_REQUIRE_POSTGRES=1 but PostgreSQL cannot run here: ${unavailable}`);
  });
});

describe.skipIf(unavailable !== undefined)(
  `the GC invariant under random interleavings on PostgreSQL and ${S3_KIND} (seed ${SEED})${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    let pg: TestPostgres;
    let s3: TestS3Server;
    let system: TestSystem;
    let manager: RunningManager | undefined;
    let databaseUrl: string;
    const random = prng(SEED);
    const pool = Array.from({ length: POOL }, (_, k) => seededBytes(`gc-pool-${SEED}-${k}`, MiB));
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

    beforeAll(async () => {
      console.log(`GC adversarial test: seed ${SEED} (replay with STOWAGE_GC_SEED=${SEED})`);
      pg = await startPostgres();
      s3 = await (cephUnavailable === undefined ? startCeph : startS3rver)({ buckets: ['gc-invariant'] });
      databaseUrl = await pg.createDatabase(`stowage_gc_${process.pid}`);
      system = await startTestSystem({ databaseUrl, env: FAST_LOOPS });
    }, 120_000);
    afterAll(async () => {
      await manager?.stop();
      // STOWAGE_GC_LOG_DIR=<dir> keeps the manager's and the agent's logs of the run, to read after a failure.
      const logDir = process.env.STOWAGE_GC_LOG_DIR;
      if (logDir && system) {
        writeFileSync(join(logDir, `gc-${SEED}-manager.log`), system.logs.join('\n'));
        writeFileSync(join(logDir, `gc-${SEED}-agent.log`), system.agentLogs.join(''));
      }
      await system?.stop();
      await s3?.stop();
      await pg?.stop();
    });

    it(
      'never deletes a chunk a committed manifest names, and leaves no garbage after two quiet runs',
      async () => {
        const { client: admin, embedded } = system;
        const token = embedded.adminToken;
        const url = embedded.manager.url;
        const client = new ManagerClient({ baseUrl: url, token });
        let ctx = embedded.manager.ctx;
        const { target } = await client.createTarget({
          kind: 's3',
          name: 'gc',
          s3: { endpoint: s3.endpoint, bucket: 'gc-invariant', prefix: 'repo', path_style: true },
          credentials: { access_key_id: s3.accessKeyId, secret_access_key: s3.secretAccessKey },
          gc_grace_seconds: 0,
          gc_enabled: false,
          chunker: { avg_size: 512 * 1024 },
        });
        const [host] = (await admin.listHosts()).items;
        const volumes: ManagedVolume[] = [];
        for (let v = 0; v < VOLUMES; v++) {
          const volume = await client.createVolume({
            name: `gc-${v}`,
            host_id: host!.id,
            backend: 'local-file',
            size: BLOCKS * MiB,
            backup_target_id: target.id,
            snapshot: false, // the test writes a volume only while no backup of it runs
          });
          await client.updateBackupSchedule(volume.id, { retention: { keep_last: 2 } });
          volumes.push(volume);
        }
        /** The SHA-256 each backup must restore to: the volume's content when it was started. */
        const expected = new Map<string, string>();
        const layout = volumes.map(() => Array.from({ length: BLOCKS }, () => Math.floor(random() * POOL)));
        const writeVolume = (v: number) => {
          // Rewrite a few blocks from the shared pool: old chunks come back (dedup hits on garbage).
          for (let i = 0; i < 1 + Math.floor(random() * 6); i++) {
            layout[v]![Math.floor(random() * BLOCKS)] = Math.floor(random() * POOL);
          }
          const bytes = Buffer.concat(layout[v]!.map((k) => pool[k]!));
          writeFileSync(volumes[v]!.locator!, bytes);
          return createHash('sha256').update(bytes).digest('hex');
        };
        const tally = {
          backups: 0,
          deletes: 0,
          prunes: 0,
          gcRuns: 0,
          agentKills: 0,
          managerRestarts: 0,
          errors: 0,
        };
        const errorKinds = new Map<string, number>();
        // Bounded in time, but long enough to have done something on a loaded machine: at least the duration,
        // then until enough backups and GC runs happened, never past four times the duration — plus one commit
        // hold. An agent killed just after its commit was granted leaves its lease holding the target for
        // COMMIT_VALID_MS + COMMIT_MARGIN_MS (3 min: its root may still land), and a sweep waits that out,
        // every other GC a 409 meanwhile (CI saw it: 3 GC runs in 180 s, when new backups also queued behind
        // it; the sweep now waits such holds out before it takes the target).
        const started = Date.now();
        const hardStop = started + 4 * DURATION_MS + COMMIT_VALID_MS + COMMIT_MARGIN_MS;
        const going = () =>
          Date.now() < hardStop &&
          (Date.now() < started + DURATION_MS || tally.backups < MIN_BACKUPS || tally.gcRuns < MIN_GC_RUNS);
        let restarting: Promise<void> | undefined;
        const tolerate = async (what: () => Promise<unknown>) => {
          try {
            await what();
          } catch (error) {
            // A 409, a manager being restarted, an agent being killed: all expected here; counted by kind.
            tally.errors++;
            const kind = String((error as { code?: string }).code ?? (error as Error).message).slice(0, 60);
            errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
          }
        };
        const waitJob = async (id: string) => {
          for (;;) {
            try {
              const job = await client.getJob(id);
              if (['succeeded', 'failed', 'cancelled'].includes(job.state)) return job;
            } catch {
              // the manager is restarting
            }
            await sleep(100);
            if (Date.now() > hardStop + 60_000) return undefined;
          }
        };

        const backupActor = async (v: number) => {
          while (going()) {
            await restarting;
            const sha = writeVolume(v);
            await tolerate(async () => {
              const { job, backup } = await client.backupNow(volumes[v]!.id);
              expected.set(backup.id, sha);
              tally.backups++;
              await waitJob(job.id);
            });
            await sleep(random() * 400);
          }
        };
        const completed = async (): Promise<ManagedBackup[]> =>
          (await client.listBackups({ limit: 500 })).items.filter((b) => b.state === 'completed');
        const deleteActor = async () => {
          while (going()) {
            await sleep(200 + random() * 1200);
            await tolerate(async () => {
              // Each volume keeps its newest backup (listed first): the next backup reuses its chunks while
              // retention (keep_last 2) and this actor delete the older ones under it.
              const backups = await completed();
              const newest = new Set(volumes.map((v) => backups.find((b) => b.volume_id === v.id)?.id));
              const victims = backups.filter((b) => !newest.has(b.id));
              if (victims.length === 0) return;
              await client.deleteBackup(pick(victims).id);
              tally.deletes++;
            });
          }
        };
        const pruneActor = async () => {
          while (going()) {
            await sleep(500 + random() * 2000);
            await tolerate(async () => {
              await client.pruneVolume(pick(volumes).id, { dry_run: 'false' });
              tally.prunes++;
            });
          }
        };
        const gcActor = async () => {
          while (going()) {
            await sleep(random() * 1500);
            await tolerate(async () => {
              await client.startGc(target.id, { dry_run: random() < 0.15 ? 'true' : 'false' });
              tally.gcRuns++;
            });
          }
        };
        // Faults paced by progress, not by the clock: a slow machine gets as many backups between two of them.
        const chaosActor = async () => {
          let backupsAtLastFault = 0;
          while (going()) {
            await sleep(2_000 + random() * 4_000);
            if (tally.backups - backupsAtLastFault < 3) continue;
            backupsAtLastFault = tally.backups;
            if (random() < 0.5) {
              const pid = embedded.agent.pid();
              if (pid !== undefined) {
                process.kill(pid, 'SIGKILL'); // the supervisor restarts it; its journal fails the dead jobs
                tally.agentKills++;
              }
            } else {
              restarting = (async () => {
                await (manager ?? embedded.manager).stop();
                const port = new URL(url).port;
                const config = parseConfig({
                  STOWAGE_HOME: system.home,
                  PORT: port,
                  DATABASE_URL: databaseUrl,
                  MANAGER_MASTER_KEY_FILE: join(system.home, 'master.key'),
                  ...FAST_LOOPS,
                });
                manager = await startManager(config, {
                  logger: jsonLogger({ level: 'debug', write: (line) => system.logs.push(line) }),
                  kdf: TEST_KDF,
                });
                ctx = manager.ctx;
                tally.managerRestarts++;
              })();
              await restarting;
              restarting = undefined;
            }
          }
        };
        await Promise.all([
          ...volumes.map((_, v) => backupActor(v)),
          deleteActor(),
          pruneActor(),
          gcActor(),
          chaosActor(),
        ]);

        // Quiet: every job ends (the reconciler's verdict for any the agent's kill left silent), no GC runs.
        for (let i = 0; i < 600; i++) {
          const open = (await client.listJobs({ limit: 500 })).items.filter((j) =>
            ['queued', 'running'].includes(j.state),
          );
          const runs = (await client.listGcRuns(target.id, { limit: 50 })).items.filter(
            (r) => r.state === 'running',
          );
          if (open.length === 0 && runs.length === 0) break;
          if (i % 50 === 49) await reconcileOnce(ctx, 0);
          await sleep(100);
        }
        const jobs = (await client.listJobs({ limit: 500 })).items;
        const outcomes = Object.fromEntries(
          ['succeeded', 'failed', 'cancelled'].map((s) => [s, jobs.filter((j) => j.state === s).length]),
        );
        console.log(
          `GC adversarial test (seed ${SEED}): ${JSON.stringify(tally)}; jobs ${JSON.stringify(outcomes)}; ` +
            `errors ${JSON.stringify(Object.fromEntries(errorKinds))}; failures ${JSON.stringify([
              ...new Set(jobs.filter((j) => j.state === 'failed').map((j) => j.error?.message.slice(0, 80))),
            ])}`,
        );
        expect(tally.backups).toBeGreaterThanOrEqual(MIN_BACKUPS);
        expect(tally.gcRuns).toBeGreaterThanOrEqual(MIN_GC_RUNS);

        const row = await getTarget(ctx.db, target.id);
        const { repository, close } = await openTargetRepository(ctx, row!);
        const workers = new ChunkWorkers(repository.targetKey, { threads: 2 });
        try {
          // Every committed backup — what the bucket says, whatever the database recorded — is whole.
          const refs = [];
          for await (const ref of repository.backupRefs()) refs.push(ref);
          expect(refs.length).toBeGreaterThan(0);
          for (const ref of refs) {
            const report = await verifyBackup({ repository, workers, backup: ref });
            expect(report.problems, `${ref.manifestKey} (seed ${SEED})`).toEqual([]);
            const sha = await restoreAndHash(
              repository,
              workers,
              ref.backupId,
              join(system.home, randomUUID()),
            );
            expect(sha, `${ref.manifestKey} restores (seed ${SEED})`).toBe(expected.get(ref.backupId));
          }
          // And the database agrees: every backup recorded completed has its manifest.
          const recorded = await completed();
          const committed = new Set(refs.map((r) => r.backupId));
          for (const b of recorded)
            expect(committed.has(b.id), `${b.id} recorded completed (seed ${SEED})`).toBe(true);

          // Two quiet runs, then nothing unreferenced: every pack, segment and index object is named.
          for (let n = 0; n < 2; n++) {
            await sleep(20);
            const run = await client.startGc(target.id, { dry_run: 'false' });
            for (;;) {
              const now = await client.getGcRun(target.id, run.id);
              if (now.state !== 'running') {
                expect(now, `quiet run ${n} (seed ${SEED})`).toMatchObject({
                  state: 'succeeded',
                  error: null,
                });
                break;
              }
              await sleep(100);
            }
          }
          const livePacks = new Set<string>();
          const liveSegments = new Set<string>();
          for (const ref of refs) {
            const manifest = await repository.loadManifest(ref);
            for (const segment of manifestSegmentRefs(manifest)) liveSegments.add(segment.objectKey);
            const entries = await repository.loadManifestEntries(manifest);
            for (let e = 0; e < entries.count; e++) {
              if (entries.isChunkAt(e))
                livePacks.add(Buffer.from(entries.locationAt(e).pack).toString('hex'));
            }
          }
          const packs: string[] = [];
          for await (const info of repository.store.list('packs/')) packs.push(info.key.slice(-64));
          expect(
            packs.filter((p) => !livePacks.has(p)),
            `unreferenced packs (seed ${SEED})`,
          ).toEqual([]);
          expect(packs.length).toBe(livePacks.size);
          const segments: string[] = [];
          for await (const info of repository.store.list('chunks/')) segments.push(info.key);
          expect(
            segments.filter((s) => !liveSegments.has(s)),
            `unreferenced segments (seed ${SEED})`,
          ).toEqual([]);
          for await (const info of repository.store.list(PACK_INDEX_PREFIX)) {
            const parsed = parsePackIndexObjectKey(info.key);
            expect(
              committed.has(parsed!.backupId),
              `${info.key} of an uncommitted backup (seed ${SEED})`,
            ).toBe(true);
          }
        } finally {
          await workers.close();
          close();
        }
      },
      4 * DURATION_MS + COMMIT_VALID_MS + COMMIT_MARGIN_MS + 300_000,
    );
  },
);
