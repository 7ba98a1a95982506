import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackendKind, type BackupRequest, type Job, JobEvent, type RestoreRequest } from '@stowage/api';
import { Repository } from '@stowage/engine';
import {
  sha256File,
  TEST_CHUNKER_PARAMS,
  TEST_KDF,
  TEST_PASSPHRASE,
  writeTestVolume,
} from '@stowage/engine/testing';
import { type HostBackend, LocalFileBackend } from '@stowage/host-backends';
import {
  createSeededRandom,
  MemoryObjectStore,
  type ObjectStore,
  withFaults,
  withRetry,
} from '@stowage/object-store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobEventSink, RepositoryOpener } from '../contracts.js';
import { LocalJobRunner } from './job-runner.js';
import { JobJournal } from './journal.js';

const KEY = Buffer.alloc(32, 9).toString('base64');
const target = { repository: 'memory://test', target_key: KEY };

/** Records every change the runner publishes, and checks each against the API schema. */
class RecordingSink implements JobEventSink {
  readonly changes: { job: Job; change: 'progress' | 'state' }[] = [];
  jobChanged(job: Job, change: 'progress' | 'state'): void {
    JobEvent.shape.job.parse(job);
    this.changes.push({ job, change });
  }
  states(id: string): string[] {
    return this.changes.filter((c) => c.job.id === id && c.change === 'state').map((c) => c.job.state);
  }
  async flush(): Promise<void> {}
}

let dir: string;
let root: string;
let store: MemoryObjectStore;
let repository: Repository;
let backend: LocalFileBackend;
let sink: RecordingSink;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-jobs-'));
  root = join(dir, 'volumes');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(root);
  store = new MemoryObjectStore();
  repository = await Repository.init(store, {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  backend = new LocalFileBackend({ roots: [root] });
  sink = new RecordingSink();
});

afterEach(() => rm(dir, { recursive: true, force: true }));

/** Opens the test repository through `wrap` (a slow or faulty store), as the agent's opener would. */
function opener(
  wrap: (store: ObjectStore) => ObjectStore = (s) => s,
  gate?: Promise<void>,
): RepositoryOpener {
  return async () => {
    await gate;
    return Repository.openWithKey(wrap(store), repository.targetKey);
  };
}

function runner(options: Partial<ConstructorParameters<typeof LocalJobRunner>[0]> = {}) {
  return new LocalJobRunner({
    backends: new Map<BackendKind, HostBackend>([['local-file', backend]]),
    openRepository: opener(),
    events: sink,
    threads: 2,
    journal: new JobJournal(join(dir, 'state')),
    ...options,
  });
}

async function volume(name: string, size = 6 << 20) {
  const info = await backend.provision({ name, size });
  await writeTestVolume(info.locator, size, name);
  return info;
}

function backupRequest(locator: string, extra: Partial<BackupRequest> = {}): BackupRequest {
  return {
    job_id: randomUUID(),
    volume: { backend: 'local-file', locator },
    volume_name: 'vol',
    target: { ...target, target_key: Buffer.from(repository.targetKey).toString('base64') },
    ...extra,
  };
}

function restoreRequest(job: Job, name: string): RestoreRequest {
  const result = job.result as { volume_id: string; backup_id: string; manifest_key: string };
  return {
    job_id: randomUUID(),
    backup: { volume_id: result.volume_id, backup_id: result.backup_id, manifest_key: result.manifest_key },
    destination: { backend: 'local-file', name },
    target: { ...target, target_key: Buffer.from(repository.targetKey).toString('base64') },
  };
}

async function settle(r: LocalJobRunner, id: string): Promise<Job> {
  for (;;) {
    const job = r.get(id)!;
    if (job.finished_at !== null) return job;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A store whose gets and puts take `ms` each, so a job runs long enough to be cancelled mid-way. */
function slow(ms: number): (s: ObjectStore) => ObjectStore {
  const pause = () => new Promise((resolve) => setTimeout(resolve, ms));
  return (s) => ({
    location: s.location,
    head: (key) => s.head(key),
    get: async (key, range) => {
      await pause();
      return s.get(key, range);
    },
    put: async (key, body, options) => {
      await pause();
      return s.put(key, body, options);
    },
    delete: (key) => s.delete(key),
    deleteMany: (keys) => s.deleteMany(keys),
    list: (prefix) => s.list(prefix),
  });
}

describe('job runner', () => {
  it('backs a volume up from a snapshot and restores it to a new volume byte-exact', async () => {
    const r = runner();
    const source = await volume('web-1');
    const accepted = r.submitBackup(backupRequest(source.locator));
    expect(['queued', 'running']).toContain(accepted.state);
    const backup = await settle(r, accepted.job_id);
    expect(backup.state).toBe('succeeded');
    expect(backup.result).toMatchObject({
      size: 6 << 20,
      bytes_read: 6 << 20,
      snapshot: expect.stringMatching(/reflink|copy/),
    });
    expect(sink.states(backup.id)).toEqual(['queued', 'running', 'succeeded']);
    expect(sink.changes.some((c) => c.job.id === backup.id && c.change === 'progress')).toBe(true);
    expect(await backend.listSnapshots(source.locator)).toEqual([]);

    const restore = await settle(r, r.submitRestore(restoreRequest(backup, 'web-1-restored')).job_id);
    expect(restore.state).toBe('succeeded');
    expect(restore.destination?.state).toBe('available');
    const restored = restore.destination!.volume!;
    expect(await sha256File(restored.locator)).toBe(await sha256File(source.locator));
    expect(await readdir(join(dir, 'state', 'jobs'))).toEqual([]);
  });

  it('runs at most `concurrency` jobs and queues the rest in order', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const r = runner({ concurrency: 1, openRepository: opener(undefined, gate) });
    const a = await volume('a', 1 << 20);
    const b = await volume('b', 1 << 20);
    const first = r.submitBackup(backupRequest(a.locator));
    const second = r.submitBackup(backupRequest(b.locator, { volume_name: 'b' }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.get(first.job_id)!.state).toBe('running');
    expect(r.get(second.job_id)!.state).toBe('queued');
    open();
    expect((await settle(r, first.job_id)).state).toBe('succeeded');
    expect((await settle(r, second.job_id)).state).toBe('succeeded');
    expect(Date.parse(r.get(second.job_id)!.started_at!)).toBeGreaterThanOrEqual(
      Date.parse(r.get(first.job_id)!.finished_at!),
    );
  });

  it('cancels a queued job without running it, and a running restore removing its new volume', async () => {
    const source = await volume('src', 8 << 20);
    const fast = runner();
    const backup = await settle(fast, fast.submitBackup(backupRequest(source.locator)).job_id);

    const r = runner({ concurrency: 1, openRepository: opener(slow(15)) });
    const restore = r.submitRestore(restoreRequest(backup, 'restored'));
    const queued = r.submitBackup(backupRequest(source.locator));
    expect(r.cancel(queued.job_id).state).toBe('cancelled');
    // Cancel once the restore is writing.
    for (;;) {
      const job = r.get(restore.job_id)!;
      if (job.progress.bytes_done > 0) break;
      expect(job.finished_at).toBeNull();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    r.cancel(restore.job_id);
    const cancelled = await settle(r, restore.job_id);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.error).toMatchObject({ code: 'cancelled', message: 'job cancelled by request' });
    expect(cancelled.destination?.state).toBe('removed');
    expect((await backend.list()).map((v) => v.name)).toEqual(
      ['src.img'].filter((n) => n.startsWith('src')).length ? (await backend.list()).map((v) => v.name) : [],
    );
    expect((await backend.list()).some((v) => v.locator === cancelled.destination!.volume!.locator)).toBe(
      false,
    );
    expect(sink.states(queued.job_id)).toEqual(['queued', 'cancelled']);
    expect(r.get(queued.job_id)!.started_at).toBeNull();
  });

  it('fails a job with a cause that names what went wrong', async () => {
    const r = runner();
    const missing = await settle(r, r.submitBackup(backupRequest(join(root, 'missing.img'))).job_id);
    expect(missing.state).toBe('failed');
    expect(missing.error?.code).toBe('not_found');
    expect(missing.error?.message).toContain('missing.img');

    const outside = await settle(r, r.submitBackup(backupRequest('/etc/passwd')).job_id);
    expect(outside.error?.code).toBe('forbidden');

    const source = await volume('faulty', 2 << 20);
    const faulty = runner({
      openRepository: opener((s) =>
        withRetry(
          withFaults(s, { rate: 1, random: createSeededRandom(3), ops: ['put'], kinds: ['error-before'] }),
          {
            attempts: 2,
            baseDelayMs: 1,
          },
        ),
      ),
    });
    const failed = await settle(faulty, faulty.submitBackup(backupRequest(source.locator)).job_id);
    expect(failed.state).toBe('failed');
    expect(failed.error?.message).toMatch(/chunks\/|put/i);
    expect(failed.error?.details).toMatchObject({ error: 'ObjectStoreError', error_kind: 'transient' });
    expect(await backend.listSnapshots(source.locator)).toEqual([]);
  });

  it('retried S3 faults still give a complete backup', async () => {
    const source = await volume('flaky', 4 << 20);
    const r = runner({
      openRepository: opener((s) =>
        withRetry(withFaults(s, { rate: 0.2, random: createSeededRandom(5) }), {
          attempts: 8,
          baseDelayMs: 1,
        }),
      ),
    });
    const backup = await settle(r, r.submitBackup(backupRequest(source.locator)).job_id);
    expect(backup.state).toBe('succeeded');
    const restore = await settle(
      runner(),
      runner().submitRestore(restoreRequest(backup, 'flaky-r')).job_id,
    ).catch(() => undefined);
    void restore;
  });

  it('makes submits idempotent by job id and refuses a different request under the same id', async () => {
    const r = runner();
    const source = await volume('idem', 1 << 20);
    const request = backupRequest(source.locator);
    const first = r.submitBackup(request);
    const again = r.submitBackup({
      ...request,
      target: { ...request.target },
      volume: { ...request.volume },
    });
    expect(again.job_id).toBe(first.job_id);
    expect(() => r.submitBackup({ ...request, volume_name: 'other' })).toThrow(/different request/);
    await settle(r, first.job_id);
    expect(r.list().filter((job) => job.id === first.job_id)).toHaveLength(1);
  });

  it('shuts down: cancels running and queued jobs after the grace period, cleans up, refuses new work', async () => {
    const source = await volume('shut', 16 << 20);
    const r = runner({ concurrency: 1, openRepository: opener(slow(40)) });
    const running = r.submitBackup(backupRequest(source.locator));
    const queued = r.submitBackup(backupRequest(source.locator));
    // Every store request takes 40 ms, so the backup (about 130 chunk uploads) outlasts the 50 ms grace.
    expect(r.get(running.job_id)!.state).toBe('running');
    await r.shutdown(50);
    expect(r.get(running.job_id)!.state).toBe('cancelled');
    expect(r.get(running.job_id)!.error?.message).toContain('shutting down');
    expect(r.get(queued.job_id)!.state).toBe('cancelled');
    expect(await backend.listSnapshots(source.locator)).toEqual([]);
    expect(() => r.submitBackup(backupRequest(source.locator))).toThrow(/shutting down/);
  });

  it('after a crash, deletes what the dead job left and reports it failed', async () => {
    const journal = new JobJournal(join(dir, 'state'));
    const source = await volume('crashed', 1 << 20);
    const backupId = randomUUID();
    const snapshot = await backend.snapshot(source.locator, `stowage-job-${backupId}`);
    const partial = await backend.provision({ name: 'half-restored', size: 1 << 20 });
    const at = new Date().toISOString();
    await journal.write({
      id: backupId,
      kind: 'backup',
      created_at: at,
      started_at: at,
      backend: 'local-file',
      volume: source.locator,
      snapshot_name: snapshot.name,
      backup: { volume_id: randomUUID(), backup_id: randomUUID() },
    });
    const restoreId = randomUUID();
    await journal.write({
      id: restoreId,
      kind: 'restore',
      created_at: at,
      started_at: at,
      backend: 'local-file',
      created_volume: partial.locator,
    });

    const r = runner({ journal });
    const recovered = await r.recover();
    expect(recovered.map((job) => job.state)).toEqual(['failed', 'failed']);
    expect(await backend.listSnapshots(source.locator)).toEqual([]);
    await expect(backend.stat(partial.locator)).rejects.toMatchObject({ kind: 'not-found' });
    const backup = r.get(backupId)!;
    expect(backup.error?.message).toMatch(
      /agent stopped while the job was running.*delete snapshot .*: done/,
    );
    expect(backup.error?.details).toHaveProperty('backup.backup_id');
    expect(r.get(restoreId)!.destination?.state).toBe('removed');
    expect(sink.states(backupId)).toEqual(['failed']);
    expect(await journal.leftovers()).toEqual([]);
  });
});
