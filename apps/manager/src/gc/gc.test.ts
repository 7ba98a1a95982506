import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkWorkers, EngineError, type Repository } from '@stowage/engine';
import { backupImage, restoreAndHash, seededBytes, sha256File } from '@stowage/engine/testing';
import { DamagedChunks } from '@stowage/format';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import type { AgentClient } from '../agents/agent-client.js';
import { acquireLease, COMMIT_MARGIN_MS, COMMIT_VALID_MS, grantCommit, releaseLease } from '../db/leases.js';
import type { BackupTargetRow } from '../db/schema.js';
import { silentLogger } from '../log.js';
import { createSecretBox } from '../secrets/envelope.js';
import type { ManagerContext } from '../services/context.js';
import { failStaleRuns, gcRunsSettled, getGcRun, startGc, stopGcRuns } from '../services/gc.js';
import { createTarget, openTargetRepository } from '../targets/targets.js';
import { describeOnDatabases } from '../testing/databases.js';
import { TEST_KDF } from '../testing/embedded.js';

const MiB = 1 << 20;

describeOnDatabases('garbage collection of a target', (subject) => {
  let home: string;
  let ctx: ManagerContext;
  let target: BackupTargetRow;
  let repository: Repository;
  let close: () => void;
  let workers: ChunkWorkers;
  let clock: Date;

  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), 'stowage-gc-'));
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  beforeEach(async () => {
    clock = new Date();
    ctx = {
      db: subject().database.db,
      secrets: createSecretBox(randomBytes(32)),
      now: () => clock,
      agentFor: () => ({}) as unknown as AgentClient,
      logger: silentLogger,
      jobChanged: () => {},
      kdf: TEST_KDF,
    };
    const dir = join(home, randomUUID());
    target = (
      await createTarget(ctx, {
        name: `fs-${randomUUID().slice(0, 8)}`,
        location: { kind: 'filesystem', path: dir },
        credentials: undefined,
        passphrase: 'a long test passphrase',
        avgChunkSize: undefined,
        settings: { gc_grace_seconds: 0 },
      })
    ).row;
    ({ repository, close } = await openTargetRepository(ctx, target));
    workers = new ChunkWorkers(repository.targetKey, { threads: 2 });
  });
  afterEach(async () => {
    await workers.close();
    close();
  });

  /** A volume image whose first `shared` MiB are common to every image of `family`, the rest its own. */
  function image(name: string, family: string, shared: number, own: number): string {
    const path = join(home, `${name}-${randomUUID()}.img`);
    writeFileSync(
      path,
      Buffer.concat([seededBytes(`shared-${family}`, shared * MiB), seededBytes(`own-${name}`, own * MiB)]),
    );
    return path;
  }

  async function objects(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const info of repository.store.list(prefix)) keys.push(info.key);
    return keys;
  }

  async function gc(dryRun = false) {
    // The store's timestamps have a resolution of milliseconds: a run started in the same instant as the last
    // write would keep it as "not older than the cutoff".
    await new Promise((resolve) => setTimeout(resolve, 20));
    clock = new Date();
    const row = (await startGc(ctx, target.id, { dryRun, trigger: 'api', options: { pollMs: 20 } }))!;
    await gcRunsSettled(ctx, row.id);
    return getGcRun(ctx, target.id, row.id);
  }

  it('deletes what no committed manifest names — a deleted backup, a backup that never committed — and keeps every live backup restorable', async () => {
    const kept = image('kept', 'a', 3, 2);
    const gone = image('gone', 'a', 3, 2);
    const keptBackup = await backupImage(repository, workers, kept, 'kept');
    const goneBackup = await backupImage(repository, workers, gone, 'gone');
    // An interrupted backup: its packs and index objects are stored, its root never written.
    const crashed = image('crashed', 'b', 0, 2);
    await expect(
      backupImage(repository, workers, crashed, 'crashed', {
        beforeCommit: async () => {
          throw new EngineError('commit-refused', 'test: the lease has ended');
        },
      }),
    ).rejects.toThrow(/lease has ended/);
    // The deleted backup's damage record outlives it (a verify ran as it was deleted); the kept one's stays.
    const damage = DamagedChunks.from([
      { id: new Uint8Array(32).fill(7), problem: 'missing', foundAt: new Date(0) },
    ]);
    await repository.writeDamageRecord(goneBackup, damage);
    await repository.writeDamageRecord(keptBackup, damage);
    await repository.store.delete(goneBackup.manifestKey);
    const packsBefore = await objects('packs/');
    const indexBefore = await objects('index/');

    const plan = await gc(true);
    expect(plan).toMatchObject({ state: 'succeeded', dry_run: true, manifests: 1, error: null });
    expect(plan.packs_deleted).toBeGreaterThan(0);
    expect(await objects('packs/')).toEqual(packsBefore); // a dry run deletes nothing

    const run = await gc();
    expect(run).toMatchObject({
      state: 'succeeded',
      phase: 'done',
      dry_run: false,
      manifests: 1,
      packs_listed: packsBefore.length,
      packs_deleted: plan.packs_deleted,
      index_objects_deleted: plan.index_objects_deleted,
      error: null,
    });
    expect(run.packs_live + run.packs_deleted).toBe(run.packs_listed);
    expect(run.segments_deleted).toBeGreaterThan(0); // the deleted backup's own segments
    expect(run.bytes_freed).toBeGreaterThan(2 * MiB);
    const packsAfter = await objects('packs/');
    expect(packsAfter.length).toBe(packsBefore.length - run.packs_deleted);
    // The crashed backup's and the deleted backup's index objects went with their packs; the kept one's stay.
    const indexAfter = await objects('index/');
    expect(indexAfter.length).toBeLessThan(indexBefore.length);
    expect(indexAfter.every((key) => key.startsWith(`index/${keptBackup.volumeId}/`))).toBe(true);
    expect(await objects('damage/')).toEqual([repository.damageRecordKey(keptBackup)]);
    await repository.deleteDamageRecord(keptBackup);
    // The survivor restores byte-exact, and a second run finds nothing more to delete.
    expect(
      await restoreAndHash(repository, workers, keptBackup.backupId, join(home, `r-${randomUUID()}`)),
    ).toBe(await sha256File(kept));
    const again = await gc();
    expect(again).toMatchObject({ packs_deleted: 0, segments_deleted: 0, index_objects_deleted: 0 });
    // A new backup of the deleted volume's data stores again what the sweep took: nothing is found missing.
    const back = await backupImage(repository, workers, gone, 'gone');
    expect(back.chunksNew).toBeGreaterThan(0);
    expect(await restoreAndHash(repository, workers, back.backupId, join(home, `r-${randomUUID()}`))).toBe(
      await sha256File(gone),
    );
  });

  it('keeps unreferenced objects younger than the grace period', async () => {
    await ctx.db
      .updateTable('backup_target')
      .set({ gc_grace_seconds: 3600 })
      .where('id', '=', target.id)
      .execute();
    const summary = await backupImage(repository, workers, image('young', 'c', 1, 1), 'young');
    await repository.store.delete(summary.manifestKey);
    const run = await gc();
    expect(run).toMatchObject({
      state: 'succeeded',
      grace_seconds: 3600,
      packs_deleted: 0,
      segments_deleted: 0,
    });
    expect(run.packs_listed).toBeGreaterThan(0);
  });

  it('deletes nothing when a committed manifest cannot be read (format §5.5 rule 4)', async () => {
    const a = await backupImage(repository, workers, image('a', 'd', 1, 1), 'a');
    const b = await backupImage(repository, workers, image('b', 'e', 1, 1), 'b');
    await repository.store.delete(a.manifestKey);
    // b's segments, overwritten with garbage: what b names is unknown.
    const segments = await objects('chunks/');
    expect(segments.length).toBeGreaterThan(0);
    for (const key of segments) await repository.store.put(key, randomBytes(200));
    expect(b.manifestSegments).toBeGreaterThan(0);
    const before = await objects('packs/');
    const run = await gc();
    expect(run.state).toBe('failed');
    expect(run.error?.message).toMatch(/cannot be read|does not decode/);
    expect(run.error?.message).toMatch(/nothing was deleted/);
    expect(await objects('packs/')).toEqual(before);
  });

  it('waits for running backups before it sweeps, and gives up deleting nothing when they outlast its wait', async () => {
    const summary = await backupImage(repository, workers, image('w', 'f', 1, 1), 'w');
    await repository.store.delete(summary.manifestKey);
    const jobId = randomUUID();
    await ctx.db
      .insertInto('job')
      .values({ id: jobId, kind: 'backup', state: 'running', created_at: clock })
      .execute();
    expect(
      await ctx.db
        .transaction()
        .execute((trx) => acquireLease(trx, { jobId, targetId: target.id, now: clock })),
    ).toBe(true);
    const before = await objects('packs/');
    await new Promise((resolve) => setTimeout(resolve, 20));
    clock = new Date();
    const row = (await startGc(ctx, target.id, {
      dryRun: false,
      trigger: 'api',
      options: { pollMs: 20, maxWaitMs: 300 },
    }))!;
    // While it waits the target is taken: a new backup gets no lease (it would wait queued).
    let sawTaken = false;
    for (let i = 0; i < 100 && !sawTaken; i++) {
      const t = await ctx.db
        .selectFrom('backup_target')
        .select('gc_sweeping_run')
        .where('id', '=', target.id)
        .executeTakeFirstOrThrow();
      sawTaken = t.gc_sweeping_run === row.id;
      if (!sawTaken) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(sawTaken).toBe(true);
    expect(
      await ctx.db
        .transaction()
        .execute((trx) => acquireLease(trx, { jobId: randomUUID(), targetId: target.id, now: clock })),
    ).toBe(false);
    await gcRunsSettled(ctx, row.id);
    const run = await getGcRun(ctx, target.id, row.id);
    expect(run.state).toBe('failed');
    expect(run.error?.message).toMatch(/still running .* deleted nothing/);
    expect(await objects('packs/')).toEqual(before);
    const after = await ctx.db
      .selectFrom('backup_target')
      .select('gc_sweeping_run')
      .where('id', '=', target.id)
      .executeTakeFirstOrThrow();
    expect(after.gc_sweeping_run).toBeNull();
  });

  it('waits out an ended job’s commit hold before it takes the target, so new backups start meanwhile', async () => {
    const job = async (state: 'running' | 'failed') => {
      const id = randomUUID();
      await ctx.db.insertInto('job').values({ id, kind: 'backup', state, created_at: clock }).execute();
      return id;
    };
    const lease = (jobId: string) =>
      ctx.db.transaction().execute((trx) => acquireLease(trx, { jobId, targetId: target.id, now: clock }));
    const sweeping = async () =>
      (
        await ctx.db
          .selectFrom('backup_target')
          .select('gc_sweeping_run')
          .where('id', '=', target.id)
          .executeTakeFirstOrThrow()
      ).gc_sweeping_run;
    // A backup was granted its commit, then its agent died: the root may still land for 3 min.
    const held = await job('failed');
    expect(await lease(held)).toBe(true);
    expect(await grantCommit(ctx.db, held, clock)).toBeDefined();
    await releaseLease(ctx.db, held, clock, false);
    await new Promise((resolve) => setTimeout(resolve, 20));
    clock = new Date();
    const row = (await startGc(ctx, target.id, { dryRun: false, trigger: 'api', options: { pollMs: 20 } }))!;
    for (let i = 0; (await getGcRun(ctx, target.id, row.id)).phase !== 'wait'; i++) {
      expect(i).toBeLessThan(500);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // The run waits, but has not taken the target: a backup starting now gets its lease, not a queue.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await sweeping()).toBeNull();
    const fresh = await job('running');
    expect(await lease(fresh)).toBe(true);
    await releaseLease(ctx.db, fresh, clock, true);
    // Once the hold has passed, the run takes the target, finds nothing holding it, and sweeps.
    clock = new Date(clock.getTime() + COMMIT_VALID_MS + COMMIT_MARGIN_MS + 1000);
    await gcRunsSettled(ctx, row.id);
    expect((await getGcRun(ctx, target.id, row.id)).state).toBe('succeeded');
    expect(await sweeping()).toBeNull();
  });

  it('runs one GC per target at a time, and fails a run whose manager went silent, letting the target go', async () => {
    const runId = randomUUID();
    const longAgo = new Date(clock.getTime() - 10 * 60_000);
    await ctx.db
      .insertInto('backup_gc_run')
      .values({
        id: runId,
        backup_target_id: target.id,
        state: 'running',
        phase: 'sweep',
        trigger: 'schedule',
        dry_run: false,
        grace_seconds: 0,
        cutoff: longAgo,
        started_at: longAgo,
        heartbeat_at: new Date(clock.getTime() - 60_000),
      })
      .execute();
    await ctx.db
      .updateTable('backup_target')
      .set({ gc_sweeping_run: runId })
      .where('id', '=', target.id)
      .execute();
    // Its heartbeat is a minute old: alive, so a second run is refused.
    await expect(startGc(ctx, target.id, { dryRun: true, trigger: 'api' })).rejects.toMatchObject({
      code: 'conflict',
      details: { gc_run_id: runId },
    });
    clock = new Date(clock.getTime() + 5 * 60_000);
    expect(await failStaleRuns(ctx)).toBe(1);
    const stale = await getGcRun(ctx, target.id, runId);
    expect(stale).toMatchObject({ state: 'failed' });
    expect(stale.error?.message).toMatch(/went silent/);
    const t = await ctx.db
      .selectFrom('backup_target')
      .select('gc_sweeping_run')
      .where('id', '=', target.id)
      .executeTakeFirstOrThrow();
    expect(t.gc_sweeping_run).toBeNull();
    // The daily start goes ahead only if the newest scheduled run is still the one the caller saw.
    expect(
      await startGc(ctx, target.id, { dryRun: true, trigger: 'schedule', lastScheduledRun: null }),
    ).toBeUndefined();
    const daily = await startGc(ctx, target.id, {
      dryRun: true,
      trigger: 'schedule',
      lastScheduledRun: longAgo,
    });
    expect(daily).toBeDefined();
    await gcRunsSettled(ctx, daily!.id);
    expect(await getGcRun(ctx, target.id, daily!.id)).toMatchObject({
      state: 'succeeded',
      trigger: 'schedule',
    });
  });

  it('ends a run that was starting while its manager stopped, before the database closes, and starts no more', async () => {
    // The start is in flight (its row being written) when the manager stops: the stop must wait for it and
    // end it, or its row stays `running` and refuses every GC of the target until it goes stale.
    const starting = startGc(ctx, target.id, { dryRun: false, trigger: 'api', options: { pollMs: 20 } });
    await stopGcRuns(ctx);
    const row = await starting;
    expect(await getGcRun(ctx, target.id, row!.id)).toMatchObject({
      state: 'failed',
      error: { message: 'the manager is stopping' },
    });
    await expect(startGc(ctx, target.id, { dryRun: true, trigger: 'api' })).rejects.toMatchObject({
      code: 'unavailable',
    });
  });
});
