import { CHUNK_ID_LENGTH, type PackLocation } from '@stowage/format';
import type { OperationOptions } from '@stowage/object-store';
import type { Repository } from './repository.js';
import { readIndexObjects } from './repository-index.js';

/** Chunks one search looks for at most (their ids are held in memory: 32 bytes each plus a map entry). */
export const MAX_COPIES_SOUGHT = 1 << 16;

/**
 * Where else the repository's index objects say these chunks are stored. A manifest names one location per
 * chunk and is never rewritten; when that copy is lost or damaged, a later backup that read the same data
 * stored it again in a new pack and indexed it there (format §5.3, §12.4) — this finds such copies, so a
 * restore or a verify of the older backup can use them. One pass over every index object, whatever the
 * number of chunks sought (at most `MAX_COPIES_SOUGHT`). Locations equal to `avoid` are left out.
 */
export async function findStoredCopies(
  repository: Repository,
  sought: ReadonlyArray<{ id: Uint8Array; avoid: PackLocation }>,
  call: OperationOptions,
): Promise<Map<string, PackLocation[]>> {
  if (sought.length > MAX_COPIES_SOUGHT)
    throw new RangeError(`at most ${MAX_COPIES_SOUGHT} chunks per search, not ${sought.length}`);
  const avoid = new Map<string, PackLocation>();
  for (const s of sought) avoid.set(Buffer.from(s.id).toString('hex'), s.avoid);
  const found = new Map<string, PackLocation[]>();
  if (avoid.size === 0) return found;
  for await (const { entries } of readIndexObjects(repository, call)) {
    if (entries === undefined) continue; // gone since the listing, or unreadable: an index is a hint
    for (let i = 0; i < entries.count; i++) {
      const hex = Buffer.from(entries.idAt(i).subarray(0, CHUNK_ID_LENGTH)).toString('hex');
      const bad = avoid.get(hex);
      if (bad === undefined) continue;
      const location = entries.locationAt(i);
      if (sameLocation(location, bad)) continue;
      const copy = { pack: location.pack.slice(), offset: location.offset, length: location.length };
      const list = found.get(hex);
      if (!list) found.set(hex, [copy]);
      else if (!list.some((l) => sameLocation(l, copy))) list.push(copy);
    }
  }
  return found;
}

export function sameLocation(a: PackLocation, b: PackLocation): boolean {
  return a.offset === b.offset && a.length === b.length && Buffer.from(a.pack).equals(Buffer.from(b.pack));
}
