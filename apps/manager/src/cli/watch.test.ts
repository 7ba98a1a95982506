import { PassThrough } from 'node:stream';
import type { ManagedJob, ManagerClient } from '@stowage/api';
import { describe, expect, it } from 'vitest';
import type { CliEnv } from './context.js';
import { CliError, describeFailure, EXIT } from './exit-codes.js';
import { watchJob } from './watch.js';

// watchJob over a scripted event stream: the output modes and the exit codes of each outcome.

const ID = '0b0c6a51-7a4e-4f43-9d3e-2a1e5a7f6f10';
const base: ManagedJob = {
  id: ID,
  kind: 'backup',
  state: 'queued',
  host_id: null,
  volume_id: null,
  backup_id: null,
  created_at: '2025-01-31T14:05:09.000Z',
  started_at: null,
  finished_at: null,
  last_event_at: null,
  progress: { bytes_done: 0, bytes_total: 0, rate: 0, eta_seconds: null },
  error: null,
};
const running = (done: number): ManagedJob => ({
  ...base,
  state: 'running',
  started_at: '2025-01-31T14:05:10.000Z',
  progress: {
    phase: 'transfer',
    bytes_done: done,
    bytes_total: 100,
    rate: 10,
    eta_seconds: (100 - done) / 10,
  },
});
const ended = (state: 'succeeded' | 'failed' | 'cancelled'): ManagedJob => ({
  ...running(100),
  state,
  finished_at: '2025-01-31T14:05:22.500Z',
  error:
    state === 'succeeded'
      ? null
      : { code: state === 'failed' ? 'internal' : 'cancelled', message: `it ${state}` },
});

function fakeClient(streams: ManagedJob[][], current?: ManagedJob): ManagerClient {
  let call = 0;
  return {
    async *jobEvents() {
      for (const job of streams[call++] ?? []) yield job;
    },
    getJob: async () => current ?? streams.flat().at(-1)!,
  } as unknown as ManagerClient;
}

function env(options: { tty?: boolean } = {}) {
  const stdout = new PassThrough();
  const stderr = Object.assign(new PassThrough(), { isTTY: options.tty ?? false, columns: 100 });
  const out: string[] = [];
  const err: string[] = [];
  stdout.on('data', (d) => out.push(String(d)));
  stderr.on('data', (d) => err.push(String(d)));
  let clock = 0;
  const cli: CliEnv = {
    env: {},
    stdout,
    stderr,
    signal: new AbortController().signal,
    cwd: '/',
    now: () => (clock += 1_000),
  };
  return { cli, out: () => out.join(''), err: () => err.join('') };
}

async function outcome(promise: Promise<number>): Promise<{ code: number; message?: string }> {
  try {
    return { code: await promise };
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    return describeFailure(error);
  }
}

describe('watchJob', () => {
  it('prints one JSON line per event with --json and exits 0 on success', async () => {
    const events = [base, running(50), ended('succeeded')];
    const { cli, out, err } = env();
    expect(await watchJob(fakeClient([events]), ID, cli, { json: true })).toBe(EXIT.ok);
    const lines = out()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as ManagedJob);
    expect(lines.map((j) => j.state)).toEqual(['queued', 'running', 'succeeded']);
    expect(err()).toBe('');
  });

  it('prints plain lines, throttled, and the outcome with its duration', async () => {
    const events = [base, running(10), running(20), running(30), ended('succeeded')];
    const { cli, out } = env();
    expect(await watchJob(fakeClient([events]), ID, cli, { json: false })).toBe(EXIT.ok);
    const lines = out().trimEnd().split('\n');
    expect(lines[0]).toBe(`job ${ID} queued`);
    expect(lines[1]).toMatch(
      new RegExp(`^job ${ID} running \\(transfer\\): 10\\.0% 10 B/100 B 10 B/s ETA 9s$`),
    );
    // The clock moves 1 s per event and plain lines come at most every 2 s: 20% is skipped.
    expect(lines.some((l) => l.includes(' 20.0% '))).toBe(false);
    expect(lines.at(-1)).toBe(`job ${ID} succeeded in 12.5 s`);
  });

  it('draws a bar on a terminal and clears it at the end', async () => {
    const { cli, out, err } = env({ tty: true });
    expect(await watchJob(fakeClient([[running(50), ended('succeeded')]]), ID, cli, { json: false })).toBe(
      EXIT.ok,
    );
    expect(err()).toContain('\rbackup transfer');
    expect(err()).toContain('50.0%');
    expect(err().endsWith('\r\x1b[K')).toBe(true);
    expect(out()).toBe(`job ${ID} succeeded in 12.5 s\n`);
  });

  it("exits 7 with the job's error when it failed, 8 when it was cancelled", async () => {
    const failed = await outcome(
      watchJob(fakeClient([[running(5), ended('failed')]]), ID, env().cli, { json: false }),
    );
    expect(failed).toEqual({ code: EXIT.jobFailed, message: `job ${ID} failed: it failed` });
    const cancelled = await outcome(
      watchJob(fakeClient([[ended('cancelled')]]), ID, env().cli, { json: true }),
    );
    expect(cancelled).toEqual({ code: EXIT.jobCancelled, message: `job ${ID} cancelled: it cancelled` });
  });

  it('listens again when the stream closes before the end', async () => {
    const { cli } = env();
    const client = fakeClient([[running(10)], [ended('succeeded')]], running(10));
    expect(await watchJob(client, ID, cli, { json: false })).toBe(EXIT.ok);
  });

  it('stops watching on interrupt, saying the job goes on', async () => {
    const controller = new AbortController();
    const { cli, err } = env();
    cli.signal = controller.signal;
    controller.abort();
    const client = { async *jobEvents() {}, getJob: async () => running(1) } as unknown as ManagerClient;
    expect(await watchJob(client, ID, cli, { json: false })).toBe(EXIT.interrupted);
    expect(err()).toContain('it goes on');
  });
});
