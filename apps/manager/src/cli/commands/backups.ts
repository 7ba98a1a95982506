import { BACKEND_KINDS, BACKUP_STATES, type ManagedBackup, VERIFY_STATES } from '@stowage/api';
import { type OptionValues, parseChoice } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, hostId, idArg, targetId } from '../context.js';
import { EXIT, UsageError } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import {
  formatBytes,
  formatDuration,
  formatFields,
  formatTable,
  formatTime,
  printJson,
  printLine,
  printNote,
} from '../output.js';
import { watchJob } from '../watch.js';

type C = typeof COMMANDS;

const bytes = (n: number | null) => (n === null ? null : formatBytes(n));

export function backupTable(backups: readonly ManagedBackup[]): string {
  return formatTable(
    ['ID', 'VOLUME', 'STATE', 'STARTED', 'SIZE', 'UPLOADED', 'TOOK'],
    backups.map((b) => [
      b.id,
      b.volume_id,
      b.state,
      formatTime(b.started_at),
      bytes(b.size),
      bytes(b.bytes_uploaded),
      b.duration_seconds === null ? null : formatDuration(b.duration_seconds),
    ]),
  );
}

export function backupFields(b: ManagedBackup): string {
  return formatFields([
    ['id', b.id],
    ['volume', b.volume_id],
    ['target', b.backup_target_id],
    ['job', b.job_id],
    ['state', b.state],
    ['started', formatTime(b.started_at)],
    ['finished', formatTime(b.finished_at)],
    ['size', bytes(b.size)],
    ['read', bytes(b.bytes_read)],
    ['uploaded', bytes(b.bytes_uploaded)],
    ['chunks', b.chunks === null ? null : `${b.chunks} (${b.chunks_new ?? 0} new)`],
    ['snapshot', b.snapshot],
    ['manifest', b.manifest_key],
    ['took', b.duration_seconds === null ? null : formatDuration(b.duration_seconds)],
    ['error', b.error === null ? null : `${b.error.code}: ${b.error.message}`],
    ['verified', verificationText(b)],
  ]);
}

function verificationText(b: ManagedBackup): string {
  const v = b.verification;
  if (v.state === 'unverified') return v.error === null ? 'never' : `never (${v.error.message})`;
  const when = v.verified_at === null ? '' : ` at ${formatTime(v.verified_at)}`;
  const share =
    v.sample_percent === null || v.sample_percent === 100 ? '' : ` (${v.sample_percent} % of chunks)`;
  return v.state === 'ok'
    ? `ok${when}${share}`
    : `DAMAGED: ${v.damaged_chunks ?? '?'} chunk(s) missing or corrupt${when}`;
}

const SNAPSHOT = { on: true, copy: 'copy', off: false } as const;

export async function backupNow(
  values: OptionValues<C['backupNow']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const volume = idArg('VOLUME_ID', ref);
  const snapshot =
    values.snapshot === undefined
      ? undefined
      : SNAPSHOT[parseChoice('snapshot', values.snapshot, ['on', 'copy', 'off'] as const)];
  const client = connect(values, cli);
  const target = values.target === undefined ? undefined : await targetId(client, values.target, cli.signal);
  const started = await client.backupNow(
    volume,
    {
      ...(target === undefined ? {} : { backup_target_id: target }),
      ...(snapshot === undefined ? {} : { snapshot }),
    },
    cli.signal,
  );
  if (values.json) printJson(cli, started);
  else {
    printLine(cli, `backup ${started.backup.id} of volume ${volume} started: job ${started.job.id}`);
    if (!values.watch) printNote(cli, `follow it with "manager job watch ${started.job.id}"`);
  }
  return values.watch ? watchJob(client, started.job.id, cli, { json: values.json === true }) : EXIT.ok;
}

export async function backupVerify(
  values: OptionValues<C['backupVerify']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('BACKUP_ID', ref);
  let sample: number | undefined;
  if (values.sample !== undefined) {
    sample = Number(values.sample.replace(/%$/, ''));
    if (!Number.isFinite(sample) || sample <= 0 || sample > 100) {
      throw new UsageError(`--sample must be a percentage in (0, 100], not ${JSON.stringify(values.sample)}`);
    }
  }
  const client = connect(values, cli);
  const host = values.host === undefined ? undefined : await hostId(client, values.host, cli.signal);
  const started = await client.verifyBackup(
    id,
    { ...(sample === undefined ? {} : { sample }), ...(host === undefined ? {} : { host_id: host }) },
    cli.signal,
  );
  if (values.json && !values.watch) printJson(cli, started);
  else if (!values.json) {
    printLine(
      cli,
      `verifying backup ${id}${sample === undefined ? '' : ` (${sample} % of its chunks)`}: job ${started.job.id}`,
    );
    if (!values.watch) printNote(cli, `follow it with "manager job watch ${started.job.id}"`);
  }
  if (!values.watch) return EXIT.ok;
  const code = await watchJob(client, started.job.id, cli, { json: values.json === true });
  if (code !== EXIT.ok) return code;
  const backup = await client.getBackup(id, cli.signal);
  if (values.json) printJson(cli, backup.verification);
  else printLine(cli, `backup ${id}: ${verificationText(backup)}`);
  return backup.verification.state === 'damaged' ? EXIT.failure : EXIT.ok;
}

export async function backupList(
  values: OptionValues<C['backupList']>,
  _: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  const filter = {
    ...(values.volume === undefined ? {} : { volume_id: idArg('--volume', values.volume) }),
    ...(values.target === undefined
      ? {}
      : { backup_target_id: await targetId(client, values.target, cli.signal) }),
    ...(values.state === undefined ? {} : { state: parseChoice('state', values.state, BACKUP_STATES) }),
    ...(values['verify-state'] === undefined
      ? {}
      : { verify_state: parseChoice('verify-state', values['verify-state'], VERIFY_STATES) }),
  };
  return listCommand(
    cli,
    values,
    'backups',
    (q) => client.listBackups({ ...filter, ...q }, cli.signal),
    backupTable,
  );
}

export async function backupGet(
  values: OptionValues<C['backupGet']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const backup = await connect(values, cli).getBackup(idArg('ID', ref), cli.signal);
  if (values.json) printJson(cli, backup);
  else cli.stdout.write(backupFields(backup));
  return EXIT.ok;
}

export async function backupDelete(
  values: OptionValues<C['backupDelete']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('ID', ref);
  await connect(values, cli).deleteBackup(id, cli.signal);
  if (values.json) printJson(cli, { id, deleted: true });
  else printLine(cli, `deleted backup ${id}`);
  return EXIT.ok;
}

export async function backupRestore(
  values: OptionValues<C['backupRestore']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('BACKUP_ID', ref);
  const backend =
    values.backend === undefined ? undefined : parseChoice('backend', values.backend, BACKEND_KINDS);
  if (values.name === '') throw new UsageError('--name must not be empty');
  const client = connect(values, cli);
  const host = values.host === undefined ? undefined : await hostId(client, values.host, cli.signal);
  const started = await client.restoreBackup(
    id,
    {
      ...(host === undefined ? {} : { host_id: host }),
      ...(values.name === undefined ? {} : { name: values.name }),
      ...(backend === undefined ? {} : { backend }),
    },
    cli.signal,
  );
  if (values.json) printJson(cli, started);
  else {
    printLine(
      cli,
      `restoring backup ${id} onto new volume ${started.volume.id} ("${started.volume.name}"): job ${started.job.id}`,
    );
    if (!values.watch) printNote(cli, `follow it with "manager job watch ${started.job.id}"`);
  }
  return values.watch ? watchJob(client, started.job.id, cli, { json: values.json === true }) : EXIT.ok;
}
