import { randomUUID } from 'node:crypto';
import type { BackupRequest, BackupResult } from '@stowage/api';
import { backupVolume, EngineError } from '@stowage/engine';
import { manifestObjectKey } from '@stowage/format';
import type { HostBackend, SnapshotResult } from '@stowage/host-backends';
import { JOB_SNAPSHOT_PREFIX, type JobContext, type JobEntry } from './job-context.js';

/**
 * A backup job's work: the volume's snapshot (journaled first, so a crash leaves a record naming it), its
 * reader, the engine's backup, and the snapshot deleted again whatever happened.
 */
export async function runBackup(ctx: JobContext, entry: JobEntry, request: BackupRequest): Promise<void> {
  const signal = entry.controller.signal;
  const backend = ctx.backend(request.volume.backend);
  const record = ctx.journalEntry(entry, request.volume.backend);
  // Confinement and existence first: a locator outside the roots fails here, before anything is opened.
  const volume = await backend.stat(request.volume.locator);
  const workers = ctx.workers(); // threads start while the repository opens
  let snapshot: SnapshotResult | undefined;
  let reader: Awaited<ReturnType<HostBackend['openReader']>> | undefined;
  try {
    const repository = await ctx.openRepository(request.target, signal);
    await workers.useKey(repository.targetKey);
    signal.throwIfAborted();
    const volumeId = request.volume_id ?? repository.volumeIdFor(request.volume_name);
    const backupId = request.backup_id ?? randomUUID();
    // A committed backup id is refused before a snapshot (maybe a whole copy) is made for nothing; the
    // engine checks again, and commits with a conditional create.
    if (
      request.backup_id !== undefined &&
      (await repository.store.head(manifestObjectKey(volumeId, backupId)))
    ) {
      throw new EngineError(
        'backup-exists',
        `backup ${backupId} of volume ${volumeId} is already committed; a backup is written once (it is untouched)`,
      );
    }
    const takeSnapshot = request.snapshot !== false && backend.capabilities.snapshot;
    const name = `${JOB_SNAPSHOT_PREFIX}${entry.job.id}`;
    // Journal first, then snapshot: a crash in between leaves an entry whose snapshot is not there, which
    // the clean-up finds by its name and reports as nothing to delete.
    await ctx.journal(entry, {
      ...record,
      backup: { volume_id: volumeId, backup_id: backupId },
      ...(takeSnapshot ? { volume: volume.locator, snapshot_name: name } : {}),
    });
    if (takeSnapshot) {
      const copying = ctx.progressListener(entry, 'snapshot');
      const started = performance.now();
      snapshot = await backend.snapshot(volume.locator, name, {
        allowCopy: request.snapshot === 'copy',
        signal,
        // Only a copy takes long enough to report on; a reflink is instant.
        onProgress: (done, total) => {
          const rate = done / Math.max((performance.now() - started) / 1000, 1e-3);
          copying({
            bytesDone: done,
            bytesTotal: total,
            rate,
            etaSeconds: rate > 0 ? (total - done) / rate : undefined,
          });
        },
      });
    }
    signal.throwIfAborted();
    reader = await backend.openReader(snapshot?.locator ?? volume.locator, { signal });
    const summary = await backupVolume({
      repository,
      source: reader,
      workers,
      volumeName: request.volume_name,
      volumeId,
      backupId,
      onProgress: ctx.progressListener(entry, 'transfer'),
      signal,
      ...(ctx.packsPerIndex === undefined ? {} : { packsPerIndex: ctx.packsPerIndex }),
      ...(request.commit_fence === 'manager'
        ? { beforeCommit: () => askCommit(ctx, entry.job.id, signal) }
        : {}),
    });
    const result: BackupResult = {
      backup_id: summary.backupId,
      volume_id: summary.volumeId,
      volume_name: summary.volumeName,
      manifest_key: summary.manifestKey,
      created_at: summary.createdAt,
      size: summary.size,
      bytes_read: summary.bytesRead,
      bytes_uploaded: summary.bytesUploaded,
      chunks: summary.chunks,
      chunks_new: summary.chunksNew,
      holes: summary.holes,
      hole_bytes: summary.holeBytes,
      seconds: summary.seconds,
      snapshot: snapshot?.method ?? 'none',
    };
    entry.ending = { result, destination: null };
  } finally {
    await reader?.close().catch((error: unknown) => {
      ctx.logger.warn('closing a volume reader failed', { job_id: entry.job.id, error });
    });
    if (snapshot !== undefined) {
      await backend.deleteSnapshot(snapshot.locator).catch((error: unknown) => {
        // The job's outcome stands. Its journal record stays, so the next start tries again; the name
        // (stowage-job-<id>) lets an operator find it meanwhile.
        entry.snapshotLeft = snapshot?.locator;
        ctx.logger.error('could not delete a job snapshot', {
          job_id: entry.job.id,
          snapshot: snapshot?.locator,
          error,
        });
      });
    }
    await ctx.closeWorkers(entry, workers);
  }
}

async function askCommit(
  ctx: JobContext,
  jobId: string,
  signal: AbortSignal,
): Promise<{ validForMs: number }> {
  const fence = ctx.commitFence;
  if (fence === undefined) {
    throw new EngineError(
      'commit-refused',
      `job ${jobId} needs its manager's leave to commit; none was configured`,
    );
  }
  return fence.requestCommit(jobId, signal);
}
