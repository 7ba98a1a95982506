import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiErrorBody,
  type BackendKind,
  type BackupRequest,
  type BackupResult,
  type Job,
  type RestoreRequest,
} from '@stowage/api';
import { Repository } from '@stowage/engine';
import {
  sha256File,
  TEST_CHUNKER_PARAMS,
  TEST_KDF,
  TEST_PASSPHRASE,
  writeTestVolume,
} from '@stowage/engine/testing';
import { type HostBackend, LocalFileBackend } from '@stowage/host-backends';
import { MemoryObjectStore } from '@stowage/object-store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobEventSink } from './contracts.js';
import { createAgentApp } from './http/app.js';
import { JobHistory } from './jobs/history.js';
import { createJobRunner, type LocalJobRunner } from './jobs/job-runner.js';
import { JobJournal } from './jobs/journal.js';
import { silentLogger } from './log.js';
import { AgentMetrics } from './metrics.js';

/**
 * What keeps a volume's data safe across the HTTP API and the job runner together (issue 7): one user of a
 * volume at a time, a restore never called good for a volume that is gone, resubmits that survive a restart.
 * The real runner and the real app over a local-file backend and an in-memory store; reads and writes of the
 * volumes can be held so that a job stays mid-way for as long as a test needs.
 */

const TOKEN = 'test-token-0123456789abcdef0123456789abcdef';
const json = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };

let dir: string;
let root: string;
let store: MemoryObjectStore;
let repository: Repository;
let backend: LocalFileBackend;
let gate: { held: boolean; waiting: Array<() => void>; touched: number };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-volume-safety-'));
  root = join(dir, 'volumes');
  await mkdir(root);
  store = new MemoryObjectStore();
  repository = await Repository.init(store, {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  backend = new LocalFileBackend({ roots: [root] });
  gate = { held: false, waiting: [], touched: 0 };
});

afterEach(async () => {
  release();
  await rm(dir, { recursive: true, force: true });
});

function hold(): void {
  gate.held = true;
  gate.touched = 0;
}

function release(): void {
  gate.held = false;
  for (const wake of gate.waiting.splice(0)) wake();
}

async function passGate(): Promise<void> {
  gate.touched++;
  while (gate.held) await new Promise<void>((resolve) => gate.waiting.push(resolve));
}

/** The backend with every read and write waiting while the gate is held (and a provision, once done). */
function gated(inner: HostBackend): HostBackend {
  return Object.create(inner, {
    provision: {
      value: async (request: { name: string; size: number }) => {
        const info = await inner.provision(request);
        await passGate();
        return info;
      },
    },
    openReader: {
      value: async (locator: string, options?: { signal?: AbortSignal }) => {
        const reader = await inner.openReader(locator, options);
        return {
          path: reader.path,
          size: reader.size,
          read: async (into: Uint8Array, position: number) => {
            await passGate();
            return reader.read(into, position);
          },
          close: () => reader.close(),
        };
      },
    },
    openWriter: {
      value: async (locator: string, options?: { signal?: AbortSignal }) => {
        const writer = await inner.openWriter(locator, options);
        return {
          path: writer.path,
          size: writer.size,
          fd: writer.fd,
          write: async (data: Uint8Array, position: number) => {
            await passGate();
            return writer.write(data, position);
          },
          sync: async () => {
            await passGate();
            return writer.sync();
          },
          close: () => writer.close(),
        };
      },
    },
  });
}

const noEvents: JobEventSink = { jobChanged() {}, async flush() {} };

function agent(options: { stateDir?: string; events?: JobEventSink } = {}) {
  const backends = new Map<BackendKind, HostBackend>([['local-file', gated(backend)]]);
  const stateDir = options.stateDir ?? join(dir, 'state');
  const runner = createJobRunner({
    backends,
    openRepository: async (target) => Repository.openWithKey(store, Buffer.from(target.target_key, 'base64')),
    events: options.events ?? noEvents,
    threads: 1,
    journal: new JobJournal(stateDir),
    history: new JobHistory(stateDir),
  });
  const app = createAgentApp({
    token: TOKEN,
    backends,
    runner,
    locks: runner.locks,
    metrics: new AgentMetrics(),
    logger: silentLogger,
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await app.request(path, {
      method,
      headers: json,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  };
  return { runner, call };
}

function target() {
  return {
    repository: 'file:///unused',
    target_key: Buffer.from(repository.targetKey).toString('base64'),
  };
}

function backupBody(locator: string, extra: Partial<BackupRequest> = {}): BackupRequest {
  return {
    job_id: randomUUID(),
    volume: { backend: 'local-file', locator },
    volume_name: 'vol',
    // The temp directory's filesystem may have no reflinks.
    snapshot: 'copy',
    target: target(),
    ...extra,
  };
}

function restoreBody(backup: BackupResult, destination: RestoreRequest['destination']): RestoreRequest {
  return {
    job_id: randomUUID(),
    backup: {
      volume_id: backup.volume_id,
      backup_id: backup.backup_id,
      manifest_key: backup.manifest_key,
    },
    destination,
    target: target(),
  };
}

async function settle(runner: LocalJobRunner, id: string): Promise<Job> {
  for (;;) {
    const job = runner.get(id);
    if (job?.finished_at) return job;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function waitForGate(): Promise<void> {
  while (gate.touched === 0) await new Promise((resolve) => setTimeout(resolve, 5));
}

async function makeVolume(name: string, size = 4 << 20) {
  const info = await backend.provision({ name, size });
  await writeTestVolume(info.locator, size, name);
  return info;
}

async function backedUp(runner: LocalJobRunner, locator: string): Promise<BackupResult> {
  const job = await settle(runner, (await runner.submitBackup(backupBody(locator))).job_id);
  expect(job.state).toBe('succeeded');
  return job.result as BackupResult;
}

function conflict(answer: { status: number; body: unknown }, jobId: string): void {
  expect(answer.status).toBe(409);
  const body = ApiErrorBody.parse(answer.body);
  expect(body.code).toBe('conflict');
  expect(body.message).toContain(jobId);
}

describe('one job per volume', () => {
  it('refuses to delete a volume a restore is writing (it used to answer 204 and the job still "succeeded")', async () => {
    const { runner, call } = agent();
    const source = await makeVolume('src');
    const backup = await backedUp(runner, source.locator);
    hold();
    const started = await call(
      'POST',
      '/v1/storage/restore',
      restoreBody(backup, { backend: 'local-file', name: 'vr' }),
    );
    expect(started.status).toBe(202);
    const jobId = started.body.job_id as string;
    await waitForGate();
    const locator = join(root, 'vr');
    const query = `backend=local-file&locator=${encodeURIComponent(locator)}`;
    conflict(await call('DELETE', `/v1/volume?${query}`), jobId);
    conflict(
      await call('POST', '/v1/snapshots', { backend: 'local-file', volume: locator, name: 's1' }),
      jobId,
    );
    conflict(await call('POST', '/v1/storage/backup', backupBody(locator)), jobId);
    conflict(
      await call('POST', '/v1/storage/restore', restoreBody(backup, { backend: 'local-file', locator })),
      jobId,
    );
    // The name is held too: nothing else may provision it meanwhile.
    conflict(await call('POST', '/v1/volumes', { backend: 'local-file', name: 'vr', size: 1 << 20 }), jobId);
    release();
    const job = await settle(runner, jobId);
    expect(job.state).toBe('succeeded');
    expect(job.destination?.state).toBe('available');
    expect((await stat(locator)).size).toBe(source.size);
    // Once the job is over, the volume is free.
    expect((await call('DELETE', `/v1/volume?${query}`)).status).toBe(204);
  });

  it('holds a new volume from the moment it exists: nothing takes it before its restore does', async () => {
    const { runner, call } = agent();
    const source = await makeVolume('window-src');
    const backup = await backedUp(runner, source.locator);
    hold();
    const restore = await call(
      'POST',
      '/v1/storage/restore',
      restoreBody(backup, { backend: 'local-file', name: 'fresh' }),
    );
    await waitForGate(); // the file exists; the job has not yet seen provision return
    const locator = join(root, 'fresh');
    await stat(locator);
    conflict(
      await call('POST', '/v1/storage/backup', backupBody(locator, { snapshot: false })),
      restore.body.job_id,
    );
    conflict(
      await call('DELETE', `/v1/volume?backend=local-file&locator=${encodeURIComponent(locator)}`),
      restore.body.job_id,
    );
    release();
    const job = await settle(runner, restore.body.job_id);
    expect(job.state).toBe('succeeded');
    expect((await stat(locator)).size).toBe(source.size);
  });

  it('refuses a restore over a volume a live backup is reading, and the reverse (the backup was torn)', async () => {
    const { runner, call } = agent();
    const volume = await makeVolume('live');
    const backup = await backedUp(runner, volume.locator);
    hold();
    const live = await call('POST', '/v1/storage/backup', backupBody(volume.locator, { snapshot: false }));
    expect(live.status).toBe(202);
    await waitForGate();
    conflict(
      await call(
        'POST',
        '/v1/storage/restore',
        restoreBody(backup, { backend: 'local-file', locator: volume.locator }),
      ),
      live.body.job_id,
    );
    // Another spelling of the same file is the same volume.
    const spelled = `${root}//./live`;
    conflict(
      await call('POST', '/v1/storage/backup', backupBody(spelled, { snapshot: false })),
      live.body.job_id,
    );
    release();
    expect((await settle(runner, live.body.job_id)).state).toBe('succeeded');

    hold();
    const restore = await call(
      'POST',
      '/v1/storage/restore',
      restoreBody(backup, { backend: 'local-file', locator: volume.locator }),
    );
    expect(restore.status).toBe(202);
    await waitForGate();
    conflict(
      await call('POST', '/v1/storage/backup', backupBody(volume.locator, { snapshot: false })),
      restore.body.job_id,
    );
    release();
    expect((await settle(runner, restore.body.job_id)).state).toBe('succeeded');
  });

  it("refuses to delete a backup job's own snapshot while the job reads it", async () => {
    const { runner, call } = agent();
    const volume = await makeVolume('snap');
    hold();
    const started = await call('POST', '/v1/storage/backup', backupBody(volume.locator));
    await waitForGate();
    const snapshots = await backend.listSnapshots(volume.locator);
    expect(snapshots.map((s) => s.name)).toEqual([`stowage-job-${started.body.job_id}`]);
    const query = `backend=local-file&locator=${encodeURIComponent(snapshots[0]!.locator)}`;
    conflict(await call('DELETE', `/v1/snapshot?${query}`), started.body.job_id);
    conflict(
      await call('DELETE', `/v1/volume?backend=local-file&locator=${volume.locator}`),
      started.body.job_id,
    );
    const reserved = await call('POST', '/v1/snapshots', {
      backend: 'local-file',
      volume: volume.locator,
      name: `stowage-job-${randomUUID()}`,
    });
    expect(reserved.status).toBe(400);
    release();
    expect((await settle(runner, started.body.job_id)).state).toBe('succeeded');
    expect(await backend.listSnapshots(volume.locator)).toEqual([]);
  });

  it('never reports a restore good whose volume was replaced behind its back (same path, another file)', async () => {
    const { runner, call } = agent();
    const source = await makeVolume('swap-src');
    const backup = await backedUp(runner, source.locator);
    const existing = await backend.provision({ name: 'swapped', size: source.size });
    hold();
    const started = await call(
      'POST',
      '/v1/storage/restore',
      restoreBody(backup, { backend: 'local-file', locator: existing.locator }),
    );
    await waitForGate();
    await unlink(existing.locator);
    await writeTestVolume(existing.locator, source.size, 'someone else');
    release();
    const job = await settle(runner, started.body.job_id);
    expect(job.state).toBe('failed');
    expect(job.error?.message).toContain('deleted while the restore');
  });

  it('never reports a restore good whose volume was deleted behind its back', async () => {
    const { runner, call } = agent();
    const source = await makeVolume('gone-src');
    const backup = await backedUp(runner, source.locator);
    const existing = await backend.provision({ name: 'gone', size: source.size });
    hold();
    const started = await call(
      'POST',
      '/v1/storage/restore',
      restoreBody(backup, { backend: 'local-file', locator: existing.locator }),
    );
    await waitForGate();
    await unlink(existing.locator); // not through the agent: an operator on the host
    release();
    const job = await settle(runner, started.body.job_id);
    expect(job.state).toBe('failed');
    expect(job.error?.code).toBe('not_found');
    expect(job.error?.message).toContain('deleted while the restore');
    expect(job.destination?.state).toBe('failed');
  });
});

describe('resubmits after a restart', () => {
  it('an identical resubmit after a crash finds the job (it used to be 409 "different request")', async () => {
    const stateDir = join(dir, 'state');
    const first = agent({ stateDir });
    const volume = await makeVolume('crash');
    hold();
    const request = backupBody(volume.locator);
    expect((await first.call('POST', '/v1/storage/backup', request)).status).toBe(202);
    await waitForGate();
    // The first process is "killed": its journal stays; a second one starts on the same state directory.
    const second = agent({ stateDir });
    await second.runner.recover();
    const again = await second.call('POST', '/v1/storage/backup', request);
    expect(again.status).toBe(202);
    expect(again.body).toEqual({ job_id: request.job_id, state: 'failed' });
    const upper = await second.call('POST', '/v1/storage/backup', {
      ...request,
      job_id: request.job_id.toUpperCase(),
    });
    expect(upper.body).toEqual({ job_id: request.job_id, state: 'failed' });
    expect(
      (await second.call('POST', '/v1/storage/backup', { ...request, volume_name: 'other' })).status,
    ).toBe(409);
    first.runner.cancel(request.job_id);
    release();
    await settle(first.runner, request.job_id);
  });

  it('a job that finished before a restart is still known by id, and its resubmit does no new work', async () => {
    const stateDir = join(dir, 'state');
    const first = agent({ stateDir });
    const volume = await makeVolume('done');
    const request = backupBody(volume.locator);
    await first.call('POST', '/v1/storage/backup', request);
    const done = await settle(first.runner, request.job_id);
    expect(done.state).toBe('succeeded');
    const second = agent({ stateDir });
    await second.runner.recover();
    expect((await second.call('GET', `/v1/jobs/${request.job_id}`)).body).toEqual(done);
    expect((await second.call('GET', `/v1/jobs/${request.job_id.toUpperCase()}`)).body).toEqual(done);
    const again = await second.call('POST', '/v1/storage/backup', request);
    expect(again.body).toEqual({ job_id: request.job_id, state: 'succeeded' });
    expect(second.runner.list()).toHaveLength(1);
  });
});

describe('snapshots are what they claim', () => {
  it('a default backup never silently reads a copy: a reflink, or unsupported saying how to ask for a copy', async () => {
    const { runner, call } = agent();
    const volume = await makeVolume('frozen');
    const started = await call(
      'POST',
      '/v1/storage/backup',
      backupBody(volume.locator, { snapshot: undefined }),
    );
    const job = await settle(runner, started.body.job_id);
    // The temp directory is on ext4 here (no reflinks); on btrfs or XFS the same request gets a reflink.
    if (job.state === 'succeeded') expect((job.result as BackupResult).snapshot).toBe('reflink');
    else {
      expect(job.error?.code).toBe('unsupported');
      expect(job.error?.message).toMatch(/reflink/);
      expect(job.error?.message).toMatch(/copy/);
    }
    expect(await backend.listSnapshots(volume.locator)).toEqual([]);
  });

  it('snapshot: "copy" says which kind the backup read and reports the copy as phase "snapshot"', async () => {
    const changes: Job[] = [];
    const { runner, call } = agent({ events: { jobChanged: (job) => changes.push(job), async flush() {} } });
    const volume = await makeVolume('copied', 8 << 20);
    const started = await call(
      'POST',
      '/v1/storage/backup',
      backupBody(volume.locator, { snapshot: 'copy' }),
    );
    const job = await settle(runner, started.body.job_id);
    expect(job.state).toBe('succeeded');
    const kind = (job.result as BackupResult).snapshot;
    expect(['reflink', 'copy']).toContain(kind);
    const phases = changes.filter((c) => c.state === 'running').map((c) => c.progress.phase);
    if (kind === 'copy') {
      expect(phases).toContain('snapshot');
      // The copy's progress comes first, then the transfer's, never back.
      expect(phases.indexOf('transfer')).toBeGreaterThan(phases.lastIndexOf('snapshot'));
    }
    expect(phases).toContain('transfer');
  });
});

describe('a backup is written once', () => {
  it('reusing a committed backup id fails the job as conflict and the first backup still restores its data', async () => {
    const { runner, call } = agent();
    const volume = await makeVolume('once', 2 << 20);
    const backupId = randomUUID();
    const first = await call(
      'POST',
      '/v1/storage/backup',
      backupBody(volume.locator, { backup_id: backupId }),
    );
    const committed = await settle(runner, first.body.job_id);
    expect(committed.state).toBe('succeeded');
    await writeTestVolume(volume.locator, volume.size, 'changed since');
    const second = await call(
      'POST',
      '/v1/storage/backup',
      backupBody(volume.locator, { backup_id: backupId }),
    );
    const refused = await settle(runner, second.body.job_id);
    expect(refused.state).toBe('failed');
    expect(refused.error?.code).toBe('conflict');
    expect(refused.error?.message).toContain(backupId);
    // The committed backup is the first one, whole: restored, it is the volume as it was then.
    const restore = await call(
      'POST',
      '/v1/storage/restore',
      restoreBody(committed.result as BackupResult, { backend: 'local-file', name: 'once-restored' }),
    );
    const restored = await settle(runner, restore.body.job_id);
    expect(restored.state).toBe('succeeded');
    await writeTestVolume(join(dir, 'expected.img'), volume.size, 'once');
    expect(await sha256File(join(root, 'once-restored'))).toBe(await sha256File(join(dir, 'expected.img')));
  });
});

describe('target keys', () => {
  it('a target key of another repository fails the job as wrong_key, not internal', async () => {
    const { runner, call } = agent();
    const volume = await makeVolume('keys');
    const other = Buffer.alloc(32, 9).toString('base64');
    const started = await call(
      'POST',
      '/v1/storage/backup',
      backupBody(volume.locator, { target: { ...target(), target_key: other } }),
    );
    const job = await settle(runner, started.body.job_id);
    expect(job.state).toBe('failed');
    expect(job.error?.code).toBe('wrong_key');
    expect(job.error?.message).toMatch(/key/);
  });
});
