// The check's last step: each backup's damage record made to say what the check found about its chunks.
import type { DamageRecord, ManifestSegment, PackLocation } from '@stowage/format';
import { StowageFormatError } from '@stowage/format';
import type { OperationOptions } from '@stowage/object-store';
import { eachManifest } from './check-manifests.js';
import type { ChunkObjectSet, DamagedChunkReport, DamagedSet, MissingPackReport } from './check-sets.js';
import {
  type DamageRecordUpdate,
  type FoundProblem,
  type RepositoryDamage,
  reconcileDamageRecord,
} from './damage.js';
import type { ProgressReporter } from './progress.js';
import type { BackupRef, Repository } from './repository.js';

export interface RecordsRun {
  repository: Repository;
  refs: readonly (BackupRef & { size: number })[];
  /** Manifests that did not decode or are gone: not read again. */
  skip: Set<string>;
  call: OperationOptions;
  cancelled: () => void;
  /** The records as the check found them when it began. */
  damage: RepositoryDamage;
  /** What the check found damaged (sealed), by chunk id and location. */
  damaged: DamagedSet;
  /** Recorded chunks (and segments) read healthy, by chunk id and location (sealed). */
  healthy: ChunkObjectSet;
  /** The damaged chunks the report lists, by position in `damaged`: their backups are filled in here. */
  reports: Map<number, DamagedChunkReport>;
  /** The missing packs the report lists, by pack id hex: their backups are filled in here. */
  missingPacks: Map<string, MissingPackReport>;
  recordDamage: boolean;
  /**
   * The manifest keys each volume's next backup would take locations from (`latestOfVolumes`): their
   * records keep the chunks that read whole only from other copies.
   */
  latest: ReadonlySet<string>;
  /** Every chunk was read (`readData: 'all'`): an unreadable record may be replaced. */
  readAll: boolean;
  now: Date;
  progress: ProgressReporter;
  /** Told of every record written or deleted. */
  note: (update: DamageRecordUpdate) => void;
}

/**
 * Reads every manifest once more, one at a time (segments in order), to name the backups each damaged chunk
 * and missing pack belongs to, and to bring each backup's record in line with what the check found among the
 * objects its manifest names (docs/format.md §12.5): a listed chunk is cleared only when every copy of it the
 * backup names was read and opened, or the chunk reads whole from another copy (`DamagedSet.fromCopyAt`) and
 * the backup is not its volume's latest. Then removes the records of backups that are gone.
 */
export async function reconcileRecords(run: RecordsRun): Promise<void> {
  const { repository, refs, skip, call, cancelled, damage, damaged, healthy, reports, missingPacks } = run;
  const { recordDamage, now, note } = run;
  const recordsProgress = run.progress;
  let looked = 0;
  const live = refs.filter((r) => !skip.has(r.manifestKey));
  // One manifest at a time (segments are read in order): what this check found among the objects it names,
  // and which chunks of its record it names at all, and whether every copy of those it names read healthy.
  let here:
    | {
        marked: boolean;
        previous: DamageRecord | 'unreadable' | undefined;
        found: Map<number, FoundProblem>;
        listedNamed: Uint8Array;
        listedUnhealthy: Uint8Array;
        damagedSegment: boolean;
        /** Chunks that read whole from another copy stay recorded: the volume's next backup trusts this one. */
        latest: boolean;
      }
    | undefined;
  const visit = (ref: BackupRef, id: Uint8Array, location: PackLocation | undefined) => {
    const h = here!;
    const d = damaged.find(id, location);
    // Damage for this backup's record: no copy reads whole, or one does but this backup must stay untrusted.
    const harmful = d >= 0 && (h.latest || !damaged.fromCopyAt(d));
    if (d >= 0 && !h.found.has(d)) {
      const problem = damaged.problemAt(d);
      if (harmful) h.found.set(d, { id: id.slice(), problem });
      const backup = { volumeId: ref.volumeId, backupId: ref.backupId, manifestKey: ref.manifestKey };
      const report = reports.get(d);
      if (report?.backups.at(-1)?.manifestKey !== ref.manifestKey) report?.backups.push(backup);
      if (location !== undefined && problem === 'missing') {
        const pack = missingPacks.get(Buffer.from(location.pack).toString('hex'));
        if (pack && pack.backups.at(-1)?.manifestKey !== ref.manifestKey) pack.backups.push({ ...backup });
      }
    }
    if (h.previous !== undefined && h.previous !== 'unreadable') {
      const j = h.previous.chunks.indexOf(id);
      if (j >= 0) {
        h.listedNamed[j] = 1;
        if (harmful || (d < 0 && healthy.find(id, location) < 0)) h.listedUnhealthy[j] = 1;
      }
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
        listedUnhealthy: new Uint8Array(listedCount),
        damagedSegment: false,
        latest: run.latest.has(ref.manifestKey),
      };
    },
    onSegment: (ref, _manifest, segment: ManifestSegment) => {
      visit(ref, segment.id, undefined);
      if (segment.damaged) {
        here!.damagedSegment = true;
        return;
      }
      const entries = segment.entries;
      for (let i = 0; i < entries.count; i++) {
        if (entries.isChunkAt(i)) visit(ref, entries.idAt(i), entries.locationAt(i));
      }
    },
    onManifestDone: async (ref) => {
      const h = here!;
      here = undefined;
      looked++;
      recordsProgress.report(looked);
      if (!recordDamage || (!h.marked && h.found.size === 0)) return;
      // One entry per id: `corrupt` when its copies differ (what makes a backup store it again).
      const foundHere = [...h.found.values()]
        .sort((a, b) => Buffer.compare(a.id, b.id) || rank(a.problem) - rank(b.problem))
        .filter((f, i, all) => i === 0 || Buffer.compare(all[i - 1]!.id, f.id) !== 0);
      const backupRef = { volumeId: ref.volumeId, backupId: ref.backupId, manifestKey: ref.manifestKey };
      const listed = h.previous !== undefined && h.previous !== 'unreadable' ? h.previous.chunks : undefined;
      note(
        await reconcileDamageRecord(repository, backupRef, {
          previous: h.previous,
          found: foundHere,
          // Healthy for this backup: every copy of it the backup names was read and opened in this check.
          checkedHealthy: (id) => {
            const j = listed?.indexOf(id) ?? -1;
            return j >= 0 && h.listedNamed[j] === 1 && h.listedUnhealthy[j] === 0;
          },
          named: (id) => {
            const j = listed?.indexOf(id) ?? -1;
            return j >= 0 && h.listedNamed[j] === 1;
          },
          // Behind a damaged segment are chunks this check could not know of.
          complete: run.readAll && !h.damagedSegment,
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

function rank(problem: FoundProblem['problem']): number {
  return problem === 'corrupt' ? 0 : 1;
}
