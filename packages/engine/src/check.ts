import {
  CHUNK_ID_LENGTH,
  type ChunkProblem,
  chunkObjectKey,
  type DamageRecord,
  IntegrityError,
  type Manifest,
  type ManifestSegment,
  parseManifestObjectKey,
  StowageFormatError,
} from '@stowage/format';
import { isObjectStoreError, type OperationOptions } from '@stowage/object-store';
import { asCancel, jobSignal } from './abort.js';
import { ChunkIdIndex, fitIndex, INDEX_BYTES_PER_CHUNK } from './chunk-ids.js';
import { type DamageRecordUpdate, type FoundProblem, reconcileDamageRecord } from './damage.js';
import { EngineError } from './errors.js';
import { Limiter } from './limiter.js';
import { type Progress, ProgressReporter } from './progress.js';
import { type BackupRef, MANIFESTS_PREFIX, type Repository } from './repository.js';
import type { ChunkWorkers } from './workers/chunk-workers.js';

/** Which chunk data a check downloads and authenticates, on top of checking that every chunk exists. */
export type CheckReadData = 'none' | 'all' | { subsetPercent: number };

export interface CheckOptions {
  repository: Repository;
  /** Open chunk objects (authenticate, decompress, re-hash) when data is read. */
  workers: ChunkWorkers;
  /**
   * `'none'` (default): every chunk a committed manifest names must exist (one listing of `chunks/`), and only
   * the chunks damage records list are read. `'all'`: every such chunk is also read once and authenticated.
   * `{ subsetPercent: P }`: a random P % of them (chosen afresh each run, see `random`), plus the recorded ones.
   */
  readData?: CheckReadData;
  /** Progress of each step (`CheckProgress.step`); a `ProgressListener` fits. */
  onProgress?: (progress: CheckProgress) => void;
  signal?: AbortSignal;
  /** Uniform numbers in [0, 1) that pick the subset of `readData: { subsetPercent }` (default Math.random). */
  random?: () => number;
  /** Chunk GETs and HEADs in flight (default 16). */
  concurrency?: number;
  /**
   * Write what the check finds into the damage records (default true), exactly as `verifyBackup` does:
   * problems listed, entries of chunks read healthy removed, records of deleted backups removed. `false`
   * leaves the repository untouched (read-only credentials).
   */
  recordDamage?: boolean;
  /**
   * Bytes the chunk-id index of one pass may take (default 256 MiB): 72 bytes per distinct chunk named by the
   * manifests (36 for the id and length, as much again while merging). A repository with more chunks than fit
   * is checked in several passes over slices of the id space, each reading every manifest again.
   */
  indexMemoryBytes?: number;
  now?: () => Date;
}

/** Progress of a check: `bytesDone`/`bytesTotal` count `unit`s of the current step, per pass. */
export interface CheckProgress extends Progress {
  phase: 'check';
  /**
   * `manifests`: reading every committed manifest, root and segments (manifests read); `chunks`: listing `chunks/`
   * (objects listed; the total is unknown and follows the count); `data`: reading chunk data (plaintext bytes);
   * `records`: updating damage records (manifests looked at).
   */
  step: 'manifests' | 'chunks' | 'data' | 'records';
  unit: 'bytes' | 'objects';
  /** 1-based pass over the chunk-id space (see `CheckOptions.indexMemoryBytes`). */
  pass: number;
}

/** A chunk some committed manifest names that is missing or corrupt. */
export interface DamagedChunkReport {
  /** 64 hex digits. */
  chunkId: string;
  /** `chunks/<hh>/<chunk-id>` */
  objectKey: string;
  problem: ChunkProblem;
  message: string;
  /** Every backup, of the manifests this check read, whose manifest names the chunk. */
  backups: BackupRef[];
}

export interface CheckReport {
  /** True when nothing is wrong: no damaged chunk, manifest or damage record. */
  clean: boolean;
  /** Committed manifests read and authenticated, root and every segment. */
  manifestsChecked: number;
  /**
   * Manifest segments read and authenticated in the first pass (a segment that several manifests share, as
   * unchanged backups of a volume do, once per manifest). A missing or corrupt one is in `missingChunks` or
   * `corruptChunks` with the backups it belongs to.
   */
  segmentsRead: number;
  /** Manifests that exist and do not decode (corrupt, truncated, wrong key, unknown version). */
  damagedManifests: { ref: BackupRef; message: string }[];
  /** Distinct chunks named by the manifests checked, every one checked for existence. */
  chunksChecked: number;
  /** Chunks downloaded and authenticated (each at most once). */
  chunksRead: number;
  /** Bytes of chunk objects downloaded. */
  bytesRead: number;
  /** Missing chunks, ascending by id, each with the backups that name it (at most `MAX_REPORTED_CHUNKS`). */
  missingChunks: DamagedChunkReport[];
  /** Chunks whose object exists and fails to open, as `missingChunks`. */
  corruptChunks: DamagedChunkReport[];
  /** How many chunks are missing and corrupt in all: the lists above stop at `MAX_REPORTED_CHUNKS` each. */
  missingCount: number;
  corruptCount: number;
  /** Damage records created or changed. */
  damageRecordsWritten: DamageRecordUpdate[];
  /** Damage records removed: their backup checked clean, or was deleted. */
  damageRecordsCleared: DamageRecordUpdate[];
  /** Damage records that exist and do not decode (replaced when the check can tell what they should say). */
  damageRecordsUnreadable: { ref: BackupRef; objectKey: string; message: string }[];
  /** Passes over the chunk-id space (1 unless the index outgrew `indexMemoryBytes`). */
  passes: number;
  seconds: number;
}

/** Damaged chunks listed in detail per problem; the counts stay exact beyond it. */
export const MAX_REPORTED_CHUNKS = 10_000;
const DEFAULT_INDEX_MEMORY = 256 << 20;
/** Manifest roots fetched ahead of the one being read (roots are small; their segments are read in turn). */
const MANIFEST_CONCURRENCY = 4;

const CHUNK_KEY_RE = /^chunks\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/**
 * Checks the whole repository, like `restic check`: every committed manifest decodes, and every chunk one
 * names exists (from one listing of `chunks/` per pass, not a HEAD per chunk; a chunk the listing lacks is
 * confirmed missing with a HEAD). With `readData`, chunks are also downloaded and authenticated, each unique
 * chunk once. Findings go into the damage records as `verifyBackup` writes them (docs/format.md §12.5), so
 * the next backup of a damaged volume stores the chunks again instead of naming them. When anything is damaged
 * or recorded, every manifest is read once more to name the backups concerned and update their records.
 *
 * Memory: the chunk-id index of one pass (`indexMemoryBytes`, 72 bytes per distinct chunk, default 256 MiB ≈
 * 3.7 million chunks; past it, more passes), a bit per indexed chunk for the listing, the manifest segments
 * being read (3 of ≈ 2.5 MiB: a manifest is never held whole, whatever its size), the merged damage records
 * (`RepositoryDamage`, ≤ ≈ 70 MiB), and 33 bytes per damaged chunk found plus ~200 bytes per backup. Problems are collected, not thrown; a storage
 * failure fails the check (nothing is recorded then).
 *
 * A cancel (`signal`) reaches every LIST, HEAD and GET and every damage record's read, write and delete (they
 * are aborted, not left to time out), and ends the check with an `aborted` EngineError; records already
 * reconciled stay so.
 */
export async function checkRepository(options: CheckOptions): Promise<CheckReport> {
  const cancel = jobSignal(options.signal);
  try {
    return await runCheck(options, { signal: cancel.signal });
  } catch (error) {
    throw asCancel(error, 'check');
  } finally {
    cancel.close();
  }
}

async function runCheck(options: CheckOptions, call: OperationOptions): Promise<CheckReport> {
  const { repository, workers } = options;
  const readData = options.readData ?? 'none';
  if (typeof readData === 'object') {
    const p = readData.subsetPercent;
    if (!(p > 0 && p <= 100)) {
      throw new EngineError('invalid-argument', `the data subset must be a percentage in (0, 100], got ${p}`);
    }
  } else if (readData !== 'none' && readData !== 'all') {
    throw new EngineError('invalid-argument', `readData must be 'none', 'all' or { subsetPercent }`);
  }
  const readPercent = readData === 'all' ? 100 : readData === 'none' ? 0 : readData.subsetPercent;
  const recordDamage = options.recordDamage ?? true;
  const indexMemory = Math.max(INDEX_BYTES_PER_CHUNK, options.indexMemoryBytes ?? DEFAULT_INDEX_MEMORY);
  const random = options.random ?? Math.random;
  const concurrency = options.concurrency ?? 16;
  const now = (options.now ?? (() => new Date()))();
  const started = performance.now();
  const cancelled = () => {
    if (call.signal?.aborted) throw new EngineError('aborted', 'check cancelled');
  };
  const reporter = (
    step: CheckProgress['step'],
    unit: CheckProgress['unit'],
    pass: number,
    total: number,
  ) => {
    const listener = options.onProgress;
    return new ProgressReporter(
      'check',
      total,
      listener && ((p: Progress) => listener({ ...p, phase: 'check', step, unit, pass })),
    );
  };

  // Every committed manifest, with its size for progress. Listed once: a backup committed after this is
  // not part of the check.
  const refs: Array<BackupRef & { size: number }> = [];
  for await (const info of repository.store.list(MANIFESTS_PREFIX, call)) {
    const ids = parseManifestObjectKey(info.key);
    if (ids !== undefined) refs.push({ ...ids, manifestKey: info.key, size: info.size });
  }
  const damage = await repository.listDamage(call);
  cancelled();
  // Recorded chunks read healthy in this check (their entries may be cleared), by position in the index.
  const recordedHealthy = new Uint8Array(damage.chunkCount);
  const recordedAt = (id: Uint8Array) => damage.indexOf(id);

  const damagedManifests: CheckReport['damagedManifests'] = [];
  const skip = new Set<string>(); // manifests that did not decode, or were deleted during the check
  const damaged = new DamagedSet();
  let chunksChecked = 0;
  let chunksRead = 0;
  let bytesRead = 0;
  let manifestsChecked = 0;
  let segmentsRead = 0;
  let passes = 0;
  const limiter = new Limiter(concurrency);

  for (let lo = 0; lo < 256; ) {
    passes++;
    const pass = passes;
    let hi = 256;
    const index = new ChunkIdIndex();
    // Every manifest's chunk ids in [lo, hi) go into the index; when it outgrows the budget the slice
    // shrinks to its lower half (by first id byte), and the rest waits for the next pass.
    const manifestProgress = reporter('manifests', 'objects', pass, refs.length);
    let manifestsRead = 0;
    // Segments found missing or corrupt in this pass, by hex id (unchanged backups share them): each goes into
    // `damaged` in the pass whose slice holds its id, so that the set stays sorted.
    const segmentProblems = new Map<string, { id: Uint8Array; problem: ChunkProblem; message: string }>();
    await eachManifest(repository, refs, skip, call, cancelled, {
      onDamaged: (ref, error) => {
        damagedManifests.push({ ref, message: error.message });
      },
      onSegment: (_ref, _manifest, segment) => {
        if (segment.damaged) {
          const hex = Buffer.from(segment.id).toString('hex');
          if (!segmentProblems.has(hex)) {
            const problem = isObjectStoreError(segment.error, 'not-found') ? 'missing' : 'corrupt';
            segmentProblems.set(hex, {
              id: segment.id.slice(),
              problem,
              message: (segment.error as Error).message,
            });
          }
          return;
        }
        if (pass === 1) segmentsRead++;
        const r = recordedAt(segment.id);
        if (r >= 0) recordedHealthy[r] = 1; // read and authenticated, like a chunk read in full
        index.add(segment.entries, lo, hi);
        hi = fitIndex(index, lo, hi, indexMemory);
      },
      onManifestDone: () => {
        if (pass === 1) manifestsChecked++;
        manifestsRead++;
        manifestProgress.report(manifestsRead);
      },
    });
    manifestProgress.report(manifestsRead, true);
    index.flush();
    chunksChecked += index.count;
    for (const p of segmentProblems.values()) {
      // A segment that is also some entry's chunk (the same bytes) is found by the chunk checks below.
      if (p.id[0]! >= lo && p.id[0]! < hi && index.find(p.id) < 0) damaged.add(p.id, p.problem, p.message);
    }

    // Existence: one listing marks the indexed chunks present; the rest are confirmed with a HEAD (a listing
    // is allowed to miss objects written while it runs, a HEAD is not).
    const present = new Uint8Array(index.count);
    const listProgress = reporter('chunks', 'objects', pass, 0);
    let listed = 0;
    const prefixes = lo === 0 && hi === 256 ? ['chunks/'] : range(lo, hi).map((b) => `chunks/${hex2(b)}/`);
    for (const prefix of prefixes) {
      for await (const info of repository.store.list(prefix, call)) {
        const m = CHUNK_KEY_RE.exec(info.key);
        listed++;
        if (listed % 1024 === 0) {
          cancelled();
          listProgress.report(listed);
        }
        if (m === null) continue;
        const at = index.find(Buffer.from(m[2]!, 'hex'));
        if (at >= 0) present[at] = 1;
      }
    }
    listProgress.report(listed, true);
    await runBounded(positions(present, 0), limiter, cancelled, async (i) => {
      const id = index.idAt(i);
      if (await repository.store.head(chunkObjectKey(id), call)) present[i] = 1;
      else damaged.add(id, 'missing', `chunk ${chunkObjectKey(id)} is missing`);
    });

    // Data: the chosen subset of present chunks, plus every chunk a damage record lists (so a repaired
    // one can be cleared: existence alone clears nothing).
    const toRead = new Uint8Array(index.count); // 1 = read it
    let candidates = 0;
    for (let i = 0; i < index.count; i++) {
      if (present[i] === 0) continue;
      if (readPercent === 100 || recordedAt(index.idAt(i)) >= 0) toRead[i] = 1;
      else if (readPercent > 0) candidates++;
    }
    if (candidates > 0) {
      // A partial Fisher–Yates draw over the candidates' positions: exactly ⌈P %⌉ of them, uniformly.
      const pool = new Uint32Array(candidates);
      let k = 0;
      for (let i = 0; i < index.count; i++) if (present[i] === 1 && toRead[i] === 0) pool[k++] = i;
      const n = Math.min(candidates, Math.ceil((candidates * readPercent) / 100));
      for (let i = 0; i < n; i++) {
        const j = i + Math.min(candidates - i - 1, Math.floor(random() * (candidates - i)));
        const t = pool[i]!;
        pool[i] = pool[j]!;
        pool[j] = t;
        toRead[pool[i]!] = 1;
      }
    }
    let bytesToRead = 0;
    for (let i = 0; i < index.count; i++) if (toRead[i] === 1) bytesToRead += index.lengthAt(i);
    const dataProgress = reporter('data', 'bytes', pass, bytesToRead);
    let dataBytes = 0;
    await runBounded(positions(toRead, 1), limiter, cancelled, async (i) => {
      const id = index.idAt(i);
      const length = index.lengthAt(i);
      const objectKey = chunkObjectKey(id);
      chunksRead++;
      try {
        const object = await repository.store.get(objectKey, undefined, call);
        bytesRead += object.length;
        await workers.check(object, id, length);
        const r = recordedAt(id);
        if (r >= 0) recordedHealthy[r] = 1;
      } catch (error) {
        if (error instanceof IntegrityError) damaged.add(id, 'corrupt', error.message);
        else if (isObjectStoreError(error, 'not-found')) {
          damaged.add(id, 'missing', `chunk ${objectKey} is missing`);
        } else throw error;
      }
      dataBytes += length;
      dataProgress.report(dataBytes);
    });
    dataProgress.report(dataBytes, true);
    damaged.seal(); // ids of this pass are all above the earlier passes': the set stays sorted
    lo = hi;
  }

  // Records: each backup's record made to say what this check found about its chunks.
  const written: DamageRecordUpdate[] = [];
  const cleared: DamageRecordUpdate[] = [];
  const unreadable: CheckReport['damageRecordsUnreadable'] = damage.unreadable.map((u) => ({
    ref: u.ref,
    objectKey: u.objectKey,
    message: u.error.message,
  }));
  const reports = damaged.reports();
  const note = (u: DamageRecordUpdate) => {
    if (u.action === 'written') written.push(u);
    else if (u.action === 'deleted') cleared.push(u);
  };
  if (!damaged.empty || !damage.empty) {
    const recordsProgress = reporter('records', 'objects', passes, refs.length);
    let looked = 0;
    const live = refs.filter((r) => !skip.has(r.manifestKey));
    // One manifest at a time (segments are read in order): what this check found among the objects it names,
    // and which chunks of its record it names at all.
    let here:
      | {
          marked: boolean;
          previous: DamageRecord | 'unreadable' | undefined;
          found: Map<number, FoundProblem>;
          listedNamed: Uint8Array;
          damagedSegment: boolean;
        }
      | undefined;
    const visit = (ref: BackupRef, id: Uint8Array) => {
      const h = here!;
      const d = damaged.find(id);
      if (d >= 0 && !h.found.has(d)) {
        h.found.set(d, { id: id.slice(), problem: damaged.problemAt(d) });
        reports.get(d)?.backups.push({
          volumeId: ref.volumeId,
          backupId: ref.backupId,
          manifestKey: ref.manifestKey,
        });
      }
      if (h.previous !== undefined && h.previous !== 'unreadable') {
        const j = h.previous.chunks.indexOf(id);
        if (j >= 0) h.listedNamed[j] = 1;
      }
    };
    await eachManifest(repository, live, skip, call, cancelled, {
      onDamaged: () => {}, // it decoded a moment ago; a record cannot be reconciled against it now
      onManifest: async (ref) => {
        const marked = damage.isMarked(ref.manifestKey);
        let previous: DamageRecord | 'unreadable' | undefined;
        if (recordDamage && marked) {
          try {
            previous = await repository.readDamageRecord(ref, call);
          } catch (error) {
            if (!(error instanceof StowageFormatError)) throw error;
            previous = 'unreadable';
          }
        }
        const listedCount = previous !== undefined && previous !== 'unreadable' ? previous.chunks.count : 0;
        here = {
          marked,
          previous,
          found: new Map(),
          listedNamed: new Uint8Array(listedCount),
          damagedSegment: false,
        };
      },
      onSegment: (ref, _manifest, segment: ManifestSegment) => {
        visit(ref, segment.id);
        if (segment.damaged) {
          here!.damagedSegment = true;
          return;
        }
        const entries = segment.entries;
        for (let i = 0; i < entries.count; i++) if (entries.isChunkAt(i)) visit(ref, entries.idAt(i));
      },
      onManifestDone: async (ref) => {
        const h = here!;
        here = undefined;
        looked++;
        recordsProgress.report(looked);
        if (!recordDamage || (!h.marked && h.found.size === 0)) return;
        const foundHere = [...h.found.values()].sort((a, b) => Buffer.compare(a.id, b.id));
        const backupRef = { volumeId: ref.volumeId, backupId: ref.backupId, manifestKey: ref.manifestKey };
        const listed =
          h.previous !== undefined && h.previous !== 'unreadable' ? h.previous.chunks : undefined;
        note(
          await reconcileDamageRecord(repository, backupRef, {
            previous: h.previous,
            found: foundHere,
            checkedHealthy: (id) => {
              const r = recordedAt(id);
              return r >= 0 && recordedHealthy[r] === 1 && damaged.find(id) < 0;
            },
            named: (id) => {
              const j = listed?.indexOf(id) ?? -1;
              return j >= 0 && h.listedNamed[j] === 1;
            },
            // Behind a damaged segment are chunks this check could not know of.
            complete: readPercent === 100 && !h.damagedSegment,
            now,
            signal: call.signal,
          }),
        );
      },
    });
    recordsProgress.report(looked, true);
    // Records of backups that are gone: removed once the manifest is confirmed absent (it may have been
    // committed after the listing above, and verified and recorded since).
    if (recordDamage) {
      const known = new Set(refs.map((r) => r.manifestKey));
      for (const r of [...damage.records, ...damage.unreadable]) {
        if (known.has(r.ref.manifestKey)) continue;
        cancelled();
        if (await repository.store.head(r.ref.manifestKey, call)) continue;
        await repository.deleteDamageRecord(r.ref, call);
        note({
          ref: r.ref,
          objectKey: r.objectKey,
          action: 'deleted',
          chunksListed: 0,
          added: 0,
          cleared: 'chunks' in r ? r.chunks : 0,
          replacedUnreadable: !('chunks' in r),
        });
      }
    }
  }

  const shown = [...reports.values()];
  const missingChunks = shown.filter((r) => r.problem === 'missing');
  const corruptChunks = shown.filter((r) => r.problem === 'corrupt');
  const report: CheckReport = {
    clean: damaged.empty && damagedManifests.length === 0 && unreadable.length === 0,
    manifestsChecked,
    segmentsRead,
    damagedManifests: damagedManifests.sort((a, b) => a.ref.manifestKey.localeCompare(b.ref.manifestKey)),
    chunksChecked,
    chunksRead,
    bytesRead,
    missingChunks,
    corruptChunks,
    missingCount: damaged.count('missing'),
    corruptCount: damaged.count('corrupt'),
    damageRecordsWritten: written,
    damageRecordsCleared: cleared,
    damageRecordsUnreadable: unreadable,
    passes,
    seconds: (performance.now() - started) / 1000,
  };
  return report;
}

/**
 * Reads the manifests of `refs` one after the other — roots fetched a few ahead, segments in order — and hands
 * each to the handlers in turn (calls never overlap, so the caller's index needs no lock): `onManifest` with the
 * root, `onSegment` per segment (a missing or corrupt one as `damaged`), `onManifestDone` once every segment
 * was read and the totals checked. A root that does not decode, or a segment whose records do not (an
 * authentic but invalid manifest), goes to `onDamaged` and into `skip`; a root deleted meanwhile (a prune)
 * into `skip`; a storage failure stops everything.
 */
async function eachManifest(
  repository: Repository,
  refs: readonly (BackupRef & { size: number })[],
  skip: Set<string>,
  call: OperationOptions,
  cancelled: () => void,
  handlers: {
    onManifest?: (ref: BackupRef & { size: number }, manifest: Manifest) => void | Promise<void>;
    onSegment: (
      ref: BackupRef & { size: number },
      manifest: Manifest,
      segment: ManifestSegment,
    ) => void | Promise<void>;
    onManifestDone?: (ref: BackupRef & { size: number }, manifest: Manifest) => void | Promise<void>;
    onDamaged: (ref: BackupRef, error: StowageFormatError) => void;
  },
): Promise<void> {
  const todo = refs.filter((r) => !skip.has(r.manifestKey));
  const roots: Promise<Manifest>[] = [];
  const load = (i: number) => {
    while (roots.length < Math.min(todo.length, i + MANIFEST_CONCURRENCY)) {
      const ref = todo[roots.length]!;
      const root = repository.loadManifest(ref, call);
      root.catch(() => {}); // awaited in order below
      roots.push(root);
    }
  };
  for (let i = 0; i < todo.length; i++) {
    cancelled();
    load(i);
    const ref = todo[i]!;
    let manifest: Manifest;
    try {
      manifest = await roots[i]!;
      roots[i] = Promise.resolve(manifest);
    } catch (error) {
      if (error instanceof StowageFormatError) {
        skip.add(ref.manifestKey);
        handlers.onDamaged(ref, error);
        continue;
      }
      if (isObjectStoreError(error, 'not-found')) {
        skip.add(ref.manifestKey);
        continue;
      }
      throw error;
    }
    await handlers.onManifest?.(ref, manifest);
    try {
      for await (const segment of repository.readManifestSegments(manifest, {
        ...call,
        tolerateDamage: true,
      })) {
        cancelled();
        await handlers.onSegment(ref, manifest, segment);
      }
    } catch (error) {
      if (!(error instanceof StowageFormatError)) throw error;
      skip.add(ref.manifestKey);
      handlers.onDamaged(ref, error);
      continue;
    }
    await handlers.onManifestDone?.(ref, manifest);
  }
}

/** Positions `i` where `flags[i] === value`, ascending. */
function* positions(flags: Uint8Array, value: number): Iterable<number> {
  for (let i = 0; i < flags.length; i++) if (flags[i] === value) yield i;
}

/** Runs `task` for each item with at most `limiter.limit` at once; the first failure stops new ones. */
async function runBounded<T>(
  items: Iterable<T>,
  limiter: Limiter,
  cancelled: () => void,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let failure: unknown;
  const inFlight = new Set<Promise<void>>();
  for (const item of items) {
    try {
      cancelled();
    } catch (error) {
      failure ??= error;
    }
    if (failure !== undefined) break;
    await limiter.acquire();
    const run = task(item)
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => limiter.release());
    inFlight.add(run);
    void run.finally(() => inFlight.delete(run));
  }
  await Promise.allSettled(inFlight);
  if (failure !== undefined) throw failure;
}

/**
 * The damaged chunks found, ascending by id (each pass adds ids above the earlier passes'), packed as
 * id(32) ‖ problem(1): 33 bytes each, and the message only of those the report will show.
 */
class DamagedSet {
  static readonly RECORD = CHUNK_ID_LENGTH + 1;
  #records = new Uint8Array(64 * DamagedSet.RECORD);
  #count = 0;
  #sealed = 0;
  readonly #counts = { missing: 0, corrupt: 0 };
  /** Messages by hex id, for the first `MAX_REPORTED_CHUNKS` of each problem. */
  readonly #messages = new Map<string, string>();

  add(id: Uint8Array, problem: ChunkProblem, message: string): void {
    const R = DamagedSet.RECORD;
    if ((this.#count + 1) * R > this.#records.length) {
      const grown = new Uint8Array(this.#records.length * 2);
      grown.set(this.#records);
      this.#records = grown;
    }
    this.#records.set(id, this.#count * R);
    this.#records[this.#count * R + CHUNK_ID_LENGTH] = problem === 'corrupt' ? 2 : 1;
    this.#count++;
    if (this.#counts[problem]++ < MAX_REPORTED_CHUNKS) {
      this.#messages.set(Buffer.from(id).toString('hex'), message);
    }
  }

  /** Sorts what this pass found into place; only sealed ids are found by `find`. */
  seal(): void {
    const R = DamagedSet.RECORD;
    const n = this.#count - this.#sealed;
    if (n === 0) return;
    const base = this.#sealed * R;
    const part = this.#records.slice(base, base + n * R);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const idOf = (k: number) => part.subarray(k * R, k * R + CHUNK_ID_LENGTH);
    order.sort((a, b) => Buffer.compare(idOf(a), idOf(b)));
    order.forEach((k, i) => {
      this.#records.set(part.subarray(k * R, (k + 1) * R), base + i * R);
    });
    this.#sealed = this.#count;
  }

  get empty(): boolean {
    return this.#count === 0;
  }

  count(problem: ChunkProblem): number {
    return this.#counts[problem];
  }

  find(id: Uint8Array): number {
    let lo = 0;
    let hi = this.#sealed;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(this.#idAt(mid), id);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  problemAt(i: number): ChunkProblem {
    return this.#records[i * DamagedSet.RECORD + CHUNK_ID_LENGTH] === 2 ? 'corrupt' : 'missing';
  }

  /** A report per damaged chunk the report shows, by position in the set. */
  reports(): Map<number, DamagedChunkReport> {
    const out = new Map<number, DamagedChunkReport>();
    for (let i = 0; i < this.#sealed; i++) {
      const id = this.#idAt(i);
      const chunkId = Buffer.from(id).toString('hex');
      const message = this.#messages.get(chunkId);
      if (message === undefined) continue;
      out.set(i, {
        chunkId,
        objectKey: chunkObjectKey(id),
        problem: this.problemAt(i),
        message,
        backups: [],
      });
    }
    return out;
  }

  #idAt(i: number): Uint8Array {
    const at = i * DamagedSet.RECORD;
    return this.#records.subarray(at, at + CHUNK_ID_LENGTH);
  }
}

function range(lo: number, hi: number): number[] {
  return Array.from({ length: hi - lo }, (_, i) => lo + i);
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}
