import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Job } from '@stowage/api';
import { writeFileAtomically } from '../atomic-file.js';

export interface HistoryRecord {
  job: Job;
  /** The request's fingerprint (see `fingerprintOf`), so a resubmit after a restart is recognised. */
  fingerprint: string;
}

/**
 * Finished jobs kept across restarts: one JSON line each, appended (and fdatasynced) when a job ends, in
 * `<state dir>/job-history.jsonl`. `load` keeps the newest `limit` of them and compacts the file once it
 * holds twice that, so it stays small (≈ 1 KiB a job). A torn last line, left by a crash mid-append, is
 * skipped: that job is then only unknown after the restart, as it was before there was a history.
 */
export class JobHistory {
  readonly #file: string;
  readonly #limit: number;

  constructor(stateDir: string, options: { limit?: number } = {}) {
    this.#file = join(stateDir, 'job-history.jsonl');
    this.#limit = options.limit ?? 1000;
  }

  async append(job: Job, fingerprint: string): Promise<void> {
    await mkdir(dirname(this.#file), { recursive: true, mode: 0o700 });
    const handle = await open(this.#file, 'a', 0o600);
    try {
      await handle.write(`${JSON.stringify({ job, fingerprint } satisfies HistoryRecord)}\n`);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  /** The newest `limit` records, oldest first, one per job id (the last written wins). */
  async load(): Promise<HistoryRecord[]> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const lines = text.split('\n').filter((line) => line !== '');
    const byId = new Map<string, HistoryRecord>();
    for (const line of lines) {
      const record = parseRecord(line);
      if (record === undefined) continue;
      byId.delete(record.job.id); // re-inserted: the map's order is the order of the last writes
      byId.set(record.job.id, record);
    }
    const kept = [...byId.values()].slice(-this.#limit);
    if (lines.length > 2 * this.#limit) {
      await writeFileAtomically(this.#file, kept.map((record) => `${JSON.stringify(record)}\n`).join(''));
    }
    return kept;
  }
}

function parseRecord(line: string): HistoryRecord | undefined {
  try {
    const value = JSON.parse(line) as { job?: unknown; fingerprint?: unknown };
    const job = Job.safeParse(value.job);
    if (!job.success || typeof value.fingerprint !== 'string') return undefined;
    return { job: job.data, fingerprint: value.fingerprint };
  } catch {
    return undefined;
  }
}
