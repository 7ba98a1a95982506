import { fdatasync, write } from 'node:fs';
import {
  describeLocation,
  IntegrityError,
  type Manifest,
  type PackLocation,
  packObjectKey,
} from '@stowage/format';
import { isObjectStoreError, type OperationOptions } from '@stowage/object-store';
import { asCancel, jobSignal } from './abort.js';
import { EngineError } from './errors.js';
import { Limiter } from './limiter.js';
import { type ProgressListener, ProgressReporter } from './progress.js';
import type { BackupRef, Repository } from './repository.js';
import { findStoredCopies, MAX_COPIES_SOUGHT } from './stored-copies.js';
import { ioError, openVolumeTarget, type VolumeTarget } from './volume-io.js';
import type { ChunkWorkers } from './workers/chunk-workers.js';

export interface RestoreOptions {
  repository: Repository;
  workers: ChunkWorkers;
  backup: BackupRef;
  /**
   * The backup's manifest root, when the caller loaded it already (`Repository.loadManifest`, to size a new
   * volume, say). Its entries are read segment by segment as the restore goes.
   */
  manifest?: Manifest;
  /** A new file, an empty file, or a block device at least as large as the volume. */
  targetPath?: string;
  /**
   * Or a target the caller opened (a host backend's volume): the restore writes through `target.fd`, then
   * calls `commit` on success or `discard` on any failure (a missing manifest included), and never returns
   * while a write may still land. A target that states its `size` must hold the whole volume.
   */
  target?: VolumeTarget;
  overwrite?: boolean;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Chunk downloads in flight (default 16); bounds memory with the max chunk size. */
  concurrency?: number;
}

export interface RestoreSummary {
  backupId: string;
  size: number;
  bytesWritten: number;
  bytesDownloaded: number;
  chunks: number;
  /**
   * Of `chunks`, those whose copy the manifest names was missing or damaged and that were read from another
   * copy a later backup stored (found through the index objects, `findStoredCopies`).
   */
  chunksFromCopies: number;
  holes: number;
  seconds: number;
}

/**
 * Restores a backup: the manifest's segments read in order (a few ahead), and for their entries parallel
 * out-of-order ranged GETs of their packs, each chunk verified in a worker and written at its offset.
 * Holes are skipped (the target stays sparse) or zero-filled on devices. The target is fsynced (and a file
 * renamed into place) before success is reported; on failure a file target is removed.
 *
 * A cancel (`signal`) reaches every GET (they are aborted, not left to time out) and ends the restore with an
 * `aborted` EngineError once the chunks being written are.
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreSummary> {
  const cancel = jobSignal(options.signal);
  try {
    return await runRestore(options, { signal: cancel.signal });
  } catch (error) {
    throw asCancel(error, 'restore');
  } finally {
    cancel.close();
  }
}

async function runRestore(options: RestoreOptions, call: OperationOptions): Promise<RestoreSummary> {
  if ((options.target === undefined) === (options.targetPath === undefined)) {
    throw new EngineError('invalid-target', 'restore needs exactly one of targetPath and target');
  }
  let manifest: Manifest;
  try {
    manifest = options.manifest ?? (await options.repository.loadManifest(options.backup, call));
    if (manifest.backupId !== options.backup.backupId || manifest.volumeId !== options.backup.volumeId) {
      // A manifest loaded for another backup would restore the wrong data under this backup's name.
      throw new EngineError(
        'invalid-argument',
        `the manifest given is backup ${manifest.backupId} of volume ${manifest.volumeId}, not ` +
          `${options.backup.backupId} of ${options.backup.volumeId}`,
      );
    }
  } catch (error) {
    // The caller handed its target over: it is released on every path, as after a failed restore.
    await options.target?.discard();
    throw error;
  }
  const target =
    options.target ??
    (await openVolumeTarget(options.targetPath!, manifest.volumeSize, {
      overwrite: options.overwrite ?? false,
    }));
  try {
    if (target.size !== undefined && target.size < manifest.volumeSize) {
      throw new EngineError(
        'target-too-small',
        `${target.path} holds ${target.size} bytes; the backup needs ${manifest.volumeSize}`,
      );
    }
    const summary = await writeChunks(manifest, target, options, call);
    await target.commit();
    return summary;
  } catch (error) {
    await target.discard();
    throw error;
  }
}

const ZERO_FILL = 4 << 20;
const WRITEBACK_EVERY = 128 << 20;

async function writeChunks(
  manifest: Manifest,
  target: VolumeTarget,
  options: RestoreOptions,
  call: OperationOptions,
) {
  const { repository, workers } = options;
  const { signal } = call;
  const progress = new ProgressReporter('restore', manifest.volumeSize, options.onProgress);
  const limiter = new Limiter(options.concurrency ?? 16);
  const summary = { bytesWritten: 0, bytesDownloaded: 0, chunks: 0, chunksFromCopies: 0, holes: 0 };
  // Chunks whose named copy is missing or damaged: tried again from other copies once the rest is written.
  const damaged: Array<{
    id: Uint8Array;
    length: number;
    offset: number;
    location: PackLocation;
    error: unknown;
  }> = [];
  const restoreChunk = async (id: Uint8Array, length: number, offset: number, location: PackLocation) => {
    const object = await readPacked(repository, location, call);
    summary.bytesDownloaded += object.length;
    await workers.restoreTo(object, id, length, target.fd, offset, describeLocation(location));
    wrote(length);
    summary.chunks++;
    summary.bytesWritten += length;
    progress.report(summary.bytesWritten);
  };
  let failure: unknown;
  const inFlight = new Set<Promise<void>>();
  let zeros: Uint8Array | undefined;
  // Write-back runs along the way: a background fdatasync every WRITEBACK_EVERY bytes keeps dirty pages from
  // piling up, so the final fsync before success is short instead of flushing the whole volume at the end.
  let unsynced = 0;
  let syncing: Promise<void> | undefined;
  const wrote = (n: number) => {
    unsynced += n;
    if (unsynced < WRITEBACK_EVERY || syncing) return;
    unsynced = 0;
    syncing = new Promise<void>((resolve) => fdatasync(target.fd, () => resolve())).finally(() => {
      syncing = undefined;
    });
  };
  const cancelled = () => {
    if (signal?.aborted) failure ??= new EngineError('aborted', 'restore cancelled');
    return failure !== undefined;
  };
  // One pass over the index objects for all of them; a chunk with no copy that opens fails the restore with
  // what was wrong with the copy its manifest names.
  const restoreFromCopies = async () => {
    const copies = await findStoredCopies(
      repository,
      damaged.map((d) => ({ id: d.id, avoid: d.location })),
      call,
    );
    for (const chunk of damaged) {
      if (cancelled()) return;
      let restored = false;
      for (const copy of copies.get(Buffer.from(chunk.id).toString('hex')) ?? []) {
        try {
          await restoreChunk(chunk.id, chunk.length, chunk.offset, copy);
          restored = true;
          break;
        } catch (error) {
          if (!isDamage(error)) throw error;
        }
      }
      if (!restored) throw chunk.error;
      summary.chunksFromCopies++;
    }
  };

  try {
    // Memory: the segments being read (readAhead + 1), whatever the number of entries. A missing or damaged
    // segment fails the restore naming it and the manifest, as a missing chunk does.
    const segments = repository.readManifestSegments(manifest, {
      get: async (key) => {
        const object = await repository.store.get(key, undefined, call);
        summary.bytesDownloaded += object.length;
        return object;
      },
    });
    for await (const segment of segments) {
      if (cancelled()) break;
      if (segment.damaged) throw segment.error; // not reached: damage is not tolerated here
      for (const entry of segment.entries) {
        if (cancelled()) break;
        if (entry.kind === 'hole') {
          summary.holes++;
          if (!target.holesAreZero) {
            zeros ??= new Uint8Array(ZERO_FILL);
            for (let at = 0; at < entry.length && !cancelled(); at += zeros.length) {
              const n = Math.min(zeros.length, entry.length - at);
              await writeAll(target.fd, zeros.subarray(0, n), entry.offset + at);
              wrote(n);
              progress.report(summary.bytesWritten + at + n);
            }
          }
          summary.bytesWritten += entry.length;
          progress.report(summary.bytesWritten);
          continue;
        }
        await limiter.acquire();
        if (cancelled()) {
          limiter.release();
          break;
        }
        const { id, length, offset, location } = entry;
        const task = (async () => {
          try {
            await restoreChunk(id, length, offset, location);
          } catch (error) {
            if (isDamage(error) && damaged.length < MAX_COPIES_SOUGHT) {
              damaged.push({
                id,
                length,
                offset,
                location: { ...location, pack: location.pack.slice() },
                error,
              });
            } else failure ??= error;
          } finally {
            limiter.release();
          }
        })();
        inFlight.add(task);
        void task.finally(() => inFlight.delete(task));
      }
    }
  } catch (error) {
    failure ??= error;
  }
  // Never return (and let the caller close the target) while a worker may still be writing to it.
  await Promise.allSettled(inFlight);
  if (failure === undefined && damaged.length > 0) {
    try {
      await restoreFromCopies();
    } catch (error) {
      failure ??= error;
    }
  }
  await syncing; // errors surface in the final fsync of commit()
  if (failure) throw asTargetError(failure, target.path);
  progress.report(manifest.volumeSize, true);
  return {
    backupId: manifest.backupId,
    size: manifest.volumeSize,
    ...summary,
    seconds: progress.elapsedSeconds(),
  };
}

/**
 * A chunk object's bytes from its pack. A pack shorter than the range is damage (truncated), not a store
 * fault: an `IntegrityError` naming the location, as a chunk that does not open is.
 */
export async function readPacked(
  repository: Repository,
  location: PackLocation,
  call: OperationOptions,
): Promise<Uint8Array> {
  try {
    return await repository.store.get(
      packObjectKey(location.pack),
      { offset: location.offset, length: location.length },
      call,
    );
  } catch (error) {
    if (!isObjectStoreError(error, 'invalid-range')) throw error;
    throw new IntegrityError(describeLocation(location), 'the pack ends before this chunk (truncated)', {
      cause: error,
    });
  }
}

/** A copy that is gone or does not open: another copy may still serve. Anything else (the store, the target) fails. */
function isDamage(error: unknown): boolean {
  return error instanceof IntegrityError || isObjectStoreError(error, 'not-found');
}

/** Write errors from the target (full disk, I/O error) name the target, not a bare errno. */
function asTargetError(error: unknown, path: string): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code))
    return ioError('cannot write restore target', path, error);
  return error;
}

async function writeAll(fd: number, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    done += await new Promise<number>((resolve, reject) =>
      write(fd, data, done, data.length - done, position + done, (err, n) =>
        err ? reject(err) : resolve(n),
      ),
    );
  }
}
