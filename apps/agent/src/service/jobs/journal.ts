import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendKind, Job } from '@stowage/api';
import { writeFileAtomically } from '../atomic-file.js';

/**
 * What a job leaves on the host while it runs, so that after the agent is killed the next start can clean
 * it up and report the job failed: the snapshot a backup reads, the volume a restore provisioned. Every job
 * is recorded from the moment it is accepted (`queued`), so that one the agent never ran, or a verify that
 * leaves nothing, is reported failed all the same.
 */
export interface JournalEntry {
  id: string;
  /** The request's fingerprint, so that an identical resubmit after a restart finds the job (older entries
   * have none: their resubmits are refused as different). */
  fingerprint?: string;
  kind: 'backup' | 'restore' | 'verify';
  created_at: string;
  started_at: string;
  /** Recorded when the job was accepted and not yet started: it has touched nothing. */
  queued?: true;
  /** The backend of the volume the job uses; absent for a verify, which touches no volume. */
  backend?: BackendKind;
  /** A backup's volume, and the name of the snapshot the job takes of it (unique to the job, so the
   * clean-up can find it by name even when the process died before learning its locator). */
  volume?: string;
  snapshot_name?: string;
  /** What a backup commits if it gets that far, so whoever reads the failure can check for the manifest. */
  backup?: { volume_id: string; backup_id: string };
  /** A volume this job provisioned and has not finished restoring. Recorded once provisioning returned:
   * a name alone could belong to a volume that existed before, which must never be deleted. */
  created_volume?: string;
  /** The job's final state, written once its clean-up ran and before it is published: after a crash the
   * next start reports this instead of cleaning up (a restored volume is the caller's by then). */
  final?: Job;
}

/**
 * One small JSON file per running job under `<state dir>/jobs/`, written atomically (temp, fsync, rename,
 * directory fsync) when the job is accepted, rewritten before it touches the host, and removed once its final
 * event is durable with the event sink.
 */
export class JobJournal {
  readonly #directory: string;

  constructor(stateDir: string) {
    this.#directory = join(stateDir, 'jobs');
  }

  async write(entry: JournalEntry): Promise<void> {
    await writeFileAtomically(join(this.#directory, `${entry.id}.json`), JSON.stringify(entry));
  }

  async remove(id: string): Promise<void> {
    await unlink(join(this.#directory, `${id}.json`)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  /** Entries left by a previous process; unreadable ones are returned as `undefined` with their file name. */
  async leftovers(): Promise<{ file: string; entry: JournalEntry | undefined }[]> {
    let names: string[];
    try {
      names = await readdir(this.#directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const found: { file: string; entry: JournalEntry | undefined }[] = [];
    for (const name of names.sort()) {
      const file = join(this.#directory, name);
      if (name.endsWith('.tmp')) {
        await unlink(file).catch(() => {});
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        found.push({ file, entry: JSON.parse(await readFile(file, 'utf8')) as JournalEntry });
      } catch {
        found.push({ file, entry: undefined });
      }
    }
    return found;
  }
}
