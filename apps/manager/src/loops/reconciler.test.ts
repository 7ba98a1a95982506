import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, type Job, manifestKeyOf } from '@stowage/api';
import { ChunkWorkers } from '@stowage/engine';
import { backupImage } from '@stowage/engine/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentClient } from '../agents/agent-client.js';
import { insertBackup } from '../db/backups.js';
import { type ManagerDatabase, openDatabase } from '../db/database.js';
import { insertHost } from '../db/hosts.js';
import { insertJob } from '../db/jobs.js';
import { migrate } from '../db/migrate.js';
import { insertVolume } from '../db/volumes.js';
import { silentLogger } from '../log.js';
import { createSecretBox } from '../secrets/envelope.js';
import type { ManagerContext } from '../services/context.js';
import { applyJobEvent } from '../services/job-events.js';
import { createTarget, openTargetRepository } from '../targets/targets.js';
import { TEST_KDF } from '../testing/embedded.js';
import { reconcileOnce, staleJobs } from './reconciler.js';

const MINUTE = 60_000;

describe('staleJobs', () => {
  const job = (state: 'running' | 'succeeded', heardMinutesAgo: number | null, createdMinutesAgo = 60) => ({
    id: randomUUID(),
    state,
    last_event_at:
      heardMinutesAgo === null ? null : new Date(Date.UTC(2026, 0, 1, 12) - heardMinutesAgo * MINUTE),
    created_at: new Date(Date.UTC(2026, 0, 1, 12) - createdMinutesAgo * MINUTE),
  });
  it('picks unfinished jobs silent past the threshold, counting from creation when never heard from', () => {
    const now = new Date(Date.UTC(2026, 0, 1, 12));
    const jobs = [
      job('running', 11),
      job('running', 9),
      job('succeeded', 60),
      job('running', null, 11),
      job('running', null, 5),
    ];
    const stale = staleJobs(now, jobs as never, 10 * MINUTE).map((j) => j.id);
    expect(stale).toEqual([jobs[0]!.id, jobs[3]!.id]);
  });
});

describe('reconcileOnce', () => {
  let database: ManagerDatabase;
  let home: string;
  let clock = new Date('2026-06-01T12:00:00Z');
  let agentAnswer: (id: string) => Promise<Job>;
  let ctx: ManagerContext;
  let targetRow: Awaited<ReturnType<typeof createTarget>>['row'];
  let hostId: string;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'stowage-reconcile-'));
    database = await openDatabase({});
    await migrate(database);
    ctx = {
      db: database.db,
      secrets: createSecretBox(randomBytes(32)),
      now: () => clock,
      agentFor: () => ({ getJob: (id: string) => agentAnswer(id) }) as unknown as AgentClient,
      logger: silentLogger,
      jobChanged: () => {},
      kdf: TEST_KDF,
    };
    targetRow = (
      await createTarget(ctx, {
        name: 'fs',
        location: { kind: 'filesystem', path: join(home, 'repo') },
        credentials: undefined,
        passphrase: 'a long test passphrase',
        avgChunkSize: undefined,
        settings: {},
      })
    ).row;
    hostId = randomUUID();
    await insertHost(ctx.db, {
      id: hostId,
      name: 'h',
      url: 'http://127.0.0.1:9',
      agentToken: new Uint8Array(40),
      backends: [],
      now: clock,
    });
  });
  afterAll(async () => {
    await database?.close();
    rmSync(home, { recursive: true, force: true });
  });

  async function staleBackup() {
    const volumeId = randomUUID();
    const backupId = randomUUID();
    const jobId = randomUUID();
    await insertVolume(ctx.db, {
      id: volumeId,
      name: 'v',
      host_id: hostId,
      backend: 'local-file',
      locator: `/v/${volumeId}`,
      size: 1 << 20,
      state: 'available',
      backup_target_id: targetRow.id,
      created_at: clock,
      updated_at: clock,
    });
    await insertJob(ctx.db, {
      id: jobId,
      kind: 'backup',
      state: 'running',
      host_id: hostId,
      volume_id: volumeId,
      backup_id: backupId,
      created_at: clock,
      last_event_at: clock,
      last_event_seq: 3,
    });
    await insertBackup(ctx.db, {
      id: backupId,
      volume_id: volumeId,
      backup_target_id: targetRow.id,
      job_id: jobId,
      state: 'running',
      manifest_key: manifestKeyOf(volumeId, backupId),
      started_at: clock,
    });
    return { volumeId, backupId, jobId };
  }
  const later = (minutes: number) => {
    clock = new Date(clock.getTime() + minutes * MINUTE);
  };
  const rows = async (jobId: string, backupId: string) => ({
    job: await ctx.db.selectFrom('job').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow(),
    backup: await ctx.db
      .selectFrom('backup')
      .selectAll()
      .where('id', '=', backupId)
      .executeTakeFirstOrThrow(),
  });

  it('leaves a quiet job whose agent still runs it alone, heard from now', async () => {
    const { jobId, backupId } = await staleBackup();
    later(11);
    agentAnswer = async (id) => ({
      id,
      kind: 'backup',
      state: 'running',
      created_at: clock.toISOString(),
      started_at: clock.toISOString(),
      finished_at: null,
      progress: { bytes_done: 5, bytes_total: 10, rate: 1, eta_seconds: 5 },
      error: null,
      result: null,
      destination: null,
    });
    expect(await reconcileOnce(ctx, 10 * MINUTE)).toMatchObject({ checked: 1, alive: 1 });
    const { job, backup } = await rows(jobId, backupId);
    expect(job.state).toBe('running');
    expect(job.last_event_at?.getTime()).toBe(clock.getTime());
    expect(backup.state).toBe('running');
    // Heard from now: not checked again at the next pass.
    expect(await reconcileOnce(ctx, 10 * MINUTE)).toMatchObject({ checked: 0 });
    await ctx.db.updateTable('job').set({ state: 'cancelled' }).where('id', '=', jobId).execute();
  });

  it('records a silent backup whose manifest is committed as completed, from the manifest', async () => {
    const { volumeId, backupId, jobId } = await staleBackup();
    const image = join(home, 'image');
    writeFileSync(image, randomBytes(3 << 20));
    const { repository, close } = await openTargetRepository(ctx, targetRow);
    const workers = new ChunkWorkers(repository.targetKey, { threads: 1 });
    try {
      await backupImage(repository, workers, image, 'v', { volumeId, backupId });
    } finally {
      await workers.close();
      close();
    }
    later(11);
    agentAnswer = async () => {
      throw new ApiError('unavailable', 'the agent at http://127.0.0.1:9 is unreachable: ECONNREFUSED');
    };
    expect(await reconcileOnce(ctx, 10 * MINUTE)).toMatchObject({ checked: 1, completed: 1 });
    const { job, backup } = await rows(jobId, backupId);
    expect(job.state).toBe('succeeded');
    expect(backup).toMatchObject({ state: 'completed', size: 3 << 20 });
  });

  it('fails a silent backup with no manifest, saying why; a true outcome arriving later replaces the verdict', async () => {
    const { jobId, backupId } = await staleBackup();
    later(30);
    agentAnswer = async () => {
      throw new ApiError('not_found', 'no job');
    };
    expect(await reconcileOnce(ctx, 10 * MINUTE)).toMatchObject({ checked: 1, failed: 1 });
    const { job, backup } = await rows(jobId, backupId);
    expect(job.state).toBe('failed');
    expect((job.error as { message: string }).message).toMatch(
      /no word from the agent for 30 min and the agent at .* no longer knows the job/,
    );
    expect(backup.state).toBe('failed');
    // The agent was only cut off: its final event, retried until delivered, wins.
    const at = clock.toISOString();
    await applyJobEvent(
      ctx,
      {
        event_id: `${jobId}:9`,
        agent_id: 'h',
        seq: 9,
        type: 'finished',
        at,
        job: {
          id: jobId,
          kind: 'backup',
          state: 'succeeded',
          created_at: at,
          started_at: at,
          finished_at: at,
          progress: { bytes_done: 10, bytes_total: 10, rate: 1, eta_seconds: 0 },
          error: null,
          destination: null,
          result: {
            backup_id: backupId,
            volume_id: randomUUID(),
            volume_name: 'v',
            manifest_key: 'k',
            created_at: at,
            size: 10,
            bytes_read: 10,
            bytes_uploaded: 10,
            chunks: 1,
            chunks_new: 1,
            holes: 0,
            hole_bytes: 0,
            seconds: 1,
            snapshot: 'none',
          },
        },
      },
      { hostId },
    );
    const after = await rows(jobId, backupId);
    expect(after.job.state).toBe('succeeded');
    expect(after.backup).toMatchObject({ state: 'completed', size: 10 });
  });
});
