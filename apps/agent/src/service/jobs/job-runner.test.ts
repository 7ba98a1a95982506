import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BackendKind,
  type BackupRequest,
  type BackupResult,
  type Job,
  JobEvent,
  type RestoreRequest,
} from '@stowage/api';
import { Repository } from '@stowage/engine';
import {
  seededBytes,
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
import type { JobEventSink, Logger, RepositoryOpener } from '../contracts.js';
import { createJobRunner, type JobRunnerOptions, type LocalJobRunner } from './job-runner.js';
import { JobJournal, type JournalEntry } from './journal.js';

const SECRET_ACCESS_KEY = 'never-in-a-job-record-or-a-log';

/** Records every change the runner publishes (checked against the API schema) and when it came. */
class RecordingSink implements JobEventSink {
  readonly changes: { job: Job; change: 'progress' | 'state'; at: number }[] = [];
  jobChanged(job: Job, change: 'progress' | 'state'): void {
    JobEvent.shape.job.parse(job);
    this.changes.push({ job, change, at: performance.now() });
  }
  states(id: string): string[] {
    return this.changes.filter((c) => c.job.id === id && c.change === 'state').map((c) => c.job.state);
  }
  progress(id: string) {
    return this.changes.filter((c) => c.job.id === id && c.change === 'progress');
  }
  async flush(): Promise<void> {}
}

class RecordingLogger implements Logger {
  readonly lines: string[] = [];
  #log = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    this.lines.push(JSON.stringify({ level, message, ...fields }));
  };
  debug = this.#log('debug');
  info = this.#log('info');
  warn = this.#log('warn');
  error = this.#log('error');
}

let dir: string;
let root: string;
let store: MemoryObjectStore;
let repository: Repository;
let backend: LocalFileBackend;
let sink: RecordingSink;
let logger: RecordingLogger;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-jobs-'));
  root = join(dir, 'volumes');
  await mkdir(root);
  store = new MemoryObjectStore();
  repository = await Repository.init(store, {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  backend = new LocalFileBackend({ roots: [root] });
  sink = new RecordingSink();
  logger = new RecordingLogger();
});

afterEach(() => rm(dir, { recursive: true, force: true }));

/** Opens the test repository through `wrap` (a slow or faulty store), as the agent's opener would. */
function opener(
  wrap: (store: ObjectStore) => ObjectStore = (s) => s,
  gate?: Promise<void>,
): RepositoryOpener {
  return async (target) => {
    await gate;
    expect(Buffer.from(target.target_key, 'base64')).toEqual(Buffer.from(repository.targetKey));
    return Repository.openWithKey(wrap(store), Buffer.from(target.target_key, 'base64'));
  };
}

function runner(options: Partial<JobRunnerOptions> = {}): LocalJobRunner {
  return createJobRunner({
    backends: new Map<BackendKind, HostBackend>([['local-file', backend]]),
    openRepository: opener(),
    events: sink,
    threads: 2,
    journal: new JobJournal(join(dir, 'state')),
    logger,
    ...options,
  });
}

/** The local-file backend without the capabilities of a block device: no provisioning, no snapshots. */
function withoutCapabilities(inner: HostBackend): HostBackend {
  return Object.create(inner, { capabilities: { value: { provision: false, snapshot: false } } });
}

async function volume(name: string, size = 6 << 20) {
  const info = await backend.provision({ name, size });
  await writeTestVolume(info.locator, size, name);
  return info;
}

function targetSettings() {
  return {
    repository: 's3://bucket/prefix',
    credentials: { access_key_id: 'AKIATEST', secret_access_key: SECRET_ACCESS_KEY },
    target_key: Buffer.from(repository.targetKey).toString('base64'),
  };
}

function backupRequest(locator: string, extra: Partial<BackupRequest> = {}): BackupRequest {
  return {
    job_id: randomUUID(),
    volume: { backend: 'local-file', locator },
    volume_name: 'vol',
    // The test volumes live on the temp directory's filesystem, which may have no reflinks.
    snapshot: 'copy',
    target: targetSettings(),
    ...extra,
  };
}

function restoreRequest(job: Job, destination: RestoreRequest['destination']): RestoreRequest {
  const result = job.result as BackupResult;
  return {
    job_id: randomUUID(),
    backup: { volume_id: result.volume_id, backup_id: result.backup_id, manifest_key: result.manifest_key },
    destination,
    target: targetSettings(),
  };
}

async function settle(r: LocalJobRunner, id: string): Promise<Job> {
  for (;;) {
    const job = r.get(id)!;
    if (job.finished_at !== null) return job;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function backedUp(locator: string): Promise<Job> {
  const r = runner();
  const job = await settle(r, (await r.submitBackup(backupRequest(locator))).job_id);
  expect(job.state).toBe('succeeded');
  return job;
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

/** Every pack GET fails with a 503 (retried twice); the manifest, its segments and the config still load. */
function chunkGetsFail(s: ObjectStore): ObjectStore {
  const faulty = withRetry(
    withFaults(s, { rate: 1, random: createSeededRandom(1), ops: ['get'], kinds: ['error-before'] }),
    { attempts: 2, baseDelayMs: 1 },
  );
  return {
    location: s.location,
    head: (key) => s.head(key),
    get: (key, range) => (key.startsWith('packs/') ? faulty.get(key, range) : s.get(key, range)),
    put: (key, body, options) => s.put(key, body, options),
    delete: (key) => s.delete(key),
    deleteMany: (keys) => s.deleteMany(keys),
    list: (prefix) => s.list(prefix),
  };
}

/** The backend, with reads of every opened volume or snapshot waiting until `released`: a backup stays
 * mid-read, its snapshot taken, for as long as the test needs. `reading` gets each locator read. */
function heldReads(inner: HostBackend, released: Promise<void>, reading: string[]): HostBackend {
  const openReader: HostBackend['openReader'] = async (locator, options) => {
    const reader = await inner.openReader(locator, options);
    return {
      path: reader.path,
      size: reader.size,
      read: async (into, position) => {
        reading.push(locator);
        await released;
        return reader.read(into, position);
      },
      close: () => reader.close(),
    };
  };
  return Object.create(inner, { openReader: { value: openReader } });
}

/** A 16 MiB volume and a runner whose reads of it wait until `release()`: jobs held mid-backup. */
async function heldBackups(name: string, options: Partial<JobRunnerOptions> = {}) {
  const source = await volume(name, 16 << 20);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const reading: string[] = [];
  const r = runner({
    backends: new Map<BackendKind, HostBackend>([['local-file', heldReads(backend, released, reading)]]),
    ...options,
  });
  return { source, release, reading, r };
}

/** A runner of one job at a time whose repository opens only once `open()` is called, and two backups
 * submitted to it: the first waits for its repository, the second for its turn. */
async function twoBackupsOneAtATime() {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const r = runner({ concurrency: 1, openRepository: opener(undefined, gate) });
  const a = await volume('a', 1 << 20);
  const b = await volume('b', 1 << 20);
  const first = await r.submitBackup(backupRequest(a.locator));
  const second = await r.submitBackup(backupRequest(b.locator, { volume_name: 'b' }));
  return { r, open, first, second };
}

/** Journal records left in the state directory (none before the first job wrote one). */
async function journalLeft(): Promise<string[]> {
  return readdir(join(dir, 'state', 'jobs')).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
}

async function waitUntil(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('job runner', () => {
  it('backs a volume up from a snapshot and restores it to a new volume byte-exact', async () => {
    const r = runner();
    const source = await volume('web-1');
    const accepted = await r.submitBackup(backupRequest(source.locator));
    expect(['queued', 'running']).toContain(accepted.state);
    const backup = await settle(r, accepted.job_id);
    expect(backup.state).toBe('succeeded');
    expect(backup.error).toBeNull();
    expect(backup.result).toMatchObject({
      volume_name: 'vol',
      size: 6 << 20,
      bytes_read: 6 << 20,
      snapshot: expect.stringMatching(/reflink|copy/),
    });
    expect(sink.states(backup.id)).toEqual(['queued', 'running', 'succeeded']);
    const all = sink.progress(backup.id);
    expect(all.length).toBeGreaterThan(0);
    expect(all.at(-1)!.job.progress).toMatchObject({
      phase: 'transfer',
      bytes_done: 6 << 20,
      bytes_total: 6 << 20,
    });
    // A copy snapshot reports first, as its own phase, up to its whole.
    if ((backup.result as BackupResult).snapshot === 'copy') {
      expect(all[0]!.job.progress.phase).toBe('snapshot');
    }
    // At most four a second; only a phase's final 100 % may come sooner.
    const progress = all.filter((c) => c.job.progress.bytes_done < c.job.progress.bytes_total);
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]!.at - progress[i - 1]!.at).toBeGreaterThanOrEqual(249);
    }
    expect(await backend.listSnapshots(source.locator)).toEqual([]);

    const restore = await settle(
      r,
      (await r.submitRestore(restoreRequest(backup, { backend: 'local-file', name: 'web-1-restored' })))
        .job_id,
    );
    expect(restore.state).toBe('succeeded');
    expect(sink.states(restore.id)).toEqual(['queued', 'running', 'succeeded']);
    const restored = restore.destination!.volume!;
    expect(restore.destination?.state).toBe('available');
    expect(restored).toMatchObject({ backend: 'local-file', name: 'web-1-restored', size: 6 << 20 });
    expect(restore.result).toMatchObject({ volume: restored, size: 6 << 20, bytes_written: 6 << 20 });
    expect(await sha256File(restored.locator)).toBe(await sha256File(source.locator));
    expect(await journalLeft()).toEqual([]);
  });

  it('restores into an existing volume, writing zeros over old data where the backup has holes', async () => {
    const source = await volume('holey', 4 << 20);
    const backup = await backedUp(source.locator);
    const existing = await backend.provision({ name: 'dirty', size: 5 << 20 });
    const handle = await open(existing.locator, 'r+');
    await handle.write(seededBytes('old data', 5 << 20), 0, 5 << 20, 0);
    await handle.close();

    const r = runner();
    const job = await settle(
      r,
      (await r.submitRestore(restoreRequest(backup, { backend: 'local-file', locator: existing.locator })))
        .job_id,
    );
    expect(job.state).toBe('succeeded');
    expect(job.destination).toEqual({
      volume: { backend: 'local-file', locator: existing.locator, name: 'dirty', size: 5 << 20 },
      state: 'available',
    });
    const head = Buffer.alloc(4 << 20);
    const restored = await open(existing.locator, 'r');
    await restored.read(head, 0, head.length, 0);
    await restored.close();
    const original = await open(source.locator, 'r');
    const expected = Buffer.alloc(4 << 20);
    await original.read(expected, 0, expected.length, 0);
    await original.close();
    expect(head.equals(expected)).toBe(true);

    const small = await backend.provision({ name: 'small', size: 1 << 20 });
    const tooSmall = await settle(
      r,
      (await r.submitRestore(restoreRequest(backup, { backend: 'local-file', locator: small.locator })))
        .job_id,
    );
    expect(tooSmall.state).toBe('failed');
    expect(tooSmall.error).toMatchObject({
      code: 'invalid_request',
      message: expect.stringContaining('holds'),
    });
    expect(await backend.stat(small.locator)).toMatchObject({ size: 1 << 20 });
  });

  it('runs at most `concurrency` jobs and queues the rest in order', async () => {
    const { r, open, first, second } = await twoBackupsOneAtATime();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.get(first.job_id)!.state).toBe('running');
    expect(r.get(second.job_id)!.state).toBe('queued');
    open();
    expect((await settle(r, first.job_id)).state).toBe('succeeded');
    expect((await settle(r, second.job_id)).state).toBe('succeeded');
    expect(Date.parse(r.get(second.job_id)!.started_at!)).toBeGreaterThanOrEqual(
      Date.parse(r.get(first.job_id)!.finished_at!),
    );
    expect(sink.states(second.job_id)).toEqual(['queued', 'running', 'succeeded']);
  });

  it('records a job in the journal when it is accepted, and drops the record of a queued job cancelled', async () => {
    const { r, open, first, second } = await twoBackupsOneAtATime();
    const journal = new JobJournal(join(dir, 'state'));
    const records = async () => new Map((await journal.leftovers()).map((l) => [l.entry?.id, l.entry]));
    // Both are on record before either touched the host: the first waits for its repository, the second
    // for its turn.
    expect((await records()).get(first.job_id)).toMatchObject({ kind: 'backup', queued: true });
    expect((await records()).get(second.job_id)).toMatchObject({ kind: 'backup', queued: true });
    expect(r.cancel(second.job_id).state).toBe('cancelled');
    for (let i = 0; (await records()).has(second.job_id); i++) {
      expect(i).toBeLessThan(500);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    open();
    expect((await settle(r, first.job_id)).state).toBe('succeeded');
    expect(await journalLeft()).toEqual([]);
    expect(sink.states(second.job_id)).toEqual(['queued', 'cancelled']);
  });

  it('while a job’s record is written: a cancel ends it at once, a resubmit shares its answer, order holds', async () => {
    // Each accept record's write waits for `open()` (or its job's own gate in `held`), or fails with `fail`.
    let open!: () => void;
    let gate = new Promise<void>((resolve) => (open = resolve));
    let fail = false;
    const held = new Map<string, Promise<void>>();
    class HeldJournal extends JobJournal {
      override async write(entry: JournalEntry): Promise<void> {
        if (entry.queued) {
          await (held.get(entry.id) ?? gate);
          if (fail) throw new Error('ENOSPC: no space left on device');
        }
        return super.write(entry);
      }
    }
    const journal = new HeldJournal(join(dir, 'state'));
    const r = runner({ concurrency: 1, journal });
    const a = await volume('a', 1 << 20);
    const b = await volume('b', 1 << 20);
    const c = await volume('c', 1 << 20);

    // A cancel while the record is written: the answer is cancelled at once, and the job never runs.
    const request = backupRequest(a.locator);
    const submitted = r.submitBackup(request);
    await waitUntil(() => r.get(request.job_id) !== undefined);
    expect(r.cancel(request.job_id).state).toBe('cancelled');
    open();
    expect((await submitted).state).toBe('cancelled');
    // Announced once its outcome is on record; never queued, never running.
    await waitUntil(() => sink.states(request.job_id).length > 0);
    expect(sink.states(request.job_id)).toEqual(['cancelled']);
    for (let i = 0; (await journalLeft()).length > 0; i++) {
      expect(i).toBeLessThan(500);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }

    // A record that cannot be written refuses the job, and an identical resubmit meanwhile is refused too.
    gate = new Promise<void>((resolve) => (open = resolve));
    fail = true;
    const refused = backupRequest(b.locator, { volume_name: 'b' });
    const first = r.submitBackup(refused).catch((error: unknown) => error);
    await waitUntil(() => r.get(refused.job_id) !== undefined);
    const retry = r.submitBackup(refused).catch((error: unknown) => error);
    open();
    for (const answer of [await first, await retry]) {
      expect(answer).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/no space left/) });
    }
    expect(r.get(refused.job_id)).toBeUndefined();
    expect(await journalLeft()).toEqual([]);

    // Jobs start in the order they were submitted, whichever record is written first.
    fail = false;
    gate = Promise.resolve();
    const earlier = backupRequest(b.locator, { volume_name: 'b' });
    const later = backupRequest(c.locator, { volume_name: 'c' });
    let release!: () => void;
    held.set(earlier.job_id, new Promise<void>((resolve) => (release = resolve)));
    const x = r.submitBackup(earlier);
    await waitUntil(() => r.get(earlier.job_id) !== undefined);
    const y = await r.submitBackup(later); // its record is written while the earlier one's waits
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.get(later.job_id)).toMatchObject({ state: 'queued', started_at: null });
    release();
    expect((await settle(r, (await x).job_id)).state).toBe('succeeded');
    expect((await settle(r, y.job_id)).state).toBe('succeeded');
    expect(Date.parse(r.get(later.job_id)!.started_at!)).toBeGreaterThanOrEqual(
      Date.parse(r.get(earlier.job_id)!.finished_at!),
    );
    expect(await journalLeft()).toEqual([]);
  });

  it('after a crash, reports a job it had accepted but not started as failed before it ran', async () => {
    const journal = new JobJournal(join(dir, 'state'));
    const id = randomUUID();
    const at = new Date().toISOString();
    await journal.write({ id, kind: 'restore', created_at: at, started_at: at, queued: true });
    const r = runner({ journal });
    const [job] = await r.recover();
    expect(job).toMatchObject({ id, state: 'failed', started_at: null, created_at: at });
    expect(job?.error?.message).toMatch(/agent stopped before the job ran .*; nothing to clean up$/);
    expect(sink.states(id)).toEqual(['failed']);
    expect(await journal.leftovers()).toEqual([]);
  });

  it('cancels a queued job without running it, and a running restore removing its new volume', async () => {
    const source = await volume('src', 8 << 20);
    const backup = await backedUp(source.locator);

    const r = runner({ concurrency: 1, openRepository: opener(slow(15)) });
    const restore = await r.submitRestore(
      restoreRequest(backup, { backend: 'local-file', name: 'restored' }),
    );
    const queued = await r.submitBackup(backupRequest(source.locator));
    expect(r.cancel(queued.job_id).state).toBe('cancelled');
    await waitUntil(() => r.get(restore.job_id)!.progress.bytes_done > 0);
    expect(r.cancel(restore.job_id).state).toBe('running');
    const cancelled = await settle(r, restore.job_id);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.error).toEqual({ code: 'cancelled', message: 'job cancelled by request' });
    expect(cancelled.result).toBeNull();
    expect(cancelled.destination).toMatchObject({ volume: { name: 'restored' }, state: 'removed' });
    expect((await backend.list()).map((v) => v.name)).toEqual(['src']);
    expect(sink.states(restore.job_id)).toEqual(['queued', 'running', 'cancelled']);
    expect(sink.states(queued.job_id)).toEqual(['queued', 'cancelled']);
    expect(r.get(queued.job_id)!.started_at).toBeNull();
    // Cancelling a finished job changes nothing; an unknown one is not_found.
    expect(r.cancel(restore.job_id)).toBe(r.get(restore.job_id));
    expect(sink.states(restore.job_id)).toHaveLength(3);
    expect(() => r.cancel(randomUUID())).toThrow(expect.objectContaining({ code: 'not_found' }));
  });

  it('cancels a running backup and deletes its snapshot', async () => {
    const { source, release, reading, r } = await heldBackups('busy');
    const job = await r.submitBackup(backupRequest(source.locator));
    await waitUntil(() => reading.length > 0);
    const [snapshot] = await backend.listSnapshots(source.locator);
    expect(snapshot?.name).toBe(`stowage-job-${job.job_id}`);
    expect(reading[0]).toBe(snapshot?.locator);
    r.cancel(job.job_id);
    release();
    const cancelled = await settle(r, job.job_id);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.result).toBeNull();
    expect(sink.states(job.job_id)).toEqual(['queued', 'running', 'cancelled']);
    expect(await backend.listSnapshots(source.locator)).toEqual([]);
    expect(await journalLeft()).toEqual([]);
  });

  it('refuses at submit a volume that is missing or outside the roots, naming it', async () => {
    const r = runner();
    await expect(r.submitBackup(backupRequest(join(root, 'missing.img')))).rejects.toThrow(
      expect.objectContaining({ code: 'not_found', message: expect.stringContaining('missing.img') }),
    );
    await expect(r.submitBackup(backupRequest('/etc/passwd'))).rejects.toThrow(
      expect.objectContaining({ code: 'forbidden' }),
    );
    await expect(
      r.submitRestore(
        restoreRequest(
          { result: { volume_id: randomUUID(), backup_id: randomUUID(), manifest_key: 'x' } } as never,
          { backend: 'local-file', locator: '/etc/shadow' },
        ),
      ),
    ).rejects.toThrow(expect.objectContaining({ code: 'forbidden' }));
    expect(r.list()).toEqual([]);
  });

  it('fails a job with a cause that names what went wrong', async () => {
    const source = await volume('faulty', 2 << 20);
    const faulty = runner({
      openRepository: opener((s) =>
        withRetry(
          withFaults(s, { rate: 1, random: createSeededRandom(3), ops: ['put'], kinds: ['error-before'] }),
          { attempts: 2, baseDelayMs: 1 },
        ),
      ),
    });
    const failed = await settle(faulty, (await faulty.submitBackup(backupRequest(source.locator))).job_id);
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('internal');
    expect(failed.error?.message).toMatch(
      /^injected error-before fault on put (packs|chunks|index)\/.*still failing after retries/,
    );
    expect(failed.error?.details).toMatchObject({
      error: 'ObjectStoreError',
      error_kind: 'transient',
      op: 'put',
      key: expect.stringMatching(/^(packs|chunks|index)\//),
    });
    expect(await backend.listSnapshots(source.locator)).toEqual([]);

    const r = runner();
    const [volumeId, backupId] = [randomUUID(), randomUUID()];
    const missingBackup = await settle(
      r,
      (
        await r.submitRestore({
          ...restoreRequest(await backedUp(source.locator), { backend: 'local-file', name: 'never' }),
          backup: {
            volume_id: volumeId,
            backup_id: backupId,
            manifest_key: `manifests/${volumeId}/${backupId}`,
          },
        })
      ).job_id,
    );
    expect(missingBackup.error).toMatchObject({
      code: 'not_found',
      message: expect.stringContaining('manifests/'),
    });
    expect(missingBackup.destination).toBeNull(); // nothing was provisioned
    await expect(backend.stat(join(root, 'never'))).rejects.toMatchObject({ kind: 'not-found' });
  });

  it('fails a restore whose chunks cannot be read: a new volume is removed, an existing one marked failed', async () => {
    const source = await volume('unreadable', 2 << 20);
    const backup = await backedUp(source.locator);
    const r = runner({ openRepository: opener(chunkGetsFail) });

    const fresh = await settle(
      r,
      (await r.submitRestore(restoreRequest(backup, { backend: 'local-file', name: 'new' }))).job_id,
    );
    expect(fresh.state).toBe('failed');
    expect(fresh.error?.message).toMatch(/get packs\/.*still failing after retries/);
    expect(fresh.destination).toMatchObject({ volume: { name: 'new' }, state: 'removed' });
    await expect(backend.stat(join(root, 'new'))).rejects.toMatchObject({ kind: 'not-found' });

    const existing = await backend.provision({ name: 'kept', size: 2 << 20 });
    const kept = await settle(
      r,
      (await r.submitRestore(restoreRequest(backup, { backend: 'local-file', locator: existing.locator })))
        .job_id,
    );
    expect(kept.state).toBe('failed');
    expect(kept.destination).toMatchObject({ volume: { locator: existing.locator }, state: 'failed' });
    expect(await backend.stat(existing.locator)).toMatchObject({ size: 2 << 20 });
    expect(await journalLeft()).toEqual([]);
  });

  it('refuses at submit what it can tell is wrong without touching the host', async () => {
    const r = runner({
      backends: new Map<BackendKind, HostBackend>([['block', withoutCapabilities(backend)]]),
    });
    const source = await volume('plain', 1 << 20);
    await expect(r.submitBackup(backupRequest(source.locator))).rejects.toThrow(
      expect.objectContaining({ code: 'not_found', message: expect.stringContaining('local-file') }),
    );
    await expect(
      r.submitBackup(
        backupRequest(source.locator, {
          volume: { backend: 'block', locator: source.locator },
          snapshot: true,
        }),
      ),
    ).rejects.toThrow(expect.objectContaining({ code: 'unsupported' }));
    const backup = await backedUp(source.locator);
    await expect(r.submitRestore(restoreRequest(backup, { backend: 'block', name: 'x' }))).rejects.toThrow(
      expect.objectContaining({ code: 'unsupported' }),
    );
    expect(r.list()).toEqual([]);

    // Where the backend cannot snapshot, the default reads the live volume and says so.
    const live = await settle(
      r,
      (
        await r.submitBackup(
          backupRequest(source.locator, {
            volume: { backend: 'block', locator: source.locator },
            snapshot: undefined,
          }),
        )
      ).job_id,
    );
    expect(live.state).toBe('succeeded');
    expect((live.result as BackupResult).snapshot).toBe('none');
  });

  it('retried S3 faults still give a complete backup that restores byte-exact', async () => {
    const source = await volume('flaky', 4 << 20);
    const flaky = (s: ObjectStore) =>
      withRetry(withFaults(s, { rate: 0.2, random: createSeededRandom(5) }), { attempts: 8, baseDelayMs: 1 });
    const r = runner({ openRepository: opener(flaky) });
    const backup = await settle(r, (await r.submitBackup(backupRequest(source.locator))).job_id);
    expect(backup.state).toBe('succeeded');
    const restore = await settle(
      r,
      (await r.submitRestore(restoreRequest(backup, { backend: 'local-file', name: 'flaky-r' }))).job_id,
    );
    expect(restore.state).toBe('succeeded');
    expect(await sha256File(restore.destination!.volume!.locator)).toBe(await sha256File(source.locator));
  });

  it('makes submits idempotent by job id and refuses a different request under the same id', async () => {
    const r = runner();
    const source = await volume('idem', 1 << 20);
    const request = backupRequest(source.locator);
    const first = await r.submitBackup(request);
    // Same content, other objects and key order: the same job.
    const again = await r.submitBackup({
      target: { ...request.target },
      volume: { locator: request.volume.locator, backend: request.volume.backend },
      volume_name: request.volume_name,
      snapshot: request.snapshot,
      job_id: request.job_id,
    });
    expect(again.job_id).toBe(first.job_id);
    await expect(r.submitBackup({ ...request, volume_name: 'other' })).rejects.toThrow(
      expect.objectContaining({ code: 'conflict' }),
    );
    const done = await settle(r, first.job_id);
    expect(await r.submitBackup(request)).toEqual({ job_id: first.job_id, state: 'succeeded' });
    await expect(
      r.submitRestore({
        ...restoreRequest(done, { backend: 'local-file', name: 'x' }),
        job_id: first.job_id,
      }),
    ).rejects.toThrow(expect.objectContaining({ code: 'conflict' }));
    // Ids are UUIDs: an upper-case spelling is the same job, not a second backup.
    expect(await r.submitBackup({ ...request, job_id: request.job_id.toUpperCase() })).toEqual({
      job_id: first.job_id,
      state: 'succeeded',
    });
    expect(r.get(first.job_id.toUpperCase())?.id).toBe(first.job_id);
    expect(r.list().filter((job) => job.id === first.job_id)).toHaveLength(1);
    expect(sink.states(first.job_id)).toEqual(['queued', 'running', 'succeeded']);
  });

  it('keeps secrets out of job records, events and logs', async () => {
    const r = runner();
    const source = await volume('secret', 1 << 20);
    const backup = await settle(r, (await r.submitBackup(backupRequest(source.locator))).job_id);
    await settle(
      r,
      (await r.submitRestore(restoreRequest(backup, { backend: 'local-file', name: 'secret-r' }))).job_id,
    );
    await expect(r.submitBackup(backupRequest(join(root, 'nope.img')))).rejects.toThrow();
    const key = Buffer.from(repository.targetKey).toString('base64');
    const everything = JSON.stringify([sink.changes, logger.lines, r.list()]);
    expect(logger.lines.length).toBeGreaterThan(0);
    expect(everything).not.toContain(SECRET_ACCESS_KEY);
    expect(everything).not.toContain(key);
    expect(everything).not.toContain('AKIATEST');
  });

  it('keeps a bounded history of finished jobs', async () => {
    const r = runner({ historyLimit: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const source = await volume(`small-${i}`, 64 << 10);
      const id = (await r.submitBackup(backupRequest(source.locator))).job_id;
      await settle(r, id);
      ids.push(id);
    }
    expect(r.list().map((job) => job.id)).toEqual(ids.slice(1));
    expect(r.get(ids[0]!)).toBeUndefined();
  });

  it('shuts down: cancels running and queued jobs after the grace period, cleans up, refuses new work', async () => {
    const { source, release, reading, r } = await heldBackups('shut', { concurrency: 1 });
    const other = await volume('shut-2', 1 << 20);
    const runningRequest = backupRequest(source.locator);
    const running = await r.submitBackup(runningRequest);
    const queued = await r.submitBackup(backupRequest(other.locator));
    await waitUntil(() => reading.length > 0);
    // The reads go on only well after the 50 ms grace has run out, so the running job is cancelled.
    setTimeout(release, 300);
    await r.shutdown(50);
    expect(r.get(running.job_id)!.state).toBe('cancelled');
    expect(r.get(running.job_id)!.error).toEqual({
      code: 'cancelled',
      message: 'job cancelled: the agent is shutting down',
    });
    expect(r.get(queued.job_id)!.state).toBe('cancelled');
    expect(sink.states(running.job_id)).toEqual(['queued', 'running', 'cancelled']);
    expect(sink.states(queued.job_id)).toEqual(['queued', 'cancelled']);
    expect(await backend.listSnapshots(source.locator)).toEqual([]);
    expect(await journalLeft()).toEqual([]);
    await expect(r.submitBackup(backupRequest(source.locator))).rejects.toThrow(
      expect.objectContaining({ code: 'unavailable' }),
    );
    // A retried submit of a job it knows still gets that job.
    expect(await r.submitBackup(runningRequest)).toEqual({ job_id: running.job_id, state: 'cancelled' });
  });

  it('gives up on a job that does not stop within the clean-up bound, keeping its journal record', async () => {
    const { source, release, reading, r } = await heldBackups('hung');
    const job = await r.submitBackup(backupRequest(source.locator));
    await waitUntil(() => reading.length > 0);
    // The read ignores its cancel (a hung device): shutdown returns after its bounds with the job named.
    const stuck = await r.shutdown(20, 50);
    expect(stuck.map((j) => j.id)).toEqual([job.job_id]);
    expect(await journalLeft()).toEqual([`${job.job_id}.json`]);
    // When the device answers, the job ends as cancelled and cleans up after all.
    release();
    await settle(r, job.job_id);
    expect(r.get(job.job_id)!.state).toBe('cancelled');
    expect(await backend.listSnapshots(source.locator)).toEqual([]);
  });

  it('shuts down after running jobs that finish within the grace period', async () => {
    const source = await volume('quick', 1 << 20);
    const r = runner();
    const job = await r.submitBackup(backupRequest(source.locator));
    await r.shutdown(60_000);
    expect(r.get(job.job_id)!.state).toBe('succeeded');
    expect(await backend.listSnapshots(source.locator)).toEqual([]);
  });

  it('after a crash, deletes what the dead job left and reports it failed', async () => {
    const journal = new JobJournal(join(dir, 'state'));
    const source = await volume('crashed', 1 << 20);
    const backupId = randomUUID();
    const snapshot = await backend.snapshot(source.locator, `stowage-job-${backupId}`, { allowCopy: true });
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

  it('after a crash between a job’s end and its durable report, reports the outcome and undoes nothing', async () => {
    const journal = new JobJournal(join(dir, 'state'));
    const source = await volume('done', 1 << 20);
    const backup = await backedUp(source.locator);
    // A sink that cannot make the final event durable: the record, with the outcome, stays for the next start.
    const failing: JobEventSink = {
      jobChanged: (job, change) => sink.jobChanged(job, change),
      flush: () => Promise.reject(new Error('outbox disk full')),
    };
    const first = runner({ journal, events: failing });
    const restore = await settle(
      first,
      (await first.submitRestore(restoreRequest(backup, { backend: 'local-file', name: 'restored-ok' })))
        .job_id,
    );
    expect(restore.state).toBe('succeeded');
    await waitUntil(() => logger.lines.some((line) => line.includes('journal entry kept')));
    expect((await journal.leftovers()).map((l) => l.entry?.final?.state)).toEqual(['succeeded']);

    sink.changes.length = 0;
    const next = runner({ journal });
    const recovered = await next.recover();
    expect(recovered).toEqual([restore]);
    expect(sink.states(restore.id)).toEqual(['succeeded']);
    expect(await sha256File(restore.destination!.volume!.locator)).toBe(await sha256File(source.locator));
    expect(await journal.leftovers()).toEqual([]);
  });

  it('recovers the other journal entries when one cannot be reported now, keeping its record', async () => {
    const journal = new JobJournal(join(dir, 'state'));
    const at = new Date().toISOString();
    const ids = [randomUUID(), randomUUID()].sort();
    for (const id of ids) {
      await journal.write({ id, kind: 'backup', created_at: at, started_at: at, backend: 'local-file' });
    }
    let flushes = 0;
    const flaky: JobEventSink = {
      jobChanged: (job, change) => sink.jobChanged(job, change),
      flush: () => (flushes++ === 0 ? Promise.reject(new Error('outbox disk full')) : Promise.resolve()),
    };
    const r = runner({ journal, events: flaky });
    const recovered = await r.recover();
    expect(recovered).toHaveLength(1);
    expect(logger.lines.some((line) => line.includes('could not report it or clean up after it now'))).toBe(
      true,
    );
    const left = (await journal.leftovers()).map((l) => l.entry?.id);
    expect(left).toHaveLength(1);
    expect(ids).toContain(left[0]);
    expect(left[0]).not.toBe(recovered[0]!.id);
  });

  it('keeps the record of a backup whose snapshot would not delete, and the next start deletes it', async () => {
    const journal = new JobJournal(join(dir, 'state'));
    const source = await volume('sticky', 1 << 20);
    const refusing: HostBackend = Object.create(backend, {
      deleteSnapshot: { value: () => Promise.reject(new Error('device busy')) },
    });
    const first = runner({
      journal,
      backends: new Map<BackendKind, HostBackend>([['local-file', refusing]]),
    });
    const job = await settle(first, (await first.submitBackup(backupRequest(source.locator))).job_id);
    expect(job.state).toBe('succeeded'); // the backup itself is whole
    await waitUntil(() => logger.lines.some((line) => line.includes('the next start deletes the snapshot')));
    expect((await backend.listSnapshots(source.locator)).map((snap) => snap.name)).toEqual([
      `stowage-job-${job.id}`,
    ]);
    expect((await journal.leftovers()).map((l) => l.entry?.final?.state)).toEqual(['succeeded']);

    sink.changes.length = 0;
    const next = runner({ journal });
    expect((await next.recover()).map((j) => j.state)).toEqual(['succeeded']);
    expect(sink.states(job.id)).toEqual(['succeeded']);
    expect(await backend.listSnapshots(source.locator)).toEqual([]);
    expect(await journal.leftovers()).toEqual([]);
  });
});
