import { randomUUID } from 'node:crypto';
import { StreamingChunker } from '@stowage/chunker';
import {
  chunkObjectKey,
  ManifestBuilder,
  type ManifestSegmentOut,
  manifestObjectKey,
  maxChunkObjectLength,
  type PackLocation,
  sealChunk,
} from '@stowage/format';
import type { OperationOptions } from '@stowage/object-store';
import { asCancel, jobSignal, throwIfCancelled } from './abort.js';
import { backupExists, commitManifest } from './backup-commit.js';
import { BufferPool } from './buffer-pool.js';
import { EngineError } from './errors.js';
import { PackWriter } from './pack-writer.js';
import { PreviousManifest } from './previous-manifest.js';
import { type ProgressListener, ProgressReporter } from './progress.js';
import { ReadRing, type RingRange, type Slot } from './read-ring.js';
import { RecentLocations } from './recent-locations.js';
import type { Repository } from './repository.js';
import { type IndexLoad, LazyIndex } from './repository-index.js';
import type { VolumeSource } from './volume-io.js';
import type { ChunkWorkers } from './workers/chunk-workers.js';

export interface BackupOptions {
  repository: Repository;
  source: VolumeSource;
  workers: ChunkWorkers;
  volumeName: string;
  /** Defaults to the repository's id for `volumeName`. */
  volumeId?: string;
  /** Defaults to a random UUID. */
  backupId?: string;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Bytes read from the source per step (default 4 MiB). */
  readSize?: number;
  /**
   * Reads in flight while one is chunked is this less 2 (default 4: two reads ahead; at least one). The ring
   * they go into holds them, the unfinished chunk's reads and a prefix of maxSize (see ReadRing): 24 MiB at
   * the default sizes. With `sealConcurrency` and `packBuffers` this bounds memory.
   */
  readBuffers?: number;
  /**
   * Chunk objects being sealed at once (default: as many max-size objects as fit in 12 MiB, between 2 and 8).
   * Each has a reusable buffer of the largest object size, so this bounds their memory.
   */
  sealConcurrency?: number;
  /** Pack buffers (default 3: one filling, two uploading), each of `packTarget` bytes. */
  packBuffers?: number;
  /** Bytes at which a pack is closed (default 8 MiB, docs/format.md §5). */
  packTarget?: number;
  /**
   * Packs named by one index object (default 64, ~512 MiB): how much a re-run after a crash may have to store
   * again, against one PUT per this many packs.
   */
  packsPerIndex?: number;
  now?: () => Date;
  /**
   * Chunks named by the volume's latest committed manifest are taken from where it says they are (default
   * true), unless that backup has a damage record: by the GC invariant a chunk a committed manifest names is
   * never deleted. Chunks any damage record lists are always stored again, whatever this says. `false`
   * ignores the previous manifest (only the repository index and this backup's own chunks dedup).
   */
  trustPreviousManifest?: boolean;
  /**
   * Entries per manifest segment (default `DEFAULT_SEGMENT_ENTRIES`, 65,536: 5 MiB of records, 64 GiB of
   * volume at 1 MiB chunks). Tests make it small to get many segments.
   */
  manifestSegmentEntries?: number;
  /**
   * Chunks of the previous manifest held at once (default 2^18, about 14 MiB): segments wholly behind the
   * backup are let go past this, so a chunk that moved further back is stored again. Tests make it small.
   */
  previousWindowChunks?: number;
  /**
   * The fence (docs/operations.md#gc): called once everything but the root is stored and durable, just
   * before the root is written. It throws to refuse the commit (the backup fails, nothing committed), or
   * answers how long the root's write may take (`validForMs`, counted from the call): a write still running
   * then is aborted. A manager's GC relies on it never to see a root appear after the backup's lease ended.
   */
  beforeCommit?: () => Promise<{ validForMs: number } | undefined>;
}

export interface BackupSummary {
  backupId: string;
  volumeId: string;
  volumeName: string;
  manifestKey: string;
  createdAt: string;
  size: number;
  bytesRead: number;
  /** Bytes of packs, index objects, manifest segments and the manifest root written to the store. */
  bytesUploaded: number;
  /** Of `bytesUploaded`, the Padmé padding of the chunk objects (docs/format.md §4.3): what hiding sizes costs. */
  bytesPadding: number;
  /** Data chunks (holes excluded). */
  chunks: number;
  /** Chunk objects this backup stored, in its packs (repairs included). */
  chunksNew: number;
  /** Of `chunksNew`, chunks a damage record listed (missing or corrupt) that this backup stored again. */
  chunksRepaired: number;
  /** Packs this backup stored (docs/format.md §5). */
  packs: number;
  /** Index objects this backup stored (§5.3). */
  indexObjects: number;
  /**
   * What was read of the repository index, for chunks the previous manifest did not name; undefined when it
   * was not needed.
   */
  index: IndexLoad | undefined;
  /** All-zero chunks recorded as holes and never uploaded. */
  holes: number;
  holeBytes: number;
  /**
   * The manifest whose chunks were taken from where it says they are (the volume's latest, when it has no
   * damage record), or undefined.
   */
  trustedManifest: string | undefined;
  /** Segments of the manifest (chunk objects holding its entries, docs/format.md §6). */
  manifestSegments: number;
  /** Of those, the ones this backup stored (the rest were there already: an unchanged run stores none). */
  manifestSegmentsNew: number;
  seconds: number;
}

/**
 * Backs up a volume: stream → FastCDC → (zero? hole) → keyed id → known? (this backup, the previous manifest,
 * the repository index) → seal → append to a pack → PUT per pack, the entries cut into manifest segments
 * stored like chunks as they fill, then the manifest's root. Packs, index objects and segments are all
 * written before the root, so a committed manifest only ever names objects that exist; a re-run after a crash
 * finds the packs already stored through their index objects and skips them. Memory does not grow with the
 * volume: the manifest holds one segment of entries (plus 32 bytes per segment) and at most
 * `MAX_SEGMENT_UPLOADS` more being stored, and every lookup structure has a fixed bound. A backup id is committed once: one whose manifest exists fails with `backup-exists` before the
 * source is read, and the commit itself never replaces a manifest (see `commitManifest`).
 *
 * A cancel (`signal`) reaches every store call (they are aborted, not left to time out) and ends the backup
 * with an `aborted` EngineError, up to the commit: from the flush before the root on, the backup completes,
 * since a root put cut off by an abort might still land, and a backup reported cancelled must not exist.
 */
export async function backupVolume(options: BackupOptions): Promise<BackupSummary> {
  const cancel = jobSignal(options.signal);
  const readSize = options.readSize ?? 4 << 20;
  const ring = await ReadRing.open(options.workers, {
    maxSize: options.repository.config.chunker.maxSize,
    readSize,
    readAhead: (options.readBuffers ?? 4) - 2,
  });
  try {
    return await runBackup(options, cancel.signal, ring, readSize);
  } catch (error) {
    throw asCancel(error, 'backup');
  } finally {
    await ring.close();
    cancel.close();
  }
}

async function runBackup(
  options: BackupOptions,
  signal: AbortSignal | undefined,
  ring: ReadRing,
  readSize: number,
): Promise<BackupSummary> {
  const { repository, source, workers } = options;
  const call: OperationOptions = { signal };
  const params = repository.config.chunker;
  const readAhead = ring.readAhead;
  const backupId = options.backupId ?? randomUUID();
  const volumeName = options.volumeName.normalize('NFC');
  const volumeId = options.volumeId ?? repository.volumeIdFor(volumeName);
  const createdAt = (options.now ?? (() => new Date()))();
  const store = repository.store;
  const manifestKey = manifestObjectKey(volumeId, backupId);
  if (await store.head(manifestKey, call)) throw backupExists(backupId, manifestKey);
  const progress = new ProgressReporter('backup', source.size, options.onProgress);

  // The target's own gear table (format version 2): where content is cut is as secret as the key.
  const chunker = new StreamingChunker(params, { gear: repository.gearTable });
  const manifest = new ManifestBuilder(repository.keys, {
    ...(options.manifestSegmentEntries === undefined
      ? {}
      : { segmentEntries: options.manifestSegmentEntries }),
  });
  const maxObject = maxChunkObjectLength(params.maxSize);
  const objectBuffers = new BufferPool(
    maxObject,
    options.sealConcurrency ?? Math.max(2, Math.min(8, Math.floor((12 << 20) / params.maxSize))),
  );
  const packs = new PackWriter({
    store,
    keys: repository.keys,
    volumeId,
    backupId,
    maxObjectLength: maxObject,
    ...(options.packTarget === undefined ? {} : { target: options.packTarget }),
    ...(options.packBuffers === undefined ? {} : { buffers: options.packBuffers }),
    ...(options.packsPerIndex === undefined ? {} : { packsPerIndex: options.packsPerIndex }),
    call,
  });
  // Chunks of this backup: stored or found (`recent`), or being looked up or stored right now (`inFlight`,
  // bounded by the chunks in flight), so a repeat waits for the first one's location instead of storing twice.
  const recent = new RecentLocations();
  const inFlight = new Map<string, Promise<PackLocation>>();
  // What verify and check found: chunks listed there are never taken on a manifest's word, and a damaged
  // latest backup is not trusted at all (its damage is only known as far as it was checked).
  const damage = await repository.listDamage(call);
  const previous =
    options.trustPreviousManifest === false || !damage.complete
      ? undefined
      : await PreviousManifest.load(repository, volumeId, damage, call, options.previousWindowChunks);
  // With a previous manifest, only the index objects of this volume's uncommitted backups are read (a crashed
  // run's packs, so a re-run resumes): reading the whole index for every incremental backup would cost a GET
  // per index object of the repository. Without one (a new volume), all of it: cloned data dedups.
  // Neither when the damage listing is incomplete (format §12.4): nothing is taken on a record's word then.
  const index = damage.complete
    ? new LazyIndex(
        repository,
        call,
        previous ? { volumeId, skip: (backupId) => previous.isCommitted(backupId) } : {},
      )
    : undefined;

  const summary = {
    bytesRead: 0,
    bytesUploaded: 0,
    bytesPadding: 0,
    chunks: 0,
    chunksNew: 0,
    chunksRepaired: 0,
    holes: 0,
    holeBytes: 0,
    manifestSegments: 0,
    manifestSegmentsNew: 0,
  };
  let failure: unknown;
  // Results complete out of order; entries go into the manifest in stream order.
  const results = new Map<
    number,
    { kind: 'hole' | 'data'; id?: Uint8Array; length: number; location?: PackLocation }
  >();
  let nextToRecord = 0;
  let bytesRecorded = 0;
  const record = () => {
    for (let r = results.get(nextToRecord); r; r = results.get(nextToRecord)) {
      results.delete(nextToRecord++);
      if (r.kind === 'hole') manifest.addHole(r.length);
      else manifest.addChunk(r.id!, r.length, r.location!);
      bytesRecorded += r.length;
      const segment = manifest.takeSegment();
      if (segment) startSegment(segment);
    }
    progress.report(bytesRecorded);
    previous?.passed(bytesRecorded);
  };

  const tasks = new Set<Promise<void>>();

  // Manifest segments are stored as they are cut, as chunk objects (docs/format.md §6.4): HEAD-then-PUT, so an
  // unchanged volume's segments dedup; one a damage record lists as corrupt is stored again. Every chunk a
  // segment names is in a pack (appended; its PUT may still run) before the segment is cut: entries are
  // recorded once their chunk is located, and the flush before the root makes every pack durable.
  const segmentTasks = new Set<Promise<void>>();
  const storeSegment = async (segment: ManifestSegmentOut): Promise<void> => {
    const key = chunkObjectKey(segment.id);
    const recorded = damage.empty ? undefined : damage.problemOf(segment.id);
    // A segment the latest committed root names is there as surely as its chunks are (§5.4 rule 1, §12.4).
    const trusted = recorded === undefined && previous?.hasSegment(segment.id) === true;
    const upload = recorded === 'corrupt' || (!trusted && !(await store.head(key, call)));
    if (upload) {
      // Sealed here, not in a worker: one segment per 64 GiB of volume at the default size.
      const sealed = sealChunk(repository.keys, segment.records, { id: segment.id });
      await store.put(key, sealed.object, { durability: 'deferred', ...call });
      summary.manifestSegmentsNew++;
      summary.bytesUploaded += sealed.object.length;
      summary.bytesPadding += sealed.padding;
    }
    summary.manifestSegments++;
  };
  const startSegment = (segment: ManifestSegmentOut) => {
    const task = storeSegment(segment).catch((error: unknown) => {
      failure ??= error;
    });
    segmentTasks.add(task);
    void task.finally(() => {
      segmentTasks.delete(task);
      wakeReader();
    });
  };

  // Seals a chunk and appends it to a pack: its location once it is in a pack buffer (the pack's PUT may still
  // be running; the flush before the root waits for it). Its read slots are released once it is sealed.
  const storeChunk = async (id: Uint8Array, chunk: RingRange, release: () => void) => {
    let buffer = await objectBuffers.acquire();
    try {
      if (failure) throw failure;
      const sealed = await workers.seal(ring.buffer, chunk.at, chunk.length, id, buffer);
      buffer = sealed.out;
      release();
      const location = await packs.append(id, new Uint8Array(sealed.out, 0, sealed.length));
      summary.chunksNew++;
      summary.bytesPadding += sealed.padding;
      return location;
    } finally {
      // After a failed seal the buffer stayed with the worker (detached here): the pool replaces it.
      objectBuffers.release(buffer);
    }
  };

  // Where a chunk is: a chunk a damage record lists is always stored again (that is how a backup heals
  // damage instead of naming it once more); otherwise this backup's own, the previous manifest's (near the
  // same place in the volume), the repository index's, or stored now.
  const locate = async (id: Uint8Array, chunk: RingRange, volumeOffset: number, release: () => void) => {
    const recorded = damage.empty ? undefined : damage.problemOf(id);
    if (recorded === undefined) {
      const known = (await previous?.find(id, volumeOffset)) ?? (await index?.find(id));
      if (known) return known;
    }
    const location = await storeChunk(id, chunk, release);
    if (recorded !== undefined) summary.chunksRepaired++;
    return location;
  };

  const processChunk = async (
    seq: number,
    chunk: RingRange,
    volumeOffset: number,
    identified: Promise<{ id?: Uint8Array }>,
  ) => {
    const { length } = chunk;
    // The slots are released as soon as this chunk's bytes are no longer needed (after sealing; at once for
    // holes and chunks found stored), not after the upload: the reader must not wait on network latency.
    let holding = true;
    const release = () => {
      if (holding) ring.release(chunk);
      holding = false;
    };
    try {
      if (failure) return;
      const ided = await identified;
      if (!ided.id) {
        release();
        results.set(seq, { kind: 'hole', length });
        summary.holes++;
        summary.holeBytes += length;
        record();
        return;
      }
      const id = ided.id;
      summary.chunks++;
      let location = recent.get(id);
      if (!location) {
        const hex = Buffer.from(id).toString('hex');
        const pending = inFlight.get(hex);
        if (pending) {
          release();
          location = await pending;
        } else {
          const lookup = locate(id, chunk, volumeOffset, release);
          inFlight.set(hex, lookup);
          try {
            location = await lookup;
            recent.add(id, location);
          } finally {
            inFlight.delete(hex);
          }
        }
      }
      release();
      results.set(seq, { kind: 'data', id, length, location });
      record();
    } catch (error) {
      failure ??= error;
    } finally {
      release();
      wakeReader();
    }
  };

  // Results wait in `results` until every earlier chunk is done; the reader pauses when too many are
  // waiting, so a stalled upload cannot make that map grow with the volume.
  const MAX_UNRECORDED = 4096;
  // Segments being stored at once beyond which the reader pauses: each holds its records and sealed object.
  const MAX_SEGMENT_UPLOADS = 2;
  let readerWaiting: (() => void) | undefined;
  const wakeReader = () => {
    const wake = readerWaiting;
    readerWaiting = undefined;
    wake?.();
  };

  // Reads run ahead of chunking, into the ring's slots in order. The unfinished chunk at the end of one read
  // (the tail, shorter than maxSize) runs on into the next slot, so every chunk lies whole in memory and the
  // next read can start before this one's cut points are known; only at the wrap is the tail copied, to just
  // before the first slot (ReadRing.moveToPrefix).
  let position = 0;
  const readNext = async () => {
    // The range is claimed before waiting for a slot, so reads queued together cover the stream in order.
    const at = position;
    const want = Math.min(readSize, source.size - at);
    position += want;
    const slot = await ring.acquireNext();
    const got = want > 0 ? await source.read(ring.dataOf(slot, want), at) : 0;
    if (got < want) {
      throw new EngineError('io', `${source.path}: short read at ${at + got} of ${source.size} bytes`);
    }
    summary.bytesRead += got;
    return { slot, got, eof: at + got >= source.size };
  };
  let seq = 0;
  let streamOffset = 0;
  // The unfinished chunk, held (its slots cannot be read into again until it is cut and done).
  let tail: RingRange | undefined;
  // Reads already started, in stream order: several in flight hide the read latency of a device or file.
  const reads: Array<Promise<{ slot: Slot; got: number; eof: boolean }>> = [];
  let readsDone = false;
  const topUpReads = () => {
    while (!readsDone && reads.length < readAhead) {
      const read = readNext();
      readsDone = position >= source.size;
      read.catch(() => {}); // awaited in order below; this only keeps a rejection from going unhandled
      reads.push(read);
    }
  };
  try {
    topUpReads();
    while (!failure) {
      throwIfCancelled(signal, 'backup');
      const { slot, got, eof }: { slot: Slot; got: number; eof: boolean } = await reads.shift()!;
      topUpReads();
      let start = slot.dataAt;
      if (tail && tail.at + tail.length === slot.dataAt) start = tail.at;
      else if (tail) {
        start = ring.moveToPrefix(tail.at, tail.length);
        ring.release(tail);
        tail = undefined;
      }
      const end = slot.dataAt + got;
      const lengths = chunker.push(ring.dataOf(slot, got));
      if (eof) lengths.push(...chunker.finish());
      const chunks: RingRange[] = [];
      let at = start;
      for (const length of lengths) {
        chunks.push(ring.hold(at, length));
        at += length;
      }
      // One identify request per thread for all of this read's chunks, not one per chunk.
      const ids = chunks.length > 0 ? workers.identifyAll(ring.buffer, chunks.map(sliceOf)) : [];
      for (const [i, chunk] of chunks.entries()) {
        const task = processChunk(seq++, chunk, streamOffset, ids[i]!);
        tasks.add(task);
        void task.finally(() => tasks.delete(task));
        streamOffset += chunk.length;
      }
      if (eof && at !== end) throw new Error(`chunker left ${end - at} bytes unassigned at end of stream`);
      const previous = tail;
      tail = at < end ? ring.hold(at, end - at) : undefined;
      if (previous) ring.release(previous);
      ring.releaseSlot(slot);
      while ((seq - nextToRecord > MAX_UNRECORDED || segmentTasks.size > MAX_SEGMENT_UPLOADS) && !failure) {
        await new Promise<void>((resolve) => {
          readerWaiting = resolve;
        });
      }
      if (eof) break;
    }
  } catch (error) {
    failure ??= error;
  }
  // Reads started ahead may still be running; let them finish before the caller closes the source.
  await Promise.allSettled(reads);
  await Promise.all(tasks);
  try {
    if (!failure) await packs.finish();
  } catch (error) {
    failure ??= error;
  }
  if (failure) await packs.abandon(); // no pack upload outlives the backup
  if (!failure) {
    try {
      const last = manifest.finish();
      if (last) startSegment(last);
    } catch (error) {
      failure ??= error;
    }
  }
  await Promise.all(segmentTasks);
  if (failure) throw failure;
  // The last point of return: from here the backup completes (the flush and the commit take no signal).
  throwIfCancelled(signal, 'backup');

  // Commit point ordering: every pack, index and segment name durable before the root that names them exists.
  await store.flush?.();
  summary.bytesUploaded += packs.stats.packBytes + packs.stats.indexBytes;
  const encoded = repository.encodeManifest(
    manifest.build({
      backupId,
      volumeId,
      volumeName,
      volumeSize: source.size,
      createdAt,
      chunker: params,
    }),
  );
  let deadlineMs: number | undefined;
  if (options.beforeCommit !== undefined) {
    const asked = performance.now();
    const grant = await options.beforeCommit();
    if (grant !== undefined) deadlineMs = grant.validForMs - (performance.now() - asked);
  }
  await commitManifest(store, manifestKey, encoded, backupId, deadlineMs);
  summary.bytesUploaded += encoded.length;
  progress.report(source.size, true);
  return {
    backupId,
    volumeId,
    volumeName,
    manifestKey,
    createdAt: createdAt.toISOString(),
    size: source.size,
    ...summary,
    packs: packs.stats.packs,
    indexObjects: packs.stats.indexObjects,
    index: await index?.summary(),
    trustedManifest: previous?.manifestKey,
    seconds: progress.elapsedSeconds(),
  };
}

function sliceOf(chunk: RingRange): { offset: number; length: number } {
  return { offset: chunk.at, length: chunk.length };
}
