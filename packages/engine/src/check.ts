import {
  type ChunkProblem,
  decodePackIndex,
  PACK_ID_LENGTH,
  PACK_INDEX_PREFIX,
  PACKS_PREFIX,
  packObjectKey,
  parseManifestObjectKey,
  parsePackIndexObjectKey,
  parsePackObjectKey,
  StowageFormatError,
} from '@stowage/format';
import { isObjectStoreError, type OperationOptions } from '@stowage/object-store';
import { asCancel, jobSignal } from './abort.js';
import { findHealthyCopies, latestOfVolumes, type SoughtChunk } from './check-copies.js';
import { eachManifest, runBounded } from './check-manifests.js';
import { missingPackMessage, pastEndMessage, positions, readSpan, spans } from './check-reads.js';
import { reconcileRecords } from './check-records.js';
import {
  ChunkObjectSet,
  type CopiedChunkReport,
  type DamagedChunkReport,
  DamagedSet,
  type MissingPackReport,
} from './check-sets.js';
import { ChunkIndex, fitIndex, INDEX_BYTES_PER_CHUNK } from './chunk-ids.js';
import type { DamageRecordUpdate } from './damage.js';
import { EngineError } from './errors.js';
import { Limiter } from './limiter.js';
import { type Progress, ProgressReporter } from './progress.js';
import { type BackupRef, MANIFESTS_PREFIX, type Repository } from './repository.js';
import { MAX_COPIES_SOUGHT } from './stored-copies.js';
import type { ChunkWorkers } from './workers/chunk-workers.js';

export type { CopiedChunkReport, DamagedChunkReport, MissingPackReport } from './check-sets.js';

/** Which chunk data a check downloads and authenticates, on top of checking that every chunk's pack holds it. */
export type CheckReadData = 'none' | 'all' | { subsetPercent: number };

export interface CheckOptions {
  repository: Repository;
  /** Open chunk objects (authenticate, decompress, re-hash) when data is read. */
  workers: ChunkWorkers;
  /**
   * `'none'` (default): every chunk a committed manifest names must lie in a pack that exists, within its
   * length (one listing of `packs/`), and only the chunks damage records list are read. `'all'`: every such
   * chunk is also read once (its range, adjacent ones of a pack in one GET) and authenticated.
   * `{ subsetPercent: P }`: a random P % of them (chosen afresh each run, see `random`), plus the recorded ones.
   */
  readData?: CheckReadData;
  /** Progress of each step (`CheckProgress.step`); a `ProgressListener` fits. */
  onProgress?: (progress: CheckProgress) => void;
  signal?: AbortSignal;
  /** Uniform numbers in [0, 1) that pick the subset of `readData: { subsetPercent }` (default Math.random). */
  random?: () => number;
  /** GETs (of chunk ranges, index objects) and HEADs in flight (default 16). */
  concurrency?: number;
  /**
   * Write what the check finds into the damage records (default true), exactly as `verifyBackup` does:
   * problems listed, entries of chunks read healthy removed, records of deleted backups removed. `false`
   * leaves the repository untouched (read-only credentials).
   */
  recordDamage?: boolean;
  /**
   * Bytes the chunk index of one pass may take (default 256 MiB): 152 bytes per distinct chunk object named by
   * the manifests (76 for its id, length and location, as much again while merging). A repository with more
   * chunks than fit is checked in several passes over slices of the pack-id space, each reading every
   * manifest again and listing its own slice of `packs/`.
   */
  indexMemoryBytes?: number;
  now?: () => Date;
}

/** Progress of a check: `bytesDone`/`bytesTotal` count `unit`s of the current step, per pass. */
export interface CheckProgress extends Progress {
  phase: 'check';
  /**
   * `manifests`: reading every committed manifest, root and segments (manifests read); `packs`: listing the
   * pass's slice of `packs/`, and in the first pass `chunks/` (objects listed; the total is unknown and follows
   * the count); `data`: reading chunk data (plaintext bytes); `index`: reading the index objects (objects
   * read); `copies`: reading other copies of the damaged chunks, found through the index objects (chunk objects
   * read; the total is unknown); `records`: updating damage records (manifests looked at).
   */
  step: 'manifests' | 'packs' | 'data' | 'index' | 'copies' | 'records';
  unit: 'bytes' | 'objects';
  /** 1-based pass over the pack-id space (see `CheckOptions.indexMemoryBytes`). */
  pass: number;
}

export interface CheckReport {
  /**
   * True when nothing is wrong: no damaged chunk (but those that read whole from another copy, `fromCopies`:
   * every backup restores), manifest or damage record.
   */
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
  /**
   * Distinct chunk objects named by the manifests checked, every one checked to lie within a pack that exists
   * (a chunk stored in two places counts twice: each copy is checked).
   */
  chunksChecked: number;
  /** Chunks downloaded and authenticated (each at most once). */
  chunksRead: number;
  /** Bytes of chunk objects downloaded (their ranges of the packs). */
  bytesRead: number;
  /** Distinct packs the manifests name. */
  packsReferenced: number;
  /** Packs listed under `packs/`. */
  packsListed: number;
  /**
   * Packs the manifests name that do not exist (every chunk in them is missing where the manifests say, though
   * some may read whole from other copies: `MissingPackReport.chunksFromCopies`).
   */
  packsMissing: number;
  /** The missing packs, by key (at most `MAX_REPORTED_PACKS`), with the backups naming them. */
  missingPacks: MissingPackReport[];
  /**
   * Packs listed that no manifest this check read names: garbage for a future garbage collection (nothing is
   * deleted), or the packs of a backup still running, or named only by a manifest that does not decode.
   */
  packsUnreferenced: number;
  bytesUnreferenced: number;
  /** Their keys, ascending (at most `MAX_REPORTED_PACKS`). */
  unreferencedPacks: string[];
  /** Objects listed under `chunks/` (manifest segments). */
  chunkObjectsListed: number;
  /** Of those, the ones no manifest this check read names as a segment (garbage, as unreferenced packs are). */
  chunkObjectsUnreferenced: number;
  /** Index objects (`index/…`) read and decoded. */
  indexObjectsChecked: number;
  /**
   * Index objects that do not decode: a warning, not damage (an index is a hint for dedup, never needed to
   * restore or verify), so `clean` does not depend on it.
   */
  indexObjectsUnreadable: { objectKey: string; message: string }[];
  /**
   * Missing chunks (and segments) with no other copy that reads whole, ascending by id then location, each with
   * the backups that name it there (at most `MAX_REPORTED_CHUNKS`).
   */
  missingChunks: DamagedChunkReport[];
  /** Chunks whose range exists and fails to open or lies past the end of its pack, as `missingChunks`. */
  corruptChunks: DamagedChunkReport[];
  /** How many chunks are missing and corrupt in all: the lists above stop at `MAX_REPORTED_CHUNKS` each. */
  missingCount: number;
  corruptCount: number;
  /**
   * Chunk objects missing or damaged where the manifests name them that read whole from another copy a later
   * backup stored — found through the index objects (one `findStoredCopies` pass for all of them) and read and
   * opened like any chunk, or read whole in this check where a manifest names it: a restore reads that copy,
   * so they are no damage, and their entries leave the damage records, except the record of a backup that is
   * its volume's latest (the next backup of the volume would take the lost location from its manifest, format
   * §12.4 rule 1, §12.5; it stores the chunk again instead, and a check after it clears the entry). As `missingChunks`,
   * each with its copy; `chunksFromCopies` counts them all.
   */
  fromCopies: CopiedChunkReport[];
  chunksFromCopies: number;
  /** Chunk objects read as other copies of damaged chunks (their bytes are in `bytesRead`). */
  copiesRead: number;
  /**
   * Damaged chunk objects whose chunks were not looked for in other copies: past the first `MAX_COPIES_SOUGHT`
   * distinct damaged chunks. They count as damaged (`missingCount`, `corruptCount`).
   */
  chunksNotSought: number;
  /** Damage records created or changed. */
  damageRecordsWritten: DamageRecordUpdate[];
  /** Damage records removed: their backup checked clean, or was deleted. */
  damageRecordsCleared: DamageRecordUpdate[];
  /** Damage records that exist and do not decode (replaced when the check can tell what they should say). */
  damageRecordsUnreadable: { ref: BackupRef; objectKey: string; message: string }[];
  /** Passes over the pack-id space (1 unless the index outgrew `indexMemoryBytes`). */
  passes: number;
  seconds: number;
}

/** Damaged chunks listed in detail per problem; the counts stay exact beyond it. */
export const MAX_REPORTED_CHUNKS = 10_000;
/** Missing and unreferenced packs listed by key; the counts stay exact beyond it. */
export const MAX_REPORTED_PACKS = 10_000;
const DEFAULT_INDEX_MEMORY = 256 << 20;
/** Index objects read at once (each up to a few MiB). */
const INDEX_CONCURRENCY = 4;

const CHUNK_KEY_RE = /^chunks\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/** `packSize` of a pack not seen yet, and of one confirmed missing. */
const UNKNOWN = -1;
const ABSENT = -2;

/**
 * Checks the whole repository, like `restic check`: every committed manifest decodes, and every chunk one
 * names lies within a pack that exists — from one listing of `packs/` (per pass, its own slice), not a
 * request per chunk; a pack the listing lacks is confirmed missing with a HEAD, and then every chunk in it is
 * `missing`; a chunk whose range ends past its pack's listed size is `corrupt`. With `readData`, chunks are
 * also read (their ranges; adjacent chunks of a pack in one GET) and authenticated, each chunk object once.
 * Findings go into the damage records by chunk id as `verifyBackup` writes them (docs/format.md §12.5), so the
 * next backup of a damaged volume stores the chunks again instead of naming them. When anything is damaged or
 * recorded, every manifest is read once more to name the backups concerned and update their records.
 *
 * A damaged chunk (missing, or not opening where a manifest names it) that reads whole from another copy is
 * no damage: a restore reads that copy (format §12.4, a later backup stored it in a new pack). After the
 * passes, one `findStoredCopies` pass over the index objects looks for copies of every damaged chunk at once
 * (at most `MAX_COPIES_SOUGHT`; beyond that they stay damaged, `chunksNotSought`), and their ranges are read
 * and opened like any chunk — unless this check read them whole already where a manifest names them. Such
 * chunks are reported apart (`fromCopies`), and their entries are cleared from every record but that of a
 * volume's latest backup, which the volume's next backup would otherwise take the lost location from.
 *
 * It also counts what no manifest names — packs under `packs/` and objects under `chunks/` (garbage for a
 * future GC; nothing is deleted) — and reads every index object (`index/`): one that does not decode is a
 * warning, not damage.
 *
 * Memory: the chunk index of one pass (`indexMemoryBytes`, 152 bytes per distinct chunk object, default 256 MiB
 * ≈ 1.7 million chunks; past it, more passes; the pass's pack table and 5 bytes of flags per chunk fit in the
 * room its merge copy leaves), the manifest segments being read (3 of ≈ 5 MiB: a manifest is never held
 * whole, whatever its size), the spans being read (`concurrency` × `MAX_SPAN_BYTES`), the merged damage records
 * (`RepositoryDamage`, ≤ ≈ 70 MiB) and the recorded chunks read healthy (73 bytes each), 73 bytes per damaged
 * chunk found (and ~200 for each damaged chunk whose copies are sought, with the copies the index objects
 * name), ~100 bytes per segment and ~200 per backup. Problems are collected, not thrown; a storage
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
  const store = repository.store;
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
  const listedManifests: { volumeId: string; manifestKey: string; lastModified: Date }[] = [];
  for await (const info of store.list(MANIFESTS_PREFIX, call)) {
    const ids = parseManifestObjectKey(info.key);
    if (ids === undefined) continue;
    refs.push({ ...ids, manifestKey: info.key, size: info.size });
    listedManifests.push({ volumeId: ids.volumeId, manifestKey: info.key, lastModified: info.lastModified });
  }
  // The manifest each volume's next backup would take locations from (see `CheckReport.fromCopies`).
  const latest = latestOfVolumes(listedManifests);
  const damage = await repository.listDamage(call);
  cancelled();
  const recorded = (id: Uint8Array) => damage.indexOf(id) >= 0;
  // Recorded chunks (and segments) read healthy in this check, by id and location: their entries may be cleared.
  const healthy = new ChunkObjectSet();

  const damagedManifests: CheckReport['damagedManifests'] = [];
  const skip = new Set<string>(); // manifests that did not decode, or were deleted during the check
  const damaged = new DamagedSet(MAX_REPORTED_CHUNKS);
  // Damaged data chunks whose other copies are sought once the passes are done: the first location found
  // per id (with its plaintext length, which opening a copy checks), at most MAX_COPIES_SOUGHT ids.
  const sought = new Map<string, SoughtChunk>();
  const seek = (index: ChunkIndex, at: number) => {
    if (sought.size >= MAX_COPIES_SOUGHT) return;
    const hex = Buffer.from(index.idAt(at)).toString('hex');
    if (sought.has(hex)) return;
    const l = index.locationAt(at);
    sought.set(hex, {
      id: index.idAt(at).slice(),
      length: index.lengthAt(at),
      location: { pack: l.pack.slice(), offset: l.offset, length: l.length },
    });
  };
  const segmentIds = new Set<string>(); // hex, of every segment the manifests name (first pass)
  const missingPacks = new Map<string, MissingPackReport>(); // by pack id hex, the reported ones
  const unreferencedPacks: string[] = [];
  const totals = {
    chunksChecked: 0,
    chunksRead: 0,
    bytesRead: 0,
    manifestsChecked: 0,
    segmentsRead: 0,
    packsReferenced: 0,
    packsListed: 0,
    packsMissing: 0,
    packsUnreferenced: 0,
    bytesUnreferenced: 0,
    chunkObjectsListed: 0,
    chunkObjectsUnreferenced: 0,
  };
  let passes = 0;
  const limiter = new Limiter(concurrency);

  for (let lo = 0; lo < 256; ) {
    passes++;
    const pass = passes;
    let hi = 256;
    const index = new ChunkIndex();
    // Every manifest's chunks whose pack id starts in [lo, hi) go into the index; when it outgrows the budget
    // the slice shrinks to its lower half (by first pack-id byte), and the rest waits for the next pass.
    const manifestProgress = reporter('manifests', 'objects', pass, refs.length);
    let manifestsRead = 0;
    // Segments found missing or corrupt (first pass), by hex id: unchanged backups share them.
    const segmentProblems = new Map<string, { id: Uint8Array; problem: ChunkProblem; message: string }>();
    await eachManifest(repository, refs, skip, call, cancelled, {
      onDamaged: (ref, error) => {
        damagedManifests.push({ ref, message: error.message });
      },
      onSegment: (_ref, _manifest, segment) => {
        if (segment.damaged) {
          const hex = Buffer.from(segment.id).toString('hex');
          if (pass === 1) segmentIds.add(hex);
          if (pass === 1 && !segmentProblems.has(hex)) {
            const problem = isObjectStoreError(segment.error, 'not-found') ? 'missing' : 'corrupt';
            segmentProblems.set(hex, {
              id: segment.id.slice(),
              problem,
              message: (segment.error as Error).message,
            });
          }
          return;
        }
        if (pass === 1) {
          totals.segmentsRead++;
          segmentIds.add(Buffer.from(segment.id).toString('hex'));
          if (recorded(segment.id)) healthy.add(segment.id, undefined, 1); // read and authenticated
        }
        index.add(segment.entries, lo, hi);
        hi = fitIndex(index, lo, hi, indexMemory);
      },
      onManifestDone: () => {
        if (pass === 1) totals.manifestsChecked++;
        manifestsRead++;
        manifestProgress.report(manifestsRead);
      },
    });
    manifestProgress.report(manifestsRead, true);
    index.flush();
    const count = index.count;
    totals.chunksChecked += count;
    for (const p of segmentProblems.values()) damaged.add(p.id, undefined, p.problem, p.message);

    // The pass's packs: the distinct packs its chunks lie in (the index is sorted by pack), and their sizes
    // as the listing (or a HEAD) says.
    const packOf = new Uint32Array(count);
    let packCount = 0;
    for (let i = 0; i < count; i++) {
      if (i > 0 && !index.samePack(i - 1, i)) packCount++;
      packOf[i] = packCount;
    }
    if (count > 0) packCount++;
    const packIds = new Uint8Array(packCount * PACK_ID_LENGTH);
    for (let i = 0; i < count; i++) packIds.set(index.packAt(i), packOf[i]! * PACK_ID_LENGTH);
    const packSize = new Float64Array(packCount).fill(UNKNOWN);
    const packAt = (p: number) => packIds.subarray(p * PACK_ID_LENGTH, (p + 1) * PACK_ID_LENGTH);
    totals.packsReferenced += packCount;

    const listProgress = reporter('packs', 'objects', pass, 0);
    let listed = 0;
    const counted = () => {
      listed++;
      if (listed % 1024 === 0) {
        cancelled();
        listProgress.report(listed);
      }
    };
    const prefixes =
      lo === 0 && hi === 256 ? [PACKS_PREFIX] : range(lo, hi).map((b) => `${PACKS_PREFIX}${hex2(b)}/`);
    for (const prefix of prefixes) {
      for await (const info of store.list(prefix, call)) {
        counted();
        const hex = parsePackObjectKey(info.key);
        if (hex === undefined) continue;
        totals.packsListed++;
        const p = findPack(packIds, packCount, Buffer.from(hex, 'hex'));
        if (p >= 0) packSize[p] = info.size;
        else {
          totals.packsUnreferenced++;
          totals.bytesUnreferenced += info.size;
          if (unreferencedPacks.length < MAX_REPORTED_PACKS) unreferencedPacks.push(info.key);
        }
      }
    }
    if (pass === 1) {
      // Segments are read with their manifests; the listing counts the objects no manifest names.
      for await (const info of store.list('chunks/', call)) {
        counted();
        const m = CHUNK_KEY_RE.exec(info.key);
        if (m === null) continue;
        totals.chunkObjectsListed++;
        if (!segmentIds.has(m[2]!)) totals.chunkObjectsUnreferenced++;
      }
    }
    listProgress.report(listed, true);
    // A listing is allowed to miss objects written while it runs, a HEAD is not.
    const unlisted: number[] = [];
    for (let p = 0; p < packCount; p++) if (packSize[p] === UNKNOWN) unlisted.push(p);
    await runBounded(unlisted, limiter, cancelled, async (p) => {
      const info = await store.head(packObjectKey(packAt(p)), call);
      packSize[p] = info === undefined ? ABSENT : info.size;
    });

    // Existence: a chunk in a missing pack is missing, one past its pack's end corrupt; the rest may be read.
    const state = new Uint8Array(count); // 1: present, 2: to read
    const inMissing = new Uint32Array(packCount);
    for (let i = 0; i < count; i++) {
      const size = packSize[packOf[i]!]!;
      const id = index.idAt(i);
      if (size === ABSENT) {
        const location = index.locationAt(i);
        damaged.add(id, location, 'missing', missingPackMessage(id, location));
        seek(index, i);
        inMissing[packOf[i]!]!++;
      } else if (index.offsetAt(i) + index.objectLengthAt(i) > size) {
        const location = index.locationAt(i);
        damaged.add(id, location, 'corrupt', pastEndMessage(id, location, size));
        seek(index, i);
      } else state[i] = readPercent === 100 || recorded(id) ? 2 : 1;
    }
    for (let p = 0; p < packCount; p++) {
      if (packSize[p] !== ABSENT) continue;
      totals.packsMissing++;
      if (missingPacks.size >= MAX_REPORTED_PACKS) continue;
      const pack = packAt(p);
      missingPacks.set(Buffer.from(pack).toString('hex'), {
        objectKey: packObjectKey(pack),
        chunks: inMissing[p]!,
        chunksFromCopies: 0,
        backups: [],
      });
    }

    // Data: the chosen subset of the present chunks (exactly ⌈P %⌉ of them, uniformly: selection sampling, in
    // one pass over the index), plus every chunk a damage record lists, so that a repaired one can be cleared
    // (existence alone clears nothing).
    if (readPercent > 0 && readPercent < 100) {
      let candidates = 0;
      for (let i = 0; i < count; i++) if (state[i] === 1) candidates++;
      const n = Math.min(candidates, Math.ceil((candidates * readPercent) / 100));
      for (let i = 0, seen = 0, picked = 0; i < count && picked < n; i++) {
        if (state[i] !== 1) continue;
        const left = candidates - seen++;
        if (Math.min(left - 1, Math.floor(random() * left)) < n - picked) {
          state[i] = 2;
          picked++;
        }
      }
    }
    let bytesToRead = 0;
    for (let i = 0; i < count; i++) if (state[i] === 2) bytesToRead += index.lengthAt(i);
    const dataProgress = reporter('data', 'bytes', pass, bytesToRead);
    let dataBytes = 0;
    await runBounded(spans(index, positions(state, 2)), limiter, cancelled, async (span) => {
      totals.chunksRead += span.length;
      const { outcomes, bytesRead } = await readSpan(store, workers, index, span, call);
      totals.bytesRead += bytesRead;
      outcomes.forEach((outcome, k) => {
        const at = span[k]!;
        const id = index.idAt(at);
        if (outcome.ok) {
          if (recorded(id)) healthy.add(id, index.locationAt(at), 1);
        } else {
          damaged.add(id, index.locationAt(at), outcome.problem, outcome.message);
          seek(index, at);
        }
        dataBytes += index.lengthAt(at);
      });
      dataProgress.report(dataBytes);
    });
    dataProgress.report(dataBytes, true);
    lo = hi;
  }
  damaged.seal();
  healthy.seal();

  // Other copies of the damaged chunks (one pass over the index objects for all of them): a chunk with one
  // that reads whole restores, so it is no damage. A copy this check read whole where a manifest names it
  // (the recorded chunks are read at every location) is taken as it is; a damaged one is not read again.
  const copiesProgress = reporter('copies', 'objects', passes, 0);
  let copiesRead = 0;
  const copies = await findHealthyCopies(repository, workers, [...sought.values()], {
    call,
    limiter,
    cancelled,
    known: (id, location) =>
      damaged.find(id, location) >= 0 ? 'damaged' : healthy.find(id, location) >= 0 ? 'healthy' : undefined,
    onRead: (chunks, bytes) => {
      copiesRead += chunks;
      totals.bytesRead += bytes;
      copiesProgress.report(copiesRead);
    },
  });
  if (sought.size > 0) copiesProgress.report(copiesRead, true);
  damaged.markFromCopies(copies);
  let chunksNotSought = 0;
  for (const { at, id, location } of damaged.dataIds()) {
    const hex = Buffer.from(id).toString('hex');
    if (!sought.has(hex)) chunksNotSought++;
    if (damaged.fromCopyAt(at) && damaged.problemAt(at) === 'missing') {
      const pack = missingPacks.get(Buffer.from(location.pack).toString('hex'));
      if (pack) pack.chunksFromCopies++;
    }
  }

  // Index objects: hints for dedup, so one that does not decode is a warning (a backup skips it).
  const indexKeys: string[] = [];
  for await (const info of store.list(PACK_INDEX_PREFIX, call)) {
    if (parsePackIndexObjectKey(info.key)) indexKeys.push(info.key);
  }
  const indexProgress = reporter('index', 'objects', passes, indexKeys.length);
  const indexObjectsUnreadable: CheckReport['indexObjectsUnreadable'] = [];
  let indexObjectsChecked = 0;
  let indexDone = 0;
  await runBounded(
    indexKeys,
    new Limiter(Math.min(concurrency, INDEX_CONCURRENCY)),
    cancelled,
    async (key) => {
      try {
        decodePackIndex(repository.keys, key, await store.get(key, undefined, call));
        indexObjectsChecked++;
      } catch (error) {
        if (error instanceof StowageFormatError) {
          indexObjectsUnreadable.push({ objectKey: key, message: error.message });
        } else if (!isObjectStoreError(error, 'not-found')) throw error; // deleted since the listing: fine
      }
      indexProgress.report(++indexDone);
    },
  );
  if (indexKeys.length > 0) indexProgress.report(indexDone, true);

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
    await reconcileRecords({
      repository,
      refs,
      skip,
      call,
      cancelled,
      damage,
      damaged,
      healthy,
      reports,
      missingPacks,
      recordDamage,
      latest,
      readAll: readPercent === 100,
      now,
      progress: reporter('records', 'objects', passes, refs.length),
      note,
    });
  }

  const shown = [...reports.values()];
  const damagedShown = shown.filter((r): r is DamagedChunkReport => !('copy' in r));
  return {
    clean: damaged.restorable && damagedManifests.length === 0 && unreadable.length === 0,
    manifestsChecked: totals.manifestsChecked,
    segmentsRead: totals.segmentsRead,
    damagedManifests: damagedManifests.sort((a, b) => a.ref.manifestKey.localeCompare(b.ref.manifestKey)),
    chunksChecked: totals.chunksChecked,
    chunksRead: totals.chunksRead,
    bytesRead: totals.bytesRead,
    packsReferenced: totals.packsReferenced,
    packsListed: totals.packsListed,
    packsMissing: totals.packsMissing,
    missingPacks: [...missingPacks.values()].sort((a, b) => a.objectKey.localeCompare(b.objectKey)),
    packsUnreferenced: totals.packsUnreferenced,
    bytesUnreferenced: totals.bytesUnreferenced,
    unreferencedPacks,
    chunkObjectsListed: totals.chunkObjectsListed,
    chunkObjectsUnreferenced: totals.chunkObjectsUnreferenced,
    indexObjectsChecked,
    indexObjectsUnreadable: indexObjectsUnreadable.sort((a, b) => a.objectKey.localeCompare(b.objectKey)),
    missingChunks: damagedShown.filter((r) => r.problem === 'missing'),
    corruptChunks: damagedShown.filter((r) => r.problem === 'corrupt'),
    missingCount: damaged.count('missing'),
    corruptCount: damaged.count('corrupt'),
    fromCopies: shown.filter((r): r is CopiedChunkReport => 'copy' in r),
    chunksFromCopies: damaged.fromCopiesCount,
    copiesRead,
    chunksNotSought,
    damageRecordsWritten: written,
    damageRecordsCleared: cleared,
    damageRecordsUnreadable: unreadable,
    passes,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Position of `pack` among the `count` sorted pack ids of `packIds`, or -1. */
function findPack(packIds: Uint8Array, count: number, pack: Uint8Array): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = Buffer.compare(packIds.subarray(mid * PACK_ID_LENGTH, (mid + 1) * PACK_ID_LENGTH), pack);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

function range(lo: number, hi: number): number[] {
  return Array.from({ length: hi - lo }, (_, i) => lo + i);
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}
