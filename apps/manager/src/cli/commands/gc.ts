import type { GcRun } from '@stowage/api';
import { exclusive, type OptionValues } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, targetId } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import {
  formatBytes,
  formatDuration,
  formatFields,
  formatTable,
  formatTime,
  printJson,
  printNote,
} from '../output.js';

type C = typeof COMMANDS;

const deleted = (r: GcRun) => r.packs_deleted + r.segments_deleted + r.index_objects_deleted;

export function gcRunTable(runs: readonly GcRun[]): string {
  return formatTable(
    ['ID', 'STATE', 'PHASE', 'TRIGGER', 'DRY RUN', 'STARTED', 'TOOK', 'DELETED', 'FREED'],
    runs.map((r) => [
      r.id,
      r.state,
      r.phase,
      r.trigger,
      r.dry_run ? 'yes' : 'no',
      formatTime(r.started_at),
      r.duration_seconds === null ? null : formatDuration(r.duration_seconds),
      deleted(r),
      formatBytes(r.bytes_freed),
    ]),
  );
}

export function gcRunFields(r: GcRun): string {
  return formatFields([
    ['id', r.id],
    ['target', r.backup_target_id],
    ['state', r.state],
    ['phase', r.phase],
    ['dry run', r.dry_run ? 'yes (nothing is deleted)' : 'no'],
    ['grace', formatDuration(r.grace_seconds)],
    ['cutoff', formatTime(r.cutoff)],
    ['started', formatTime(r.started_at)],
    ['manifests', r.manifests],
    ['packs', `${r.packs_listed} listed, ${r.packs_live} live, ${r.packs_deleted} deleted`],
    ['segments', `${r.segments_listed} listed, ${r.segments_live} live, ${r.segments_deleted} deleted`],
    ['index objects', `${r.index_objects_listed} listed, ${r.index_objects_deleted} deleted`],
    ['freed', formatBytes(r.bytes_freed)],
    ['error', r.error === null ? null : `${r.error.code}: ${r.error.message}`],
  ]);
}

export async function targetGc(
  values: OptionValues<C['targetGc']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  const id = await targetId(client, ref!, cli.signal);
  const run = await client.request(
    'startGc',
    { params: { id }, query: { dry_run: values['dry-run'] ? 'true' : 'false' } },
    cli.signal,
  );
  if (values.json) printJson(cli, run);
  else {
    cli.stdout.write(gcRunFields(run));
    printNote(cli, `the run goes on in the manager; follow it with: manager target gc-runs ${id}`);
  }
  return EXIT.ok;
}

export async function targetGcRuns(
  values: OptionValues<C['targetGcRuns']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  // The options are checked before the target's name is looked up: a bad line sends nothing.
  exclusive(values, 'all', 'limit');
  exclusive(values, 'all', 'cursor');
  const client = connect(values, cli);
  const id = await targetId(client, ref!, cli.signal);
  return listCommand(
    cli,
    values,
    'GC runs',
    (query) => client.request('listGcRuns', { params: { id }, query }, cli.signal),
    gcRunTable,
  );
}
