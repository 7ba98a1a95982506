// Reading a manifest's entries: its segments are chunk objects (docs/format.md §6.4), read in order with a
// little read-ahead, each checked against the root, and the totals checked once the last one is read. The I/O
// is the caller's (`fetch`); everything the format requires of a reader is here.
import { chunkObjectKey, openChunk } from './chunk.js';
import { FormatError, IntegrityError } from './errors.js';
import type { TargetKeys } from './keys.js';
import {
  type Manifest,
  manifestObjectKey,
  manifestSegmentCount,
  manifestSegmentEntryCount,
  manifestSegmentId,
} from './manifest.js';
import { ENTRY_RECORD_LENGTH, ManifestEntries } from './manifest-entries.js';

/** Where one segment of a manifest lives and what it must hold. */
export interface ManifestSegmentRef {
  readonly index: number;
  /** The segment's chunk id (a view of the root's `segments`; do not modify). */
  readonly id: Uint8Array;
  /** `chunks/<hh>/<id>` */
  readonly objectKey: string;
  /** Index, in the whole manifest, of the segment's first entry. */
  readonly firstEntry: number;
  /** Entries it holds. */
  readonly entryCount: number;
}

/** A segment as `readManifestSegments` hands it over: its entries, or why it could not be read. */
export type ManifestSegment =
  | (ManifestSegmentRef & {
      readonly damaged: false;
      /**
       * Volume offset of its first entry (the entries' offsets start there); undefined after a damaged
       * segment, whose lengths are unknown.
       */
      readonly offset: number | undefined;
      readonly entries: ManifestEntries;
    })
  | (ManifestSegmentRef & { readonly damaged: true; readonly error: unknown });

/** The segments of a manifest, in order (one small object per segment, nothing read). */
export function* manifestSegmentRefs(manifest: Manifest): Iterable<ManifestSegmentRef> {
  const count = manifestSegmentCount(manifest);
  for (let index = 0; index < count; index++) {
    const id = manifestSegmentId(manifest, index);
    yield {
      index,
      id,
      objectKey: chunkObjectKey(id),
      firstEntry: index * manifest.segmentEntries,
      entryCount: manifestSegmentEntryCount(manifest, index),
    };
  }
}

function segmentContext(index: number, manifestKey: string): string {
  return `segment ${index} of ${manifestKey}`;
}

/**
 * Opens segment `index` of `manifest` from its chunk object: the chunk read rule (§4.4) with the segment's id
 * and its exact length (80 × its entry count), then every record validated. Throws `IntegrityError` naming the
 * segment's object and the manifest, or `FormatError` when an authentic segment holds invalid records.
 */
export function openManifestSegment(
  keys: TargetKeys,
  manifest: Manifest,
  index: number,
  object: Uint8Array,
  options: { manifestKey?: string; offset?: number } = {},
): ManifestEntries {
  const manifestKey = options.manifestKey ?? manifestObjectKey(manifest.volumeId, manifest.backupId);
  const id = manifestSegmentId(manifest, index);
  const entryCount = manifestSegmentEntryCount(manifest, index);
  const objectKey = chunkObjectKey(id);
  const context = segmentContext(index, manifestKey);
  let records: Uint8Array;
  try {
    records = openChunk(keys, id, object, entryCount * ENTRY_RECORD_LENGTH);
  } catch (error) {
    if (!(error instanceof IntegrityError)) throw error;
    const prefix = `integrity check failed for ${objectKey}: `;
    const detail = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    throw new IntegrityError(objectKey, `${detail} (${context})`, { cause: error });
  }
  return new ManifestEntries(records, {
    objectKey,
    context,
    offset: options.offset ?? 0,
    firstIndex: index * manifest.segmentEntries,
  });
}

export interface ReadManifestSegmentsOptions {
  /** Gets a segment's object (`segment.objectKey`). Called at most `readAhead + 1` times ahead of the reader. */
  readonly fetch: (segment: ManifestSegmentRef) => Promise<Uint8Array>;
  /** Named in errors; default `manifests/<volume>/<backup>`. */
  readonly manifestKey?: string;
  /** Segments fetched ahead of the one being read (default 2): memory is this many objects more. */
  readonly readAhead?: number;
  /**
   * Errors (of `fetch` or of opening) that mean a segment is damaged — say a missing object or an
   * `IntegrityError`: such a segment is handed over as `damaged` and reading goes on with the next one, and
   * the totals are not checked at the end (they cannot be). Any other error ends the stream. Default: none,
   * every error ends it.
   */
  readonly isDamage?: (error: unknown) => boolean;
}

/**
 * The entries of a manifest, one segment at a time, in volume order, each validated (§6.5): its object read
 * by the chunk rule against the id and length the root states, its records well-formed, the running offset
 * within `volumeSize`; after the last, the totals equal the root's. Any mismatch is a `FormatError` (records,
 * totals) or `IntegrityError` (the object) naming the segment's object and the manifest. Memory: the segment
 * being read and `readAhead` objects, whatever the number of entries.
 */
export async function* readManifestSegments(
  keys: TargetKeys,
  manifest: Manifest,
  options: ReadManifestSegmentsOptions,
): AsyncGenerator<ManifestSegment, void, undefined> {
  const manifestKey = options.manifestKey ?? manifestObjectKey(manifest.volumeId, manifest.backupId);
  const readAhead = Math.max(0, Math.floor(options.readAhead ?? 2));
  const refs = [...manifestSegmentRefs(manifest)];
  const fetched: Promise<Uint8Array>[] = [];
  let next = 0;
  const topUp = (upTo: number) => {
    while (next < refs.length && next <= upTo) {
      const p = options.fetch(refs[next]!);
      p.catch(() => {}); // awaited in order below; this only keeps a rejection from going unhandled
      fetched.push(p);
      next++;
    }
  };
  let offset: number | undefined = 0;
  let chunkCount = 0;
  let chunkBytes = 0;
  let holeBytes = 0;
  for (let index = 0; index < refs.length; index++) {
    topUp(index + readAhead);
    const ref = refs[index]!;
    let entries: ManifestEntries;
    try {
      const object = await fetched[index]!;
      fetched[index] = Promise.resolve(new Uint8Array(0)); // let the object go once opened
      entries = openManifestSegment(keys, manifest, index, object, { manifestKey, offset: offset ?? 0 });
    } catch (error) {
      if (!options.isDamage?.(error)) throw error;
      offset = undefined;
      yield { ...ref, damaged: true, error };
      continue;
    }
    if (offset !== undefined) {
      if (offset + entries.totalLength > manifest.volumeSize) {
        throw new FormatError(
          `invalid manifest: entries up to segment ${index} cover ${offset + entries.totalLength} bytes, ` +
            `more than volumeSize ${manifest.volumeSize}`,
          manifestKey,
        );
      }
      offset += entries.totalLength;
    }
    chunkCount += entries.chunkCount;
    chunkBytes += entries.chunkBytes;
    holeBytes += entries.holeBytes;
    yield {
      ...ref,
      damaged: false,
      offset: offset === undefined ? undefined : offset - entries.totalLength,
      entries, // after a damaged segment, its offsets count from 0
    };
  }
  if (offset === undefined) return; // a damaged segment: the totals cannot be checked
  const totals: [string, number, number][] = [
    ['chunkCount', chunkCount, manifest.chunkCount],
    ['chunkBytes', chunkBytes, manifest.chunkBytes],
    ['holeBytes', holeBytes, manifest.holeBytes],
  ];
  for (const [name, found, stated] of totals) {
    if (found !== stated) {
      throw new FormatError(
        `invalid manifest: the segments' ${name} is ${found}, the root states ${stated}`,
        manifestKey,
      );
    }
  }
}
