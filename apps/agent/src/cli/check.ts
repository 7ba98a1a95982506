import { type CheckProgress, type CheckReadData, type CheckReport, checkRepository } from '@stowage/engine';
import type { OptionValues } from './args.js';
import { type CliEnv, openRepository } from './context.js';
import { EXIT, UsageError } from './exit-codes.js';
import { jsonMessages, jsonText, printable, printLine } from './output.js';
import { formatBytes, progressBar } from './progress-bar.js';
import type { COMMANDS } from './spec.js';

type Values = OptionValues<(typeof COMMANDS)['check']>;

/** Backups named on a human line at most; the JSON error line lists them all. */
const BACKUPS_PER_LINE = 10;

/** What `check` reads: existence only, every chunk (--read-data) or a percentage (--read-data-subset). */
export function readDataOption(values: Values): CheckReadData {
  if (values['read-data'] && values['read-data-subset'] !== undefined) {
    throw new UsageError('--read-data and --read-data-subset exclude each other');
  }
  if (values['read-data']) return 'all';
  const subset = values['read-data-subset'];
  if (subset === undefined) return 'none';
  const percent = Number(subset.replace(/%$/, ''));
  if (!(percent > 0 && percent <= 100)) {
    throw new UsageError(`--read-data-subset must be a percentage in (0, 100], got "${subset}"`);
  }
  return { subsetPercent: percent };
}

/** One problem the check found: the object at fault, what is wrong, and the backups it affects. */
interface Finding {
  object: string;
  problem: 'missing' | 'corrupt' | 'undecodable';
  message: string;
  backups: string[];
}

/**
 * A missing pack is one finding (every chunk in it is missing: naming each would say the same thing many
 * times over); every other damaged chunk is one, named by its location in its pack (a segment by its key).
 */
function findings(report: CheckReport): Finding[] {
  const out: Finding[] = [];
  for (const m of report.damagedManifests) {
    out.push({
      object: m.ref.manifestKey,
      problem: 'undecodable',
      message: m.message,
      backups: [m.ref.backupId],
    });
  }
  const missingPacks = new Set(report.missingPacks.map((p) => p.objectKey));
  for (const p of report.missingPacks) {
    out.push({
      object: p.objectKey,
      problem: 'missing',
      message: `pack ${p.objectKey} is missing: the ${p.chunks} chunk${p.chunks === 1 ? '' : 's'} in it are lost`,
      backups: p.backups.map((b) => b.backupId),
    });
  }
  for (const c of [...report.missingChunks, ...report.corruptChunks]) {
    if (c.problem === 'missing' && c.location !== undefined && missingPacks.has(c.objectKey)) continue;
    out.push({
      object: c.location ?? c.objectKey,
      problem: c.problem,
      message: c.message,
      backups: c.backups.map((b) => b.backupId),
    });
  }
  for (const r of report.damageRecordsUnreadable) {
    out.push({ object: r.objectKey, problem: 'undecodable', message: r.message, backups: [r.ref.backupId] });
  }
  return out;
}

/** Damaged chunks no finding names: beyond the report's lists (a missing pack's finding covers its chunks). */
function unlistedChunks(report: CheckReport): number {
  const missingPacks = new Set(report.missingPacks.map((p) => p.objectKey));
  let named = 0;
  for (const p of report.missingPacks) named += p.chunks;
  for (const c of report.missingChunks) {
    if (!(c.location !== undefined && missingPacks.has(c.objectKey))) named++;
  }
  const missing = Math.max(0, report.missingCount - named);
  return missing + (report.corruptCount - report.corruptChunks.length);
}

function humanLine(f: Finding): string {
  const what = f.message.includes(f.object) ? f.message : `${f.object}: ${f.message}`;
  const shown = f.backups.slice(0, BACKUPS_PER_LINE).join(', ');
  const more = f.backups.length > BACKUPS_PER_LINE ? ` and ${f.backups.length - BACKUPS_PER_LINE} more` : '';
  const named = f.backups.length === 0 ? '' : `; backup${f.backups.length === 1 ? '' : 's'} ${shown}${more}`;
  return `error: ${printable(`${f.problem}: ${what}${named}`)}`;
}

/**
 * `agent check`: the whole repository, like `restic check`. Exit 0 when clean; 5 when any chunk is missing or
 * corrupt, or a manifest or damage record does not decode, each named on a line of its own.
 */
export async function check(values: Values, _positionals: string[], cli: CliEnv): Promise<number> {
  const readData = readDataOption(values);
  const { repository, workers, close } = await openRepository(values.repo, cli);
  const bar = values.json || values.quiet ? undefined : progressBar(cli.stderr);
  const onProgress = (p: CheckProgress) => {
    if (values.json) {
      if (!values.quiet) jsonMessages.status(cli, p, { step: p.step, pass: p.pass });
    } else bar?.update(p);
  };
  let report: CheckReport;
  try {
    report = await checkRepository({ repository, workers, readData, onProgress, signal: cli.signal });
  } finally {
    bar?.done();
    await close();
  }
  const found = findings(report);
  const unlisted = unlistedChunks(report);
  if (values.json) {
    for (const f of found) jsonMessages.error(cli, f);
    for (const w of report.indexObjectsUnreadable) {
      cli.stderr.write(`${jsonText({ message_type: 'warning', object: w.objectKey, message: w.message })}\n`);
    }
    if (unlisted > 0) {
      jsonMessages.error(cli, { message: `${unlisted} more damaged chunks, not listed one by one` });
    }
    jsonMessages.summary(cli, {
      ok: report.clean,
      manifests_checked: report.manifestsChecked,
      chunks_checked: report.chunksChecked,
      chunks_read: report.chunksRead,
      bytes_read: report.bytesRead,
      missing_chunks: report.missingCount,
      corrupt_chunks: report.corruptCount,
      packs_referenced: report.packsReferenced,
      packs_listed: report.packsListed,
      missing_packs: report.packsMissing,
      unreferenced_packs: report.packsUnreferenced,
      unreferenced_pack_bytes: report.bytesUnreferenced,
      unreferenced_chunk_objects: report.chunkObjectsUnreferenced,
      index_objects_checked: report.indexObjectsChecked,
      unreadable_index_objects: report.indexObjectsUnreadable.length,
      damaged_manifests: report.damagedManifests.length,
      unreadable_damage_records: report.damageRecordsUnreadable.length,
      damage_records_written: report.damageRecordsWritten.length,
      damage_records_cleared: report.damageRecordsCleared.length,
      passes: report.passes,
      seconds: Number(report.seconds.toFixed(3)),
    });
  } else {
    for (const f of found) cli.stderr.write(`${humanLine(f)}\n`);
    if (unlisted > 0) cli.stderr.write(`error: ${unlisted} more damaged chunks, not listed one by one\n`);
    for (const w of report.indexObjectsUnreadable) {
      // A hint for dedup only: backups skip it, and nothing needs it to restore.
      cli.stderr.write(
        `warning: ${printable(`index object ${w.objectKey} does not decode: ${w.message}`)}\n`,
      );
    }
    const garbage = report.packsUnreferenced + report.chunkObjectsUnreferenced;
    const checked =
      `${report.manifestsChecked} manifests, ${report.chunksChecked} chunks in ${report.packsReferenced} packs checked` +
      (report.chunksRead > 0 ? `, ${report.chunksRead} read (${formatBytes(report.bytesRead)})` : '') +
      (garbage > 0
        ? `; ${report.packsUnreferenced} unreferenced packs (${formatBytes(report.bytesUnreferenced)}) and ` +
          `${report.chunkObjectsUnreferenced} unreferenced chunk objects, left for garbage collection`
        : '');
    const records =
      report.damageRecordsWritten.length + report.damageRecordsCleared.length > 0
        ? `; damage records: ${report.damageRecordsWritten.length} written, ${report.damageRecordsCleared.length} cleared`
        : '';
    printLine(
      cli,
      report.clean
        ? `repository ok: ${checked}${records}`
        : `repository DAMAGED: ${report.missingCount} missing and ${report.corruptCount} corrupt chunks ` +
            `(${report.packsMissing} missing packs), ` +
            `${report.damagedManifests.length} undecodable manifests, ` +
            `${report.damageRecordsUnreadable.length} undecodable damage records (${checked})${records}`,
    );
  }
  return report.clean ? EXIT.ok : EXIT.integrity;
}
