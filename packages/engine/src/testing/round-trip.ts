import { MemoryObjectStore, type ObjectStore } from '@stowage/object-store';
import { type BackupOptions, type BackupSummary, backupVolume } from '../backup.js';
import { Repository } from '../repository.js';
import { restoreBackup } from '../restore.js';
import { openVolumeSource } from '../volume-io.js';
import { ChunkWorkers } from '../workers/chunk-workers.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './repositories.js';
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

/** A repository with the test chunker and KDF on `store` (default: in memory), and two worker threads. */
export async function newTestRepository(
  store: ObjectStore = new MemoryObjectStore(),
): Promise<{ repository: Repository; workers: ChunkWorkers; store: ObjectStore }> {
  const repository = await Repository.init(store, {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  return { repository, workers: new ChunkWorkers(repository.targetKey, { threads: 2 }), store };
}

/** Backs up the image file at `path` as `volumeName`, with any other backup options. */
export async function backupImage(
  repository: Repository,
  workers: ChunkWorkers,
  path: string,
  volumeName: string,
  options: Partial<BackupOptions> = {},
): Promise<BackupSummary> {
  const source = await openVolumeSource(path);
  try {
    return await backupVolume({ repository, workers, source, volumeName, ...options });
  } finally {
    await source.close();
  }
}
