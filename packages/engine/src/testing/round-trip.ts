import type { Repository } from '../repository.js';
import { restoreBackup } from '../restore.js';
import type { ChunkWorkers } from '../workers/chunk-workers.js';
import { sha256File } from './volumes.js';

/** Restores backup `backupId` (an id or a prefix) to the new file `out`; returns the restored file's SHA-256. */
export async function restoreAndHash(
  repository: Repository,
  workers: ChunkWorkers,
  backupId: string,
  out: string,
): Promise<string> {
  await restoreBackup({
    repository,
    workers,
    backup: await repository.resolveBackup(backupId),
    targetPath: out,
  });
  return sha256File(out);
}
