import { fstatSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { ApiError, type RestoreRequest, type RestoreResult } from '@stowage/api';
import { restoreBackup } from '@stowage/engine';
import type { VolumeInfo } from '@stowage/host-backends';
import { apiErrorFromHostBackend } from '../errors.js';
import { VolumeLocks } from '../volume-locks.js';
import { type JobContext, type JobEntry, volumeOf } from './job-context.js';
import { type WriterTarget, writerTarget } from './writer-target.js';

/**
 * A restore job's work: into a volume it provisions (held and journaled from the moment it exists, removed
 * again unless the restore completes) or into an existing one at least the backup's size.
 */
export async function runRestore(ctx: JobContext, entry: JobEntry, request: RestoreRequest): Promise<void> {
  const signal = entry.controller.signal;
  const destination = request.destination;
  const backend = ctx.backend(destination.backend);
  const record = ctx.journalEntry(entry, destination.backend);
  const workers = ctx.workers();
  let created: VolumeInfo | undefined;
  let volume: VolumeInfo | undefined;
  let target: WriterTarget | undefined;
  let succeeded = false;
  try {
    const repository = await ctx.openRepository(request.target, signal);
    await workers.useKey(repository.targetKey);
    const backup = {
      volumeId: request.backup.volume_id,
      backupId: request.backup.backup_id,
      manifestKey: request.backup.manifest_key,
    };
    const manifest = await repository.loadManifest(backup);
    signal.throwIfAborted();
    if ('name' in destination) {
      await ctx.journal(entry, record);
      created = await backend.provision({ name: destination.name, size: manifest.volumeSize });
      volume = created;
      // Held from the moment it exists (no await in between). Its name was held since submit, and every
      // other user of a volume takes its name's key too, so nothing else can hold it here.
      entry.releaseVolumes.push(
        ctx.locks.acquire(
          [VolumeLocks.volumeKey(destination.backend, created.locator)],
          { kind: 'job', jobId: entry.job.id, jobKind: 'restore' },
          `volume ${created.locator}`,
        ),
      );
      await ctx.journal(entry, { ...record, created_volume: created.locator });
    } else {
      volume = await backend.stat(destination.locator);
      if (volume.size < manifest.volumeSize) {
        throw new ApiError(
          'invalid_request',
          `volume ${volume.locator} holds ${volume.size} bytes; the backup needs ${manifest.volumeSize}`,
        );
      }
      await ctx.journal(entry, record);
    }
    // Until the restore completes, the volume holds partial data.
    entry.ending = {
      result: null,
      destination: { volume: volumeOf(destination.backend, volume), state: 'failed' },
    };
    const writer = await backend.openWriter(volume.locator, { signal });
    // The file (or device node) written, by identity: a path alone would still answer after the volume
    // was removed and another put in its place.
    const written = fstatSync(writer.fd);
    target = writerTarget(writer, {
      // Holes are skipped only where they surely read as zeros: a sparse image file provisioned for this
      // job. An existing volume may hold old data there, and a device is never trusted to; both get zeros.
      holesAreZero: created !== undefined && destination.backend === 'local-file',
      onDiscard: (error) => {
        ctx.logger.warn('closing a restore target failed', { job_id: entry.job.id, error });
      },
    });
    const summary = await restoreBackup({
      repository,
      workers,
      backup,
      manifest,
      target,
      onProgress: ctx.progressListener(entry, 'transfer'),
      signal,
    });
    // The volume is held against the API's deletes, but not against someone on the host: never call a
    // restore good whose volume is gone.
    const gone = new ApiError(
      'not_found',
      `volume ${volume.locator} was deleted while the restore wrote it; nothing was restored`,
    );
    await backend.stat(volume.locator).catch((error: unknown) => {
      throw apiErrorFromHostBackend(error)?.code === 'not_found' ? gone : error;
    });
    const now = await stat(volume.locator).catch(() => undefined);
    if (now === undefined || now.ino !== written.ino || now.dev !== written.dev) throw gone;
    succeeded = true;
    const restored = volumeOf(destination.backend, volume);
    const result: RestoreResult = {
      backup_id: summary.backupId,
      volume: restored,
      size: summary.size,
      bytes_written: summary.bytesWritten,
      bytes_downloaded: summary.bytesDownloaded,
      chunks: summary.chunks,
      holes: summary.holes,
      seconds: summary.seconds,
    };
    entry.ending = { result, destination: { volume: restored, state: 'available' } };
  } finally {
    // The engine closes the target on every path it reaches; this covers a failure before it got there.
    await target?.discard();
    if (!succeeded && created !== undefined) {
      // The volume exists only because of this job: a half-restored one must not look usable.
      try {
        await backend.deleteVolume(created.locator);
        entry.ending = {
          result: null,
          destination: { volume: volumeOf(destination.backend, created), state: 'removed' },
        };
      } catch (error) {
        ctx.logger.error('could not remove a partly restored volume', {
          job_id: entry.job.id,
          volume: created.locator,
          error,
        });
      }
    }
    await ctx.closeWorkers(entry, workers);
  }
}
