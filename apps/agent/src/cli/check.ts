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

/**
 * One problem the check found: the object at fault, what is wrong, and the backups it affects. A warning is
 * damage that restores anyway: every chunk concerned reads whole from another copy (`copy`, when one chunk).
 */
interface Finding {
  object: string;
  problem: 'missing' | 'corrupt' | 'undecodable';
  message: string;
  backups: string[];
  warning?: true;
  copy?: string;
}

/**
 * A missing pack is one finding (every chunk in it is missing: naming each would say the same thing many
 * times over) — a warning when every chunk in it reads whole from other copies; every other damaged chunk is
 * one, named by its location in its pack (a segment by its key), and so is each chunk that reads whole from
 * another copy (a warning).
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
    const chunks = `${p.chunks} chunk${p.chunks === 1 ? '' : 's'}`;
    const lost = p.chunks - p.chunksFromCopies;
    const message =
      p.chunksFromCopies === 0
        ? `pack ${p.objectKey} is missing: the ${chunks} in it are lost`
        : lost === 0
          ? `pack ${p.objectKey} is missing: the ${chunks} in it read whole from other copies`
          : `pack ${p.objectKey} is missing: of the ${chunks} in it, ${lost} are lost and ` +
            `${p.chunksFromCopies} read whole from other copies`;
    out.push({
      object: p.objectKey,
      problem: 'missing',
      message,
      backups: p.backups.map((b) => b.backupId),
      ...(lost === 0 ? { warning: true } : {}),
    });
  }
  const inMissingPack = (c: { problem: string; location: string | undefined; objectKey: string }) =>
    c.problem === 'missing' && c.location !== undefined && missingPacks.has(c.objectKey);
  for (const c of [...report.missingChunks, ...report.corruptChunks]) {
    if (inMissingPack(c)) continue;
    out.push({
      object: c.location ?? c.objectKey,
      problem: c.problem,
      message: c.message,
      backups: c.backups.map((b) => b.backupId),
    });
  }
  for (const c of report.fromCopies) {
    if (inMissingPack(c)) continue;
    out.push({
      object: c.location ?? c.objectKey,
      problem: c.problem,
      message: `${c.message}; it reads whole from the copy at ${c.copy}`,
      backups: c.backups.map((b) => b.backupId),
      warning: true,
      copy: c.copy,
    });
  }
  for (const r of report.damageRecordsUnreadable) {
    out.push({ object: r.objectKey, problem: 'undecodable', message: r.message, backups: [r.ref.backupId] });
  }
  return out;
}

/**
 * Chunks no finding names, beyond the report's lists (a missing pack's finding covers its chunks): damaged
 * ones, and ones that read whole from other copies.
 */
function unlistedChunks(report: CheckReport): { damaged: number; fromCopies: number } {
  const missingPacks = new Set(report.missingPacks.map((p) => p.objectKey));
  const inMissingPack = (c: { location: string | undefined; objectKey: string }) =>
    c.location !== undefined && missingPacks.has(c.objectKey);
  let missing = 0;
  let copied = 0;
  for (const p of report.missingPacks) {
    missing += p.chunks - p.chunksFromCopies;
    copied += p.chunksFromCopies;
  }
  for (const c of report.missingChunks) if (!inMissingPack(c)) missing++;
  for (const c of report.fromCopies) if (!(c.problem === 'missing' && inMissingPack(c))) copied++;
  return {
    damaged: Math.max(0, report.missingCount - missing) + (report.corruptCount - report.corruptChunks.length),
    fromCopies: Math.max(0, report.chunksFromCopies - copied),
  };
}

function humanLine(f: Finding): string {
  const what = f.message.includes(f.object) ? f.message : `${f.object}: ${f.message}`;
  const shown = f.backups.slice(0, BACKUPS_PER_LINE).join(', ');
  const more = f.backups.length > BACKUPS_PER_LINE ? ` and ${f.backups.length - BACKUPS_PER_LINE} more` : '';
  const named = f.backups.length === 0 ? '' : `; backup${f.backups.length === 1 ? '' : 's'} ${shown}${more}`;
  return `${f.warning ? 'warning' : 'error'}: ${printable(`${f.problem}: ${what}${named}`)}`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * `agent check`: the whole repository, like `restic check`. Exit 0 when clean; 5 when any chunk is missing or
 * corrupt with no other copy that reads whole, or a manifest or damage record does not decode, each named on
 * an error line of its own. A damaged chunk that reads whole from another copy restores: a warning line.
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
  const warning = (fields: Record<string, unknown>) =>
    cli.stderr.write(`${jsonText({ message_type: 'warning', ...fields })}\n`);
  const notSought =
    report.chunksNotSought > 0
      ? `${plural(report.chunksNotSought, 'damaged chunk')} not looked for in other copies ` +
        `(too many damaged chunks for one search): counted as damaged`
      : undefined;
  const unlistedCopies =
    unlisted.fromCopies > 0
      ? `${unlisted.fromCopies} more chunks read whole from other copies, not listed one by one`
      : undefined;
  if (values.json) {
    for (const { warning: isWarning, ...f } of found) {
      if (isWarning) warning(f);
      else jsonMessages.error(cli, f);
    }
    for (const w of report.indexObjectsUnreadable) warning({ object: w.objectKey, message: w.message });
    if (unlistedCopies) warning({ message: unlistedCopies });
    if (notSought) warning({ message: notSought });
    if (unlisted.damaged > 0) {
      jsonMessages.error(cli, { message: `${unlisted.damaged} more damaged chunks, not listed one by one` });
    }
    jsonMessages.summary(cli, {
      ok: report.clean,
      manifests_checked: report.manifestsChecked,
      chunks_checked: report.chunksChecked,
      chunks_read: report.chunksRead,
      bytes_read: report.bytesRead,
      missing_chunks: report.missingCount,
      corrupt_chunks: report.corruptCount,
      chunks_from_copies: report.chunksFromCopies,
      copies_read: report.copiesRead,
      chunks_not_sought: report.chunksNotSought,
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
    if (unlistedCopies) cli.stderr.write(`warning: ${unlistedCopies}\n`);
    if (notSought) cli.stderr.write(`warning: ${notSought}\n`);
    if (unlisted.damaged > 0) {
      cli.stderr.write(`error: ${unlisted.damaged} more damaged chunks, not listed one by one\n`);
    }
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
        : '') +
      (report.chunksFromCopies > 0
        ? `; ${plural(report.chunksFromCopies, 'damaged chunk')} read whole from other copies`
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
