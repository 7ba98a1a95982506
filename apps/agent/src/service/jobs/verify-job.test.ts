import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BackendKind,
  type BackupResult,
  type Job,
  JobEvent,
  manifestKeyOf,
  type VerifyRequest,
  VerifyResult,
} from '@stowage/api';
import { Repository } from '@stowage/engine';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE, writeTestVolume } from '@stowage/engine/testing';
import { type HostBackend, LocalFileBackend } from '@stowage/host-backends';
import { MemoryObjectStore, type ObjectStore } from '@stowage/object-store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobEventSink } from '../contracts.js';
import { createJobRunner, type LocalJobRunner } from './job-runner.js';
import { JobJournal } from './journal.js';

/** Every change the runner publishes, checked against the API's event schema as the manager would. */
class RecordingSink implements JobEventSink {
  readonly jobs: Job[] = [];
  jobChanged(job: Job): void {
    JobEvent.shape.job.parse(job);
    this.jobs.push(job);
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
  dir = await mkdtemp(join(tmpdir(), 'stowage-verify-jobs-'));
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
});

afterEach(() => rm(dir, { recursive: true, force: true }));

function runner(wrap: (s: ObjectStore) => ObjectStore = (s) => s): LocalJobRunner {
  return createJobRunner({
    backends: new Map<BackendKind, HostBackend>([['local-file', backend]]),
    openRepository: async (target) =>
      Repository.openWithKey(wrap(store), Buffer.from(target.target_key, 'base64')),
    events: sink,
    threads: 2,
    journal: new JobJournal(join(dir, 'state')),
  });
}

const target = () => ({
  repository: 's3://bucket/prefix',
  credentials: { access_key_id: 'AKIATEST', secret_access_key: 'secret' },
  target_key: Buffer.from(repository.targetKey).toString('base64'),
});

async function settle(r: LocalJobRunner, id: string): Promise<Job> {
  for (;;) {
    const job = r.get(id)!;
    if (job.finished_at !== null) return job;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function backUp(r: LocalJobRunner, locator: string, name: string): Promise<BackupResult> {
  const accepted = await r.submitBackup({
    job_id: randomUUID(),
    volume: { backend: 'local-file', locator },
    volume_name: name,
    snapshot: false,
    target: target(),
  });
  const job = await settle(r, accepted.job_id);
  expect(job.state, JSON.stringify(job.error)).toBe('succeeded');
  return job.result as BackupResult;
}

function verifyRequest(backup: BackupResult, extra: Partial<VerifyRequest> = {}): VerifyRequest {
  return {
    job_id: randomUUID(),
    backup: {
      volume_id: backup.volume_id,
      backup_id: backup.backup_id,
      manifest_key: manifestKeyOf(backup.volume_id, backup.backup_id),
    },
    target: target(),
    ...extra,
  };
}

async function verified(
  r: LocalJobRunner,
  request: VerifyRequest,
): Promise<{ job: Job; result: VerifyResult }> {
  const accepted = await r.submitVerify(request);
  expect(['queued', 'running']).toContain(accepted.state);
  const job = await settle(r, accepted.job_id);
  expect(job.kind).toBe('verify');
  expect(job.state, JSON.stringify(job.error)).toBe('succeeded');
  return { job, result: VerifyResult.parse(job.result) };
}

async function packKeys(): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const info of store.list('packs/')) keys.add(info.key);
  return keys;
}

/** Flips bytes in the middle of an object: whatever chunk lies there no longer authenticates. */
/**
 * Flips 64 bytes at eight places spread over the object. One place alone (its middle) could land in a chunk
 * the backup under test does not name: the repository's keyed cut points move chunks from one run to the
 * next, and at 512 KiB chunks a pack of a 6 MiB volume holds only a dozen.
 */
async function corrupt(key: string): Promise<void> {
  const bytes = Buffer.from(await store.get(key));
  for (let k = 0; k < 8; k++) {
    const at = Math.floor((bytes.length * (2 * k + 1)) / 16);
    for (let i = at; i < Math.min(at + 64, bytes.length); i++) bytes[i] = bytes[i]! ^ 0xff;
  }
  await store.put(key, bytes);
}

describe('verify jobs', () => {
  it('verify a healthy backup, whole or a sample, and touch nothing on the host', async () => {
    const r = runner();
    const info = await backend.provision({ name: 'healthy', size: 6 << 20 });
    await writeTestVolume(info.locator, 6 << 20, 'healthy');
    const backup = await backUp(r, info.locator, 'healthy');

    const { result: full } = await verified(r, verifyRequest(backup));
    expect(full).toMatchObject({
      backup_id: backup.backup_id,
      volume_id: backup.volume_id,
      sample_percent: 100,
      damaged: false,
      missing_chunks: 0,
      corrupt_chunks: 0,
      problems: [],
      damaged_backups: [],
      repository_check: null,
      repository_check_error: null,
    });
    expect(full.chunks_total).toBeGreaterThan(10);
    expect(full.chunks_checked).toBe(full.chunks_total);

    const { result: sampled } = await verified(r, verifyRequest(backup, { sample_percent: 10 }));
    expect(sampled.sample_percent).toBe(10);
    expect(sampled.chunks_total).toBe(full.chunks_total);
    // Exactly ⌈10 %⌉ of the distinct chunk objects are read (the engine's selection sampling).
    expect(sampled.chunks_checked).toBe(Math.ceil(full.chunks_total / 10));
    expect(sampled.damaged).toBe(false);
    // A verify holds no volume: the volume can be deleted while nothing else runs, and no journal is left.
    await backend.deleteVolume(info.locator);
    expect(await readdir(join(dir, 'state', 'jobs'))).toEqual([]);
  });

  it('find a corrupt pack two backups share and name both backups, not a third that does not use it', async () => {
    const r = runner();
    const size = 6 << 20;
    const a = await backend.provision({ name: 'a', size });
    await writeTestVolume(a.locator, size, 'shared');
    const first = await backUp(r, a.locator, 'a');
    const firstPacks = await packKeys();
    // The second backup of the volume changes its tail only: it names the first backup's packs for the rest.
    const file = await open(a.locator, 'r+');
    await file.write(Buffer.alloc(1 << 20, 7), 0, 1 << 20, size - (1 << 20));
    await file.close();
    const second = await backUp(r, a.locator, 'a');
    expect(second.chunks_new).toBeLessThan(second.chunks);
    const other = await backend.provision({ name: 'other', size: 2 << 20 });
    await writeTestVolume(other.locator, 2 << 20, 'unrelated');
    const third = await backUp(r, other.locator, 'other');

    for (const key of firstPacks) await corrupt(key);
    const { result } = await verified(r, verifyRequest(second));

    expect(result.damaged).toBe(true);
    expect(result.corrupt_chunks).toBeGreaterThan(0);
    expect(result.problems.length).toBeGreaterThan(0);
    expect(result.problems.every((p) => p.problem === 'corrupt' && firstPacks.has(p.object_key))).toBe(true);
    expect(result.damage_record).toMatchObject({ action: 'written' });
    const named = new Map(result.damaged_backups.map((b) => [b.backup_id, b]));
    // The verified backup first, with its own count; the first backup found through the repository check.
    expect(result.damaged_backups[0]?.backup_id).toBe(second.backup_id);
    expect(named.get(second.backup_id)?.damaged_chunks).toBe(result.corrupt_chunks + result.missing_chunks);
    expect(named.get(first.backup_id)?.damaged_chunks).toBeGreaterThanOrEqual(
      named.get(second.backup_id)!.damaged_chunks,
    );
    expect(named.has(third.backup_id)).toBe(false);
    expect(result.damaged_backups_truncated).toBe(false);
    expect(result.repository_check?.manifests_checked).toBe(3);
    expect(result.repository_check_error).toBeNull();
    // The bucket knows too: both backups have damage records now (format §12), the third none.
    const records = new Set<string>();
    for await (const info of store.list('damage/')) records.add(info.key);
    expect(records).toEqual(
      new Set([
        `damage/${first.volume_id}/${first.backup_id}`,
        `damage/${second.volume_id}/${second.backup_id}`,
      ]),
    );
  });

  it('keep the verified backup’s findings when the repository check after them fails', async () => {
    const info = await backend.provision({ name: 'c', size: 4 << 20 });
    await writeTestVolume(info.locator, 4 << 20, 'check-fails');
    const backup = await backUp(runner(), info.locator, 'c');
    for (const key of await packKeys()) await store.delete(key);
    // The check lists packs/ (the verify never does): that listing fails.
    const failingPackListing = (inner: ObjectStore): ObjectStore =>
      new Proxy(inner, {
        get(target, property) {
          if (property === 'list') {
            return (prefix: string, options?: unknown) => {
              if (prefix.startsWith('packs/')) throw new Error('listing refused by the test');
              return target.list(prefix, options as never);
            };
          }
          const value: unknown = Reflect.get(target, property, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    const { result } = await verified(runner(failingPackListing), verifyRequest(backup));
    expect(result.damaged).toBe(true);
    expect(result.missing_chunks).toBeGreaterThan(0);
    expect(result.repository_check).toBeNull();
    expect(result.repository_check_error).toContain('listing refused by the test');
    expect(result.damaged_backups.map((b) => b.backup_id)).toEqual([backup.backup_id]);
  });

  it('report a verify the agent died during as failed at the next start', async () => {
    const id = randomUUID();
    const journal = new JobJournal(join(dir, 'state'));
    // What a verify writes before it starts reading: no backend, no volume, nothing to clean up.
    await journal.write({
      id,
      kind: 'verify',
      created_at: new Date().toISOString(),
      started_at: new Date().toISOString(),
    });
    const r = runner();
    const [job] = await r.recover();
    expect(job).toMatchObject({ id, kind: 'verify', state: 'failed' });
    expect(job?.error?.message).toMatch(/the agent stopped while the job was running.*nothing to clean up/);
    expect(sink.jobs.at(-1)).toMatchObject({ id, state: 'failed' });
    expect(await readdir(join(dir, 'state', 'jobs'))).toEqual([]);
  });

  it('fail a verify of a backup that is not there, with the cause', async () => {
    const r = runner();
    const volumeId = randomUUID();
    const backupId = randomUUID();
    const accepted = await r.submitVerify({
      job_id: randomUUID(),
      backup: { volume_id: volumeId, backup_id: backupId, manifest_key: manifestKeyOf(volumeId, backupId) },
      target: target(),
    });
    const job = await settle(r, accepted.job_id);
    expect(job.state).toBe('failed');
    expect(job.result).toBeNull();
    expect(job.error?.message).toContain(backupId);
  });
});
