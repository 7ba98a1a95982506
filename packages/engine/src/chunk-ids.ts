import type { ManifestEntries } from '@stowage/format';

/** A manifest's chunk entries with distinct ids: `indices[0 .. distinct)` are entry indices, sorted by id. */
export interface DistinctChunks {
  readonly indices: Uint32Array;
  readonly distinct: number;
}

/**
 * Indices of the chunk entries with distinct ids, first `distinct` of the returned array: 4 bytes per entry
 * (sorting indices by id), where a map of hex ids would cost ~200 bytes per chunk on TiB volumes.
 */
export function distinctChunks(entries: ManifestEntries): DistinctChunks {
  const indices = new Uint32Array(entries.chunkCount);
  let n = 0;
  for (let i = 0; i < entries.count; i++) if (entries.isChunkAt(i)) indices[n++] = i;
  indices.sort((a, b) => Buffer.compare(entries.idAt(a), entries.idAt(b)));
  let distinct = 0;
  for (let i = 0; i < indices.length; i++) {
    if (distinct > 0 && Buffer.compare(entries.idAt(indices[distinct - 1]!), entries.idAt(indices[i]!)) === 0)
      continue;
    indices[distinct++] = indices[i]!;
  }
  return { indices, distinct };
}

/** Position of `id` among `chunks` (its index into `chunks.indices`), or -1: a binary search. */
export function findChunk(entries: ManifestEntries, chunks: DistinctChunks, id: Uint8Array): number {
  let lo = 0;
  let hi = chunks.distinct;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = Buffer.compare(entries.idAt(chunks.indices[mid]!), id);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}
