// Other stored copies of damaged chunks, for verify and check. A manifest is never rewritten: when the copy of
// a chunk that a backup names is lost or damaged, the repair is a new copy that a later backup stored (format
// §12.4), and a restore of the backup reads it (`restoreBackup`, through `findStoredCopies`). Verify and check
// apply the same rule, so that a backup that restores is not called damaged forever: a chunk with another copy
// that reads whole is no damage, and its entry leaves the backup's damage record (format §12.5).
import type { PackLocation } from '@stowage/format';
import type { OperationOptions } from '@stowage/object-store';
import { runBounded } from './check-manifests.js';
import { readSpan, spans } from './check-reads.js';
import { ChunkIndex } from './chunk-ids.js';
import type { Limiter } from './limiter.js';
import type { Repository } from './repository.js';
import { findStoredCopies, sameLocation } from './stored-copies.js';
import type { ChunkWorkers } from './workers/chunk-workers.js';

/** A damaged chunk whose copies are sought: its id, plaintext length and the location its backup names. */
export interface SoughtChunk {
  id: Uint8Array;
  length: number;
  location: PackLocation;
}

/** What the caller already knows of a copy: read whole in this run, found damaged, or nothing. */
export type KnownCopy = 'healthy' | 'damaged' | undefined;

/**
 * For each chunk of `sought` (distinct ids, at most `MAX_COPIES_SOUGHT`), a stored copy other than the
 * location its backup names that reads whole — its range read and opened in a worker like any chunk (adjacent
 * copies of a pack in one ranged GET) — keyed by id hex; a chunk with none is left out. One pass over the
 * index objects (`findStoredCopies`) for all of them, then rounds of reads: each chunk's first candidate, then
 * the next one for those whose candidate failed, and so on. A copy `known` says was read whole in this run is
 * taken without reading it again, one it says is damaged is skipped. Memory: the copies the index objects name
 * for these chunks, and one round's index (152 bytes a chunk). A store failure other than a missing pack or a
 * range past its end is thrown.
 */
export async function findHealthyCopies(
  repository: Repository,
  workers: ChunkWorkers,
  sought: readonly SoughtChunk[],
  options: {
    call: OperationOptions;
    limiter: Limiter;
    cancelled: () => void;
    known?: (id: Uint8Array, location: PackLocation) => KnownCopy;
    /** Told of each round's reads: chunk objects and bytes read. */
    onRead?: (chunks: number, bytes: number) => void;
  },
): Promise<Map<string, PackLocation>> {
  const healthy = new Map<string, PackLocation>();
  if (sought.length === 0) return healthy;
  const { call, limiter, cancelled } = options;
  const candidates = await findStoredCopies(
    repository,
    sought.map((s) => ({ id: s.id, avoid: s.location })),
    call,
  );
  const tried = new Uint32Array(sought.length);
  for (;;) {
    cancelled();
    const round = new ChunkIndex();
    let reads = 0;
    for (let k = 0; k < sought.length; k++) {
      const s = sought[k]!;
      const hex = Buffer.from(s.id).toString('hex');
      if (healthy.has(hex)) continue;
      const copies = candidates.get(hex) ?? [];
      while (tried[k]! < copies.length) {
        const copy = copies[tried[k]!++]!;
        if (sameLocation(copy, s.location)) continue;
        const known = options.known?.(s.id, copy);
        if (known === 'damaged') continue;
        if (known === 'healthy') {
          healthy.set(hex, copy);
          break;
        }
        round.addChunk(s.id, copy, s.length);
        reads++;
        break;
      }
    }
    if (reads === 0) return healthy;
    round.flush();
    await runBounded(
      spans(
        round,
        Array.from({ length: round.count }, (_, i) => i),
      ),
      limiter,
      cancelled,
      async (span) => {
        const { outcomes, bytesRead } = await readSpan(repository.store, workers, round, span, call);
        outcomes.forEach((outcome, k) => {
          if (!outcome.ok) return;
          const at = span[k]!;
          const l = round.locationAt(at);
          healthy.set(Buffer.from(round.idAt(at)).toString('hex'), {
            pack: l.pack.slice(),
            offset: l.offset,
            length: l.length,
          });
        });
        options.onRead?.(span.length, bytesRead);
      },
    );
  }
}

/**
 * The manifest key a backup of each volume takes as its volume's latest (`PreviousManifest.load`: the first
 * listed of those last modified latest), from one listing of manifests: a backup whose chunk is read from
 * another copy keeps that chunk in its damage record while it is its volume's latest, so that the next backup
 * of the volume does not take the lost location from its manifest (format §12.4 rule 1) and stores the chunk
 * in its own pack instead.
 */
export function latestOfVolumes(
  manifests: Iterable<{ volumeId: string; manifestKey: string; lastModified: Date }>,
): Set<string> {
  const latest = new Map<string, { key: string; at: number }>();
  for (const m of manifests) {
    const at = m.lastModified.getTime();
    const seen = latest.get(m.volumeId);
    if (seen === undefined || at > seen.at) latest.set(m.volumeId, { key: m.manifestKey, at });
  }
  return new Set([...latest.values()].map((l) => l.key));
}
