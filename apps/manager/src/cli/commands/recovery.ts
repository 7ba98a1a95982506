import {
  BACKEND_KINDS,
  type ImportBackupTargetRequest,
  INDEX_REBUILD_DEFAULT_LIMIT,
  INDEX_REBUILD_MAX_LIMIT,
  type IndexRebuildResult,
} from '@stowage/api';
import { type OptionValues, parseChoice, parseInteger } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, targetId } from '../context.js';
import { CliError, EXIT, UsageError } from '../exit-codes.js';
import { formatDuration, formatFields, printable, printJson, printNote } from '../output.js';
import { gcRequest, locationRequest, readSecretFile, where } from './targets.js';

type C = typeof COMMANDS;

/** The import's request from the options: the location as `target create` takes it, and the passphrase. */
export function importRequest(
  name: string,
  values: OptionValues<C['targetImport']>,
  cli: Pick<CliEnv, 'env' | 'cwd'>,
): ImportBackupTargetRequest {
  const location = locationRequest(values, cli);
  if (values['passphrase-file'] === undefined) {
    throw new UsageError("missing --passphrase-file FILE (the repository's recovery passphrase)");
  }
  const passphrase = readSecretFile('passphrase-file', values['passphrase-file'], cli);
  if (passphrase === '') {
    throw new UsageError(`--passphrase-file ${values['passphrase-file']} is empty`, { hint: false });
  }
  return { name, passphrase, ...gcRequest(values), ...location };
}

export async function targetImport(
  values: OptionValues<C['targetImport']>,
  [name]: string[],
  cli: CliEnv,
): Promise<number> {
  const body = importRequest(name!, values, cli);
  const imported = await connect(values, cli).request('importTarget', { body }, cli.signal);
  const t = imported.target;
  if (values.json) printJson(cli, imported);
  else {
    cli.stdout.write(
      `imported target ${t.id} "${printable(t.name)}" (${t.kind}: ${printable(where(t))}), repository ${t.repository_id}\n`,
    );
    printNote(cli, `next, record its backups: manager backup index-rebuild --target ${t.id}`);
  }
  return EXIT.ok;
}

/** What `backup index-rebuild` prints with --json: the batches' answers added up. */
export interface IndexRebuildTotals extends IndexRebuildResult {
  batches: number;
}

const COUNTS = [
  'manifests',
  'inserted',
  'existing',
  'vanished',
  'volumes_created',
  'damaged',
  'conflicts',
] as const;

/** One line of progress, after each batch. */
export function rebuildProgressLine(totals: IndexRebuildTotals): string {
  const parts = [
    `${totals.manifests} manifests read`,
    `${totals.inserted} backups recorded`,
    `${totals.existing} already known`,
  ];
  if (totals.volumes_created > 0) parts.push(`${totals.volumes_created} archived volumes recorded`);
  if (totals.vanished > 0) parts.push(`${totals.vanished} gone meanwhile`);
  if (totals.damaged > 0) parts.push(`${totals.damaged} damaged`);
  if (totals.conflicts > 0) parts.push(`${totals.conflicts} in conflict`);
  return `batch ${totals.batches}: ${parts.join(', ')}`;
}

export async function backupIndexRebuild(
  values: OptionValues<C['backupIndexRebuild']>,
  _: string[],
  cli: CliEnv,
): Promise<number> {
  if (values.target === undefined) throw new UsageError('missing --target TARGET');
  const limit =
    values.batch === undefined
      ? INDEX_REBUILD_DEFAULT_LIMIT
      : parseInteger('batch', values.batch, 1, INDEX_REBUILD_MAX_LIMIT);
  const backend =
    values['volume-backend'] === undefined
      ? 'local-file'
      : parseChoice('volume-backend', values['volume-backend'], BACKEND_KINDS);
  let startAfter = values['start-after'];
  if (startAfter !== undefined && !startAfter.startsWith('manifests/')) {
    throw new UsageError(`option --start-after must be a manifest key (manifests/…), got "${startAfter}"`);
  }
  const client = connect(values, cli);
  const id = await targetId(client, values.target, cli.signal);
  const totals: IndexRebuildTotals = {
    backup_target_id: id,
    manifests: 0,
    inserted: 0,
    existing: 0,
    vanished: 0,
    volumes_created: 0,
    damaged: 0,
    conflicts: 0,
    problems: [],
    next_start_after: null,
    duration_seconds: 0,
    batches: 0,
  };
  for (;;) {
    let batch: IndexRebuildResult;
    try {
      batch = await client.request(
        'rebuildIndex',
        {
          params: { id },
          body: {
            limit,
            volume_backend: backend,
            ...(startAfter === undefined ? {} : { start_after: startAfter }),
          },
        },
        cli.signal,
      );
    } catch (error) {
      // What the batches before recorded stays; a rerun from the start would only find it again.
      const resume = startAfter === undefined ? '' : ` --start-after ${startAfter}`;
      if (totals.batches > 0) printNote(cli, rebuildProgressLine(totals));
      printNote(
        cli,
        `the rebuild stopped before the end; resume it with: manager backup index-rebuild --target ${id}${resume}`,
      );
      throw error;
    }
    totals.batches++;
    for (const key of COUNTS) totals[key] += batch[key];
    totals.duration_seconds += batch.duration_seconds;
    totals.problems.push(...batch.problems);
    for (const p of batch.problems) {
      printNote(cli, `not recorded: ${printable(p.manifest_key)} (${p.kind}): ${printable(p.message)}`);
    }
    printNote(cli, rebuildProgressLine(totals));
    if (batch.next_start_after === null) break;
    startAfter = batch.next_start_after;
  }
  if (values.json) printJson(cli, totals);
  else {
    cli.stdout.write(
      formatFields([
        ['target', id],
        ['manifests', totals.manifests],
        ['recorded', totals.inserted],
        ['already known', totals.existing],
        ['archived volumes', totals.volumes_created],
        ['gone meanwhile', totals.vanished],
        ['damaged', totals.damaged],
        ['conflicts', totals.conflicts],
        ['took', formatDuration(totals.duration_seconds)],
      ]),
    );
  }
  const unrecorded = totals.damaged + totals.conflicts;
  if (unrecorded > 0) {
    throw new CliError(
      `${unrecorded} manifest(s) could not be recorded (listed above); every other backup is recorded`,
      EXIT.failure,
    );
  }
  return EXIT.ok;
}
