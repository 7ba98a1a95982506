import type { BackupRef, Limiter, Repository } from '@stowage/engine';
import {
  decodePackIndex,
  type Manifest,
  type ManifestEntries,
  type ManifestSegmentRef,
  manifestSegmentRefs,
  openManifestSegment,
  PACK_INDEX_PREFIX,
  PACKS_PREFIX,
  parsePackIndexObjectKey,
  parsePackObjectKey,
  StowageFormatError,
} from '@stowage/format';
import { isObjectStoreError, type OperationOptions } from '@stowage/object-store';

// What a GC reads of a bucket (docs/format.md §5.5), one object at a time: never more than one segment's
// worth of ids in memory, whatever the target holds.

export const SEGMENTS_PREFIX = 'chunks/';

/** A listed object the GC may delete: its kind, its 32-byte id, size and age. */
export interface ListedObject {
  readonly id: Uint8Array;
  readonly size: number;
  readonly lastModified: Date;
}

/** Why a GC may delete nothing this run (docs/format.md §5.5 rule 4): it cannot know what a manifest names. */
export class UnmarkableManifestError extends Error {
  override name = 'UnmarkableManifestError';
}

/** What one segment of a committed manifest names: the segment itself and the distinct packs of its entries. */
export interface MarkedSegment {
  readonly segmentId: Uint8Array;
  readonly packs: Uint8Array[];
}

/**
 * Reads a committed manifest's root and each of its segments, handing over per segment the packs it names.
 * Undefined when the root is gone (deleted since it was listed: it protects nothing). A root or segment that
 * does not decode, or a missing segment, throws `UnmarkableManifestError`: what it names is unknown.
 */
export async function* markManifest(
  repository: Repository,
  ref: BackupRef,
  call: OperationOptions,
  how: {
    /** Whether a segment is marked already (by another manifest of this run): it is then not read again. */
    marked?: (segmentId: Uint8Array) => Promise<boolean>;
    /**
     * Bounds the segments being read and decoded at once across the manifests a run marks concurrently: each
     * is up to 10 MiB in memory (its object and its records) while roots are small.
     */
    segmentReads?: Limiter;
  } = {},
): AsyncGenerator<MarkedSegment, void, undefined> {
  let manifest: Manifest;
  try {
    manifest = await repository.loadManifest(ref, call);
  } catch (error) {
    if (isObjectStoreError(error, 'not-found')) return;
    if (error instanceof StowageFormatError) {
      throw new UnmarkableManifestError(`manifest ${ref.manifestKey} does not decode: ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
  // One segment at a time, no read-ahead: the run marks several manifests at once already, and a segment is
  // up to 10 MiB (its object and its records). Segments are content-addressed, so one marked already (an
  // unchanged volume's backups share them) names the same packs and is skipped: it was read, so it exists.
  for (const segment of manifestSegmentRefs(manifest)) {
    if (await how.marked?.(segment.id)) continue;
    let packs: Uint8Array[];
    await how.segmentReads?.acquire();
    try {
      packs = await segmentPacks(repository, manifest, segment, ref, call);
    } finally {
      how.segmentReads?.release();
    }
    yield { segmentId: segment.id.slice(), packs };
  }
}

/** The distinct packs a segment's entries name; the segment's bytes are dropped before this returns. */
async function segmentPacks(
  repository: Repository,
  manifest: Manifest,
  segment: ManifestSegmentRef,
  ref: BackupRef,
  call: OperationOptions,
): Promise<Uint8Array[]> {
  let entries: ManifestEntries;
  try {
    const object = await repository.store.get(segment.objectKey, undefined, call);
    entries = openManifestSegment(repository.keys, manifest, segment.index, object, {
      manifestKey: ref.manifestKey,
    });
  } catch (error) {
    if (error instanceof StowageFormatError || isObjectStoreError(error, 'not-found')) {
      throw new UnmarkableManifestError(
        `segment ${segment.index} of ${ref.manifestKey} cannot be read (${error instanceof Error ? error.message : String(error)})`,
        { cause: error },
      );
    }
    throw error;
  }
  // Entries come in volume order, so runs of one pack are the rule: compare with the last pack first.
  const packs = new Map<string, Uint8Array>();
  let last: Uint8Array | undefined;
  for (let e = 0; e < entries.count; e++) {
    if (!entries.isChunkAt(e)) continue;
    const pack = entries.locationAt(e).pack;
    if (last !== undefined && Buffer.from(pack.buffer, pack.byteOffset, pack.length).equals(last)) continue;
    last = pack.slice();
    const hex = Buffer.from(last).toString('hex');
    if (!packs.has(hex)) packs.set(hex, last);
  }
  return [...packs.values()];
}

/** Every pack in the bucket, in key order (so in id order), lazily. Keys that are not packs are skipped. */
export async function* listPacks(
  repository: Repository,
  call: OperationOptions,
): AsyncGenerator<ListedObject> {
  for await (const info of repository.store.list(PACKS_PREFIX, call)) {
    const hex = parsePackObjectKey(info.key);
    if (hex === undefined) continue;
    yield { id: Buffer.from(hex, 'hex'), size: info.size, lastModified: info.lastModified };
  }
}

/** Every manifest segment (`chunks/<hh>/<id>`; version 2 stores nothing else there), in id order. */
export async function* listSegments(
  repository: Repository,
  call: OperationOptions,
): AsyncGenerator<ListedObject> {
  for await (const info of repository.store.list(SEGMENTS_PREFIX, call)) {
    const m = /^chunks\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(info.key);
    if (!m || !m[2]!.startsWith(m[1]!)) continue;
    yield { id: Buffer.from(m[2]!, 'hex'), size: info.size, lastModified: info.lastModified };
  }
}

export interface ListedIndexObject {
  readonly key: string;
  readonly volumeId: string;
  readonly backupId: string;
  readonly size: number;
  readonly lastModified: Date;
}

/** Every index object, in key order. */
export async function* listIndexObjects(
  repository: Repository,
  call: OperationOptions,
): AsyncGenerator<ListedIndexObject> {
  for await (const info of repository.store.list(PACK_INDEX_PREFIX, call)) {
    const parsed = parsePackIndexObjectKey(info.key);
    if (!parsed) continue;
    yield {
      key: info.key,
      volumeId: parsed.volumeId,
      backupId: parsed.backupId,
      size: info.size,
      lastModified: info.lastModified,
    };
  }
}

/**
 * The distinct packs one index object names, or `unreadable` (it does not decode: it guides no writer, so
 * it protects nothing), or `gone` (deleted since listed).
 */
export async function indexObjectPacks(
  repository: Repository,
  key: string,
  call: OperationOptions,
): Promise<{ packs: Uint8Array[] } | 'unreadable' | 'gone'> {
  let bytes: Uint8Array;
  try {
    bytes = await repository.store.get(key, undefined, call);
  } catch (error) {
    if (isObjectStoreError(error, 'not-found')) return 'gone';
    throw error;
  }
  try {
    const entries = decodePackIndex(repository.keys, key, bytes);
    const packs = new Map<string, Uint8Array>();
    for (let e = 0; e < entries.count; e++) {
      const pack = entries.locationAt(e).pack;
      const hex = Buffer.from(pack.buffer, pack.byteOffset, pack.length).toString('hex');
      if (!packs.has(hex)) packs.set(hex, pack.slice());
    }
    return { packs: [...packs.values()] };
  } catch (error) {
    if (error instanceof StowageFormatError) return 'unreadable';
    throw error;
  }
}

/** Object keys of listed ids, for deletion. */
export function packKey(id: Uint8Array): string {
  const hex = Buffer.from(id).toString('hex');
  return `${PACKS_PREFIX}${hex.slice(0, 2)}/${hex}`;
}

export function segmentKey(id: Uint8Array): string {
  const hex = Buffer.from(id).toString('hex');
  return `${SEGMENTS_PREFIX}${hex.slice(0, 2)}/${hex}`;
}
