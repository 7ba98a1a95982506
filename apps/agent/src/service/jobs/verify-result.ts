import {
  type DamagedBackup,
  MAX_DAMAGED_BACKUPS,
  MAX_VERIFY_PROBLEMS,
  type VerifyResult,
} from '@stowage/api';
import type { BackupRef, CheckReport, VerifyReport } from '@stowage/engine';

/**
 * A verify job's result from the engine's reports: the verified backup's own findings, and — when a
 * repository check followed — every backup the check found naming a damaged chunk object (or whose manifest
 * does not decode), or the check's failure (`{ error }`). The verified backup is listed first whenever it is damaged, with the larger of the two
 * counts (the check's lists stop at `MAX_REPORTED_CHUNKS` per problem; the verify's count does not).
 */
export function verifyResultOf(
  backup: BackupRef,
  samplePercent: number,
  report: VerifyReport,
  check: CheckReport | { error: string } | undefined,
): VerifyResult {
  const checkError = check !== undefined && 'error' in check ? check.error : null;
  const checked = check !== undefined && 'error' in check ? undefined : check;
  return resultOf(backup, samplePercent, report, checked, checkError);
}

function resultOf(
  backup: BackupRef,
  samplePercent: number,
  report: VerifyReport,
  check: CheckReport | undefined,
  checkError: string | null,
): VerifyResult {
  const damaged = report.problems.length > 0;
  const byBackup = new Map<string, DamagedBackup>();
  const key = (volumeId: string, backupId: string) => `${volumeId}/${backupId}`;
  const count = (ref: BackupRef) => {
    const k = key(ref.volumeId, ref.backupId);
    const known = byBackup.get(k);
    if (known) known.damaged_chunks++;
    else {
      byBackup.set(k, {
        volume_id: ref.volumeId,
        backup_id: ref.backupId,
        damaged_chunks: 1,
        manifest_damaged: false,
      });
    }
  };
  for (const chunk of [...(check?.missingChunks ?? []), ...(check?.corruptChunks ?? [])]) {
    for (const ref of chunk.backups) count(ref);
  }
  for (const { ref } of check?.damagedManifests ?? []) {
    const k = key(ref.volumeId, ref.backupId);
    const known = byBackup.get(k);
    byBackup.set(k, {
      volume_id: ref.volumeId,
      backup_id: ref.backupId,
      damaged_chunks: known?.damaged_chunks ?? 0,
      manifest_damaged: true,
    });
  }
  const self = key(backup.volumeId, backup.backupId);
  const selfEntry = byBackup.get(self);
  byBackup.delete(self);
  const others = [...byBackup.values()].sort(
    (a, b) => a.volume_id.localeCompare(b.volume_id) || a.backup_id.localeCompare(b.backup_id),
  );
  const all: DamagedBackup[] = damaged
    ? [
        {
          volume_id: backup.volumeId,
          backup_id: backup.backupId,
          damaged_chunks: Math.max(
            report.missingChunks.length + report.corruptChunks.length,
            selfEntry?.damaged_chunks ?? 0,
          ),
          manifest_damaged: false,
        },
        ...others,
      ]
    : others;
  return {
    backup_id: backup.backupId,
    volume_id: backup.volumeId,
    sample_percent: samplePercent,
    chunks_total: report.chunksTotal,
    chunks_checked: report.chunksChecked,
    bytes_checked: report.bytesChecked,
    segments_checked: report.segmentsChecked,
    missing_chunks: report.missingChunks.length,
    corrupt_chunks: report.corruptChunks.length,
    chunks_from_copies: report.chunksFromCopies,
    problems: report.problems.slice(0, MAX_VERIFY_PROBLEMS).map((p) => ({
      object_key: p.objectKey,
      location: p.location ?? null,
      chunk_id: p.chunkId,
      problem: (
        p.location === undefined
          ? report.missingChunks.includes(p.objectKey)
          : report.missingChunks.includes(p.location)
      )
        ? 'missing'
        : 'corrupt',
      message: p.message,
    })),
    damaged,
    damage_record:
      report.damageRecord === undefined
        ? null
        : { action: report.damageRecord.action, chunks_listed: report.damageRecord.chunksListed },
    damage_record_error: report.damageRecordError ?? null,
    damaged_backups: all.slice(0, MAX_DAMAGED_BACKUPS),
    damaged_backups_truncated: all.length > MAX_DAMAGED_BACKUPS,
    repository_check:
      check === undefined
        ? null
        : {
            manifests_checked: check.manifestsChecked,
            missing_chunks: check.missingCount,
            corrupt_chunks: check.corruptCount,
            damage_records_written: check.damageRecordsWritten.length,
            seconds: check.seconds,
          },
    repository_check_error: checkError,
    seconds: report.seconds + (check?.seconds ?? 0),
  };
}
