import { randomUUID } from 'node:crypto';
import { StreamingChunker } from '@stowage/chunker';
import {
  CHUNK_ID_LENGTH,
  chunkObjectKey,
  ManifestBuilder,
  type ManifestSegmentOut,
  manifestObjectKey,
  maxChunkObjectLength,
  sealChunk,
} from '@stowage/format';
import { isObjectStoreError, type ObjectStore, type OperationOptions } from '@stowage/object-store';
import { asCancel, jobSignal, throwIfCancelled } from './abort.js';
import type { RepositoryDamage } from './damage.js';
import { EngineError } from './errors.js';
import { type ProgressListener, ProgressReporter } from './progress.js';
import { MANIFESTS_PREFIX, type Repository } from './repository.js';
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
   * Read buffers, each maxSize + readSize bytes (default 4, at least 3: one being chunked, one holding the
   * previous block's unfinished chunk, the rest being read ahead). With `uploadConcurrency` this bounds memory.
   */
  readBuffers?: number;
  /**
   * Chunk objects being sealed or uploaded at once (default: as many max-size objects as fit in 24 MiB,
   * between 4 and 16). Each has a reusable buffer of the largest object size, so this bounds their memory.
   */
  uploadConcurrency?: number;
  now?: () => Date;
  /**
   * Chunks named by the volume's latest committed manifest are taken as present without a HEAD (default
   * true), unless that backup has a damage record: by the GC invariant a chunk a committed manifest names is
   * never deleted, so this is as safe as the HEAD it saves for as long as no verify or check found otherwise.
   * Chunks any damage record lists are always checked (and re-uploaded when recorded corrupt), whatever this
   * says. `false` checks every chunk with a HEAD.
   */
  trustPreviousManifest?: boolean;
  /**
   * Entries per manifest segment (default `DEFAULT_SEGMENT_ENTRIES`, 65,536: 2.5 MiB of records, 64 GiB of
   * volume at 1 MiB chunks). Tests make it small to get many segments.
   */
  manifestSegmentEntries?: number;
}

export interface BackupSummary {
  backupId: string;
  volumeId: string;
  volumeName: string;
  manifestKey: string;
  createdAt: string;
  size: number;
  bytesRead: number;
  /** Bytes of chunk objects, manifest segments and the manifest root written to the store. */
  bytesUploaded: number;
  /** Of `bytesUploaded`, the Padmé padding of the chunk objects (docs/format.md §4.3): what hiding sizes costs. */
  bytesPadding: number;
  /** Data chunks (holes excluded). */
  chunks: number;
  /** Chunk objects this backup wrote (repairs included). */
  chunksNew: number;
  /**
   * Of `chunksNew`, chunks a damage record listed that this backup stored again: found missing by its HEAD,
   * or recorded corrupt (re-uploaded even though an object exists; the same id is the same content).
   */
  chunksRepaired: number;
  /** All-zero chunks recorded as holes and never uploaded. */
  holes: number;
  holeBytes: number;
  /**
   * The manifest whose chunks skipped their HEADs (the volume's latest, when it has no damage record), or
   * undefined when every chunk was checked.
   */
  trustedManifest: string | undefined;
  /** Segments of the manifest (chunk objects holding its entries, docs/format.md §6). */
  manifestSegments: number;
  /** Of those, the ones this backup stored (the rest were there already: an unchanged run stores none). */
  manifestSegmentsNew: number;
  seconds: number;
}

/** A read buffer that chunks point into; reused once every chunk in it is done. */
interface Block {
  buffer: SharedArrayBuffer;
  view: Uint8Array;
  refs: number;
}

/**
 * Backs up a volume: stream → FastCDC → (zero? hole) → keyed id → HEAD → seal → PUT, the entries cut into
 * manifest segments stored like chunks as they fill, then the manifest's root. Chunk and segment objects are
 * all written before the root, so a committed manifest only ever names objects that exist; a re-run after a
 * crash finds the chunks already uploaded and skips them. Memory does not grow with the volume: the manifest
 * holds one segment of entries (plus 32 bytes per segment) and at most `MAX_SEGMENT_UPLOADS` more being
 * stored. A backup id is committed once: one whose manifest exists fails with `backup-exists` before the
 * source is read, and the commit itself never replaces a manifest (see `commitManifest`).
 *
 * A cancel (`signal`) reaches every store call (they are aborted, not left to time out) and ends the backup
 * with an `aborted` EngineError, up to the commit: from the flush before the root on, the backup completes,
 * since a root put cut off by an abort might still land, and a backup reported cancelled must not exist.
 */
export async function backupVolume(options: BackupOptions): Promise<BackupSummary> {
  const cancel = jobSignal(options.signal);
  try {
    return await runBackup(options, cancel.signal);
  } catch (error) {
    throw asCancel(error, 'backup');
  } finally {
    cancel.close();
  }
}

async function runBackup(options: BackupOptions, signal: AbortSignal | undefined): Promise<BackupSummary> {
  const { repository, source, workers } = options;
  const call: OperationOptions = { signal };
  const params = repository.config.chunker;
  const readSize = options.readSize ?? 4 << 20;
  const blockCount = Math.max(3, options.readBuffers ?? 4);
  // One block is being chunked and one holds the previous tail; the rest can be filling.
  const readAhead = blockCount - 2;
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
  const objectBuffers = new BufferPool(
    maxChunkObjectLength(params.maxSize),
    options.uploadConcurrency ?? Math.max(4, Math.min(16, Math.floor((24 << 20) / params.maxSize))),
  );
  const seen = new RecentIds(1 << 16);
  // What verify and check found: chunks listed there are never taken on a manifest's word, and a damaged
  // latest backup is not trusted at all (its damage is only known as far as it was checked).
  const damage = await repository.listDamage(call);
  const previous =
    options.trustPreviousManifest === false || !damage.complete
      ? undefined
      : await PreviousChunks.load(repository, volumeId, damage, call);

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
  const results = new Map<number, { kind: 'hole' | 'data'; id?: Uint8Array; length: number }>();
  let nextToRecord = 0;
  let bytesRecorded = 0;
  const record = () => {
    for (let r = results.get(nextToRecord); r; r = results.get(nextToRecord)) {
      results.delete(nextToRecord++);
      if (r.kind === 'hole') manifest.addHole(r.length);
      else manifest.addChunk(r.id!, r.length);
      bytesRecorded += r.length;
      const segment = manifest.takeSegment();
      if (segment) startSegment(segment);
    }
    progress.report(bytesRecorded);
  };

  const free: Block[] = [];
  const waitingForBlock: Array<(b: Block) => void> = [];
  for (let i = 0; i < blockCount; i++) {
    const buffer = new SharedArrayBuffer(params.maxSize + readSize);
    free.push({ buffer, view: new Uint8Array(buffer), refs: 0 });
  }
  const releaseBlock = (b: Block) => {
    if (--b.refs > 0) return;
    const waiter = waitingForBlock.shift();
    if (waiter) waiter(b);
    else free.push(b);
  };
  const acquireBlock = (): Promise<Block> => {
    const b = free.pop();
    return b ? Promise.resolve(b) : new Promise((resolve) => waitingForBlock.push(resolve));
  };

  const tasks = new Set<Promise<void>>();

  // Manifest segments are stored as they are cut, as chunk objects (docs/format.md §6.4): HEAD-then-PUT, so an
  // unchanged volume's segments dedup; one a damage record lists as corrupt is stored again. Every chunk a
  // segment names is stored before the segment is cut (entries are recorded once their chunk is done).
  const segmentTasks = new Set<Promise<void>>();
  const storeSegment = async (segment: ManifestSegmentOut): Promise<void> => {
    const key = chunkObjectKey(segment.id);
    const recorded = damage.empty ? undefined : damage.problemOf(segment.id);
    // A segment the latest committed root names is there as surely as its chunks are (§5.1, §12.4).
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

  const processChunk = async (seq: number, block: Block, offset: number, length: number) => {
    // The block is released as soon as this chunk's bytes are no longer needed (after sealing; at once for
    // holes and chunks already handled in this backup), not after the upload: the reader must not wait on
    // network or fsync latency.
    let holding = true;
    const release = () => {
      if (holding) releaseBlock(block);
      holding = false;
    };
    try {
      if (failure) return;
      const ided = await workers.identify(block.buffer, offset, length);
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
      const hex = Buffer.from(id).toString('hex');
      if (seen.has(hex)) {
        release();
      } else {
        seen.add(hex);
        const key = chunkObjectKey(id);
        // A recorded chunk is stored again when it is missing, or whenever it is recorded corrupt (its HEAD
        // would find the bad object): that is how a backup heals damage instead of naming it once more.
        const recorded = damage.empty ? undefined : damage.problemOf(id);
        let upload: boolean;
        if (recorded === 'corrupt') upload = true;
        else if (recorded === undefined && previous?.has(hex, id)) upload = false;
        else upload = !(await store.head(key, call));
        if (upload) {
          let buffer = await objectBuffers.acquire();
          try {
            if (failure) return;
            const sealed = await workers.seal(block.buffer, offset, length, id, buffer);
            buffer = sealed.out;
            release();
            // Deferred: the content is durable now, the names are made durable together by the flush below.
            // Once the put has settled, even aborted, the store reads the buffer no more: it goes back to the pool.
            await store.put(key, new Uint8Array(sealed.out, 0, sealed.length), {
              durability: 'deferred',
              ...call,
            });
            summary.chunksNew++;
            if (recorded !== undefined) summary.chunksRepaired++;
            summary.bytesUploaded += sealed.length;
            summary.bytesPadding += sealed.padding;
          } finally {
            // After a failed seal the buffer stayed with the worker (detached here): the pool replaces it.
            objectBuffers.release(buffer);
          }
        }
      }
      results.set(seq, { kind: 'data', id, length });
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

  // Reads run ahead of chunking. Each block keeps its first maxSize bytes free: the unfinished
  // chunk at the end of one block (the tail, shorter than maxSize) is copied in just before the new data, so
  // every chunk lies whole in one block and the next read can start before this block's cut points are known.
  const dataStart = params.maxSize;
  let position = 0;
  const readNext = async () => {
    // The range is claimed before waiting for a block, so reads queued together cover the stream in order.
    const at = position;
    const want = Math.min(readSize, source.size - at);
    position += want;
    const block = await acquireBlock();
    const got = want > 0 ? await source.read(block.view.subarray(dataStart, dataStart + want), at) : 0;
    if (got < want) {
      throw new EngineError('io', `${source.path}: short read at ${at + got} of ${source.size} bytes`);
    }
    summary.bytesRead += got;
    return { block, got, eof: at + got >= source.size };
  };
  let seq = 0;
  let tail: { block: Block; offset: number; length: number } | undefined;
  // Reads already started, in stream order: several in flight hide the read latency of a device or file.
  const reads: Array<Promise<{ block: Block; got: number; eof: boolean }>> = [];
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
      const { block, got, eof }: { block: Block; got: number; eof: boolean } = await reads.shift()!;
      topUpReads();
      block.refs = 1; // held by this loop until its own tail has been copied out
      let start = dataStart;
      if (tail) {
        start -= tail.length;
        block.view.set(tail.block.view.subarray(tail.offset, tail.offset + tail.length), start);
        releaseBlock(tail.block);
        tail = undefined;
      }
      const end = dataStart + got;
      const lengths = chunker.push(block.view.subarray(dataStart, end));
      if (eof) lengths.push(...chunker.finish());
      let at = start;
      for (const length of lengths) {
        block.refs++;
        const task = processChunk(seq++, block, at, length);
        tasks.add(task);
        void task.finally(() => tasks.delete(task));
        at += length;
      }
      while ((seq - nextToRecord > MAX_UNRECORDED || segmentTasks.size > MAX_SEGMENT_UPLOADS) && !failure) {
        await new Promise<void>((resolve) => {
          readerWaiting = resolve;
        });
      }
      if (eof) {
        if (at !== end) throw new Error(`chunker left ${end - at} bytes unassigned at end of stream`);
        releaseBlock(block);
        break;
      }
      tail = { block, offset: at, length: end - at };
    }
  } catch (error) {
    failure ??= error;
  }
  // Reads started ahead may still be running; let them finish before the caller closes the source.
  await Promise.allSettled(reads);
  await Promise.all(tasks);
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

  // Commit point ordering: every chunk and segment name durable before the root that names them exists.
  await store.flush?.();
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
  await commitManifest(store, manifestKey, encoded, backupId);
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
    trustedManifest: previous?.manifestKey,
    seconds: progress.elapsedSeconds(),
  };
}

function backupExists(backupId: string, manifestKey: string): EngineError {
  return new EngineError(
    'backup-exists',
    `backup ${backupId} is already committed (${manifestKey}); a backup is written once, so this one was ` +
      'not made and the committed backup is untouched (use a new backup id)',
  );
}

/**
 * Writes a manifest only where none exists: a conditional create (`If-None-Match: *`). A `precondition-failed`
 * answer is success when the object there is byte-identical to ours — a retried put whose first try landed
 * and lost its answer (the nonce is random, so no other writer produces the same bytes) — and `backup-exists`
 * otherwise, the other writer's manifest untouched.
 */
async function commitManifest(
  store: ObjectStore,
  manifestKey: string,
  encoded: Uint8Array,
  backupId: string,
): Promise<void> {
  // Fallback for stores that ignore If-None-Match (s3rver, some S3 clones), and done everywhere since the
  // engine cannot tell which store it has: a HEAD right before the put. It leaves a race window between the
  // HEAD and the put in which another writer's manifest of this id could still be overwritten there; only a
  // store that honours the condition (memory, filesystem, AWS S3, Ceph RGW) closes it.
  if (await store.head(manifestKey)) throw backupExists(backupId, manifestKey);
  try {
    await store.put(manifestKey, encoded, { ifNoneMatch: true });
  } catch (error) {
    if (!isObjectStoreError(error, 'precondition-failed')) throw error;
    const existing = await store.get(manifestKey);
    if (!Buffer.from(existing).equals(Buffer.from(encoded))) throw backupExists(backupId, manifestKey);
  }
}

/** Fixed set of equal-size buffers handed out and returned; waiting callers queue. */
class BufferPool {
  readonly #free: ArrayBuffer[] = [];
  readonly #waiting: Array<(b: ArrayBuffer) => void> = [];
  constructor(
    private readonly size: number,
    count: number,
  ) {
    for (let i = 0; i < count; i++) this.#free.push(new ArrayBuffer(size));
  }
  acquire(): Promise<ArrayBuffer> {
    const b = this.#free.pop();
    return b ? Promise.resolve(b) : new Promise((resolve) => this.#waiting.push(resolve));
  }
  release(b: ArrayBuffer): void {
    // A buffer lost to a failed worker call is replaced, so the pool never shrinks.
    const buffer = b.byteLength === this.size ? b : new ArrayBuffer(this.size);
    const waiter = this.#waiting.shift();
    if (waiter) waiter(buffer);
    else this.#free.push(buffer);
  }
}

/**
 * The chunk ids of the volume's latest committed manifest, to skip their HEADs. Looked up by the first 8
 * bytes of the id and confirmed against the full id, kept packed (32 bytes a chunk, plus the index), so a
 * prefix collision only costs a HEAD. Left out (HEAD for everything) past MAX_PREVIOUS_CHUNKS — known from the
 * root before any segment is read — to keep memory flat on huge volumes, or when that manifest cannot be read
 * whole.
 */
class PreviousChunks {
  private constructor(
    readonly manifestKey: string,
    private readonly ids: Uint8Array,
    private readonly index: Map<string, number>,
    private readonly segments: ReadonlySet<string>,
  ) {}

  /** Undefined (HEAD everything) when the volume has no manifest or its latest one is marked damaged. */
  static async load(
    repository: Repository,
    volumeId: string,
    damage: RepositoryDamage,
    call: OperationOptions,
  ): Promise<PreviousChunks | undefined> {
    let latest: { key: string; at: number } | undefined;
    for await (const info of repository.store.list(`${MANIFESTS_PREFIX}${volumeId}/`, call)) {
      const at = info.lastModified?.getTime() ?? 0;
      if (latest === undefined || at > latest.at) latest = { key: info.key, at };
    }
    if (latest === undefined || damage.isMarked(latest.key)) return undefined;
    try {
      const backupId = latest.key.slice(latest.key.lastIndexOf('/') + 1);
      const root = await repository.loadManifest({ volumeId, backupId, manifestKey: latest.key }, call);
      if (root.chunkCount > MAX_PREVIOUS_CHUNKS) return undefined;
      const ids = new Uint8Array(root.chunkCount * CHUNK_ID_LENGTH);
      const index = new Map<string, number>();
      let n = 0;
      for await (const segment of repository.readManifestSegments(root, call)) {
        if (segment.damaged) return undefined; // not reached: damage is not tolerated here
        const entries = segment.entries;
        for (let i = 0; i < entries.count; i++) {
          if (!entries.isChunkAt(i)) continue;
          const id = entries.idAt(i);
          ids.set(id, n * CHUNK_ID_LENGTH);
          index.set(Buffer.from(id.subarray(0, 8)).toString('hex'), n);
          n++;
        }
      }
      const segments = new Set<string>();
      for (let at = 0; at < root.segments.length; at += CHUNK_ID_LENGTH)
        segments.add(Buffer.from(root.segments.subarray(at, at + CHUNK_ID_LENGTH)).toString('hex'));
      return new PreviousChunks(latest.key, ids, index, segments);
    } catch (error) {
      if (isObjectStoreError(error, 'aborted')) throw error; // the backup's cancel, not the manifest's fault
      return undefined; // a damaged or unreadable manifest is verify's business; HEADs still work
    }
  }

  /** Whether the manifest's root names this segment. */
  hasSegment(id: Uint8Array): boolean {
    return this.segments.has(Buffer.from(id).toString('hex'));
  }

  has(hex: string, id: Uint8Array): boolean {
    const at = this.index.get(hex.slice(0, 16));
    if (at === undefined) return false;
    return Buffer.from(this.ids.buffer, this.ids.byteOffset + at * CHUNK_ID_LENGTH, CHUNK_ID_LENGTH).equals(
      id,
    );
  }
}

/** 2^18 chunks (≈ 256 GiB at 1 MiB average): 8 MiB of ids and ≈ 25 MiB of index at most. */
const MAX_PREVIOUS_CHUNKS = 1 << 18;

/** Ids uploaded or found earlier in this backup; bounded, so memory stays flat on huge volumes. */
class RecentIds {
  readonly #ids = new Set<string>();
  constructor(private readonly max: number) {}
  has(id: string): boolean {
    return this.#ids.has(id);
  }
  add(id: string): void {
    if (this.#ids.size >= this.max) this.#ids.delete(this.#ids.values().next().value!);
    this.#ids.add(id);
  }
}
