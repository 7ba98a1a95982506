import type { Job, JobEvent } from '@stowage/api';
import { describe, expect, it } from 'vitest';
import type { JobRow } from '../db/schema.js';
import { decideJobEvent } from './job-events.js';

const JOB_ID = '6d1f8a2e-8d43-4a5e-9d7f-2b0c1e4a9f10';
const AT = '2026-12-02T07:00:00.000Z';
const NOW = new Date('2026-12-02T07:05:00.000Z');

function row(overrides: Partial<JobRow> = {}): JobRow {
  return {
    id: JOB_ID,
    kind: 'backup',
    state: 'queued',
    host_id: null,
    volume_id: null,
    backup_id: null,
    progress: { bytes_done: 0, bytes_total: 0, rate: 0, eta_seconds: null },
    error: null,
    result: null,
    last_event_seq: -1,
    last_event_at: null,
    created_at: new Date(AT),
    started_at: null,
    finished_at: null,
    request: null,
    ...overrides,
  };
}

function event(seq: number, job: Partial<Job>, type: JobEvent['type'] = 'progress'): JobEvent {
  return {
    event_id: `${JOB_ID}:${seq}`,
    agent_id: 'local',
    seq,
    type,
    at: AT,
    job: {
      id: JOB_ID,
      kind: 'backup',
      state: 'running',
      created_at: AT,
      started_at: AT,
      finished_at: null,
      progress: { bytes_done: 10, bytes_total: 100, rate: 5, eta_seconds: 18 },
      error: null,
      result: null,
      destination: null,
      ...job,
    },
  };
}

const result = {
  backup_id: '0b6f3f8e-1c1e-4a55-9a43-6f3b2e8f7a01',
  volume_id: '9a0e0c1b-5d5e-4f0a-8a43-1f3b2e8f7a02',
  volume_name: 'db',
  manifest_key: 'manifests/9a0e0c1b-5d5e-4f0a-8a43-1f3b2e8f7a02/0b6f3f8e-1c1e-4a55-9a43-6f3b2e8f7a01',
  created_at: AT,
  size: 100,
  bytes_read: 100,
  bytes_uploaded: 60,
  chunks: 3,
  chunks_new: 2,
  holes: 0,
  hole_bytes: 0,
  seconds: 1,
  snapshot: 'copy' as const,
};

describe('decideJobEvent', () => {
  it('applies a newer progress event: state, progress, sequence and the time it arrived', () => {
    const decision = decideJobEvent(row(), event(5, {}), NOW);
    expect(decision.apply).toBe(true);
    if (!decision.apply) return;
    expect(decision.job).toMatchObject({ state: 'running', last_event_seq: 5, last_event_at: NOW });
    expect(JSON.parse(decision.job.progress as string)).toEqual({
      bytes_done: 10,
      bytes_total: 100,
      rate: 5,
      eta_seconds: 18,
    });
    expect(decision.backup).toBeUndefined();
  });

  it('ignores a repeated or older event, so a retry never moves progress back', () => {
    expect(decideJobEvent(row({ last_event_seq: 5, state: 'running' }), event(5, {}), NOW)).toEqual({
      apply: false,
      reason: 'stale',
    });
    expect(decideJobEvent(row({ last_event_seq: 7, state: 'running' }), event(6, {}), NOW)).toEqual({
      apply: false,
      reason: 'stale',
    });
  });

  it('never moves a finished job back, whatever the event', () => {
    for (const state of ['succeeded', 'failed', 'cancelled'] as const) {
      expect(decideJobEvent(row({ state, last_event_seq: 3 }), event(9, {}), NOW)).toEqual({
        apply: false,
        reason: 'finished',
      });
    }
  });

  it('completes the backup row with the agent’s figures on success', () => {
    const finished = event(
      8,
      { state: 'succeeded', finished_at: '2026-12-02T07:01:00.000Z', result },
      'finished',
    );
    const decision = decideJobEvent(row({ state: 'running', last_event_seq: 5 }), finished, NOW);
    expect(decision.apply && decision.backup).toMatchObject({
      state: 'completed',
      size: 100,
      bytes_uploaded: 60,
      chunks: 3,
      chunks_new: 2,
      snapshot: 'copy',
      finished_at: new Date('2026-12-02T07:01:00.000Z'),
    });
  });

  it('fails the backup row with the agent’s cause, for a failure and for a cancel', () => {
    for (const state of ['failed', 'cancelled'] as const) {
      const error = {
        code: state === 'failed' ? ('internal' as const) : ('cancelled' as const),
        message: 'boom',
      };
      const decision = decideJobEvent(
        row({ state: 'running' }),
        event(2, { state, error, finished_at: AT }, 'finished'),
        NOW,
      );
      expect(decision.apply && decision.backup).toMatchObject({ state: 'failed' });
      if (decision.apply) expect(JSON.parse(decision.backup!.error as string)).toEqual(error);
    }
  });

  it('settles a restore’s new volume: available with its locator, or failed without one when removed', () => {
    const volume = { backend: 'local-file' as const, locator: '/srv/v/new.img', name: 'new', size: 100 };
    const ok = decideJobEvent(
      row({ kind: 'restore', state: 'running' }),
      event(
        3,
        {
          kind: 'restore',
          state: 'succeeded',
          finished_at: AT,
          result: {
            backup_id: result.backup_id,
            volume,
            size: 100,
            bytes_written: 100,
            bytes_downloaded: 60,
            chunks: 3,
            holes: 0,
            seconds: 1,
          },
        },
        'finished',
      ),
      NOW,
    );
    expect(ok.apply && ok.volume).toMatchObject({ state: 'available', locator: '/srv/v/new.img', size: 100 });
    const failed = decideJobEvent(
      row({ kind: 'restore', state: 'running' }),
      event(
        3,
        {
          kind: 'restore',
          state: 'failed',
          finished_at: AT,
          error: { code: 'no_space', message: 'full' },
          destination: { volume: null, state: 'removed' },
        },
        'finished',
      ),
      NOW,
    );
    expect(failed.apply && failed.volume).toMatchObject({ state: 'failed', locator: null });
  });

  it('refuses an event of another kind of job', () => {
    expect(decideJobEvent(row({ kind: 'restore' }), event(1, { kind: 'backup' }), NOW)).toEqual({
      apply: false,
      reason: 'mismatch',
    });
  });
});

describe('decideJobEvent for a verify job', () => {
  const BACKUP = '0b6f3f8e-1c1e-4a55-9a43-6f3b2e8f7a01';
  const VOLUME = '9a0e0c1b-5d5e-4f0a-8a43-1f3b2e8f7a02';
  const OTHER = '1c7a4f9e-2d2f-4b66-8b54-7a4c3f9a8b03';
  const verifyResult = (damaged: boolean) => ({
    backup_id: BACKUP,
    volume_id: VOLUME,
    sample_percent: 25,
    chunks_total: 40,
    chunks_checked: damaged ? 7 : 10,
    bytes_checked: 1000,
    segments_checked: 1,
    missing_chunks: damaged ? 3 : 0,
    corrupt_chunks: 0,
    chunks_from_copies: 0,
    problems: [],
    damaged,
    damage_record: null,
    damage_record_error: null,
    damaged_backups: damaged
      ? [
          { volume_id: VOLUME, backup_id: BACKUP, damaged_chunks: 3, manifest_damaged: false },
          { volume_id: VOLUME, backup_id: OTHER, damaged_chunks: 5, manifest_damaged: false },
        ]
      : [],
    damaged_backups_truncated: false,
    repository_check: null,
    repository_check_error: null,
    seconds: 1,
  });
  const verifyRow = row({ kind: 'verify', state: 'running', backup_id: BACKUP, last_event_seq: 2 });
  const finished = (job: Partial<Job>) => event(3, { kind: 'verify', finished_at: AT, ...job }, 'finished');

  it('records a healthy verify on its backup, with the share read and when', () => {
    const decision = decideJobEvent(
      verifyRow,
      finished({ state: 'succeeded', result: verifyResult(false) }),
      NOW,
    );
    expect(decision).toMatchObject({
      apply: true,
      job: { state: 'succeeded' },
      verify: { checked: true, at: new Date(AT), samplePercent: 25, damagedChunks: null, others: [] },
    });
    expect(decision.apply && decision.backup).toBeUndefined();
    expect(decision.apply && decision.volume).toBeUndefined();
  });

  it('marks the verified backup damaged and names the others apart', () => {
    const decision = decideJobEvent(
      verifyRow,
      finished({ state: 'succeeded', result: verifyResult(true) }),
      NOW,
    );
    expect(decision).toMatchObject({
      apply: true,
      verify: {
        checked: true,
        damagedChunks: 3,
        others: [{ volume_id: VOLUME, backup_id: OTHER, damaged_chunks: 5, manifest_damaged: false }],
      },
    });
  });

  it('keeps a failed verify’s cause, changing nothing else about the backup', () => {
    const error = { code: 'unavailable' as const, message: 'the bucket is unreachable' };
    const decision = decideJobEvent(verifyRow, finished({ state: 'failed', error }), NOW);
    expect(decision).toMatchObject({ apply: true, verify: { checked: false } });
    if (decision.apply && decision.verify && !decision.verify.checked) {
      expect(JSON.parse(decision.verify.error)).toEqual(error);
    }
    // A redelivered final event of a verify is stale like any other.
    const done = row({ kind: 'verify', state: 'succeeded', backup_id: BACKUP, last_event_seq: 3 });
    expect(decideJobEvent(done, finished({ state: 'failed', error }), NOW)).toEqual({
      apply: false,
      reason: 'finished',
    });
  });
});
