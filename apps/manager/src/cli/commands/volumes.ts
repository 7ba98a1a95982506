import { BACKEND_KINDS, type ManagedVolume, type RetentionPolicy, VOLUME_STATES } from '@stowage/api';
import { exclusive, type OptionValues, parseChoice, parseInteger, parseSize } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, hostId, idArg, targetId } from '../context.js';
import { EXIT, UsageError } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import { formatBytes, formatFields, formatTable, formatTime, printJson, printLine } from '../output.js';

type C = typeof COMMANDS;

export function volumeTable(volumes: readonly ManagedVolume[]): string {
  return formatTable(
    ['ID', 'NAME', 'STATE', 'SIZE', 'BACKEND', 'LAST BACKUP', 'LOCATOR'],
    volumes.map((v) => [
      v.id,
      v.name,
      v.state,
      formatBytes(v.size),
      v.backend,
      formatTime(v.last_backup_at),
      v.locator,
    ]),
  );
}

export function volumeFields(v: ManagedVolume): string {
  return formatFields([
    ['id', v.id],
    ['name', v.name],
    ['state', v.state],
    ['size', `${formatBytes(v.size)} (${v.size} bytes)`],
    ['host', v.host_id],
    ['backend', v.backend],
    ['locator', v.locator],
    ['target', v.backup_target_id],
    [
      'last backup',
      v.last_backup_id === null ? null : `${v.last_backup_id} at ${formatTime(v.last_backup_at)}`,
    ],
    ['created', formatTime(v.created_at)],
    ['error', v.error === null ? null : `${v.error.code}: ${v.error.message}`],
  ]);
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined) throw new UsageError(`missing --${flag}`);
  return value;
}

export async function volumeCreate(
  values: OptionValues<C['volumeCreate']>,
  [name]: string[],
  cli: CliEnv,
): Promise<number> {
  const size = parseSize('size', required(values.size, 'size SIZE'));
  const backend = parseChoice('backend', values.backend ?? 'local-file', BACKEND_KINDS);
  const client = connect(values, cli);
  const host = await hostId(client, required(values.host, 'host HOST'), cli.signal);
  const target = values.target === undefined ? undefined : await targetId(client, values.target, cli.signal);
  const volume = await client.createVolume(
    {
      name: name!,
      host_id: host,
      backend,
      size,
      ...(target === undefined ? {} : { backup_target_id: target }),
    },
    cli.signal,
  );
  if (values.json) printJson(cli, volume);
  else cli.stdout.write(volumeFields(volume));
  return EXIT.ok;
}

export async function volumeAdopt(
  values: OptionValues<C['volumeAdopt']>,
  _: string[],
  cli: CliEnv,
): Promise<number> {
  const locator = required(values.locator, 'locator PATH');
  const backend = parseChoice('backend', values.backend ?? 'local-file', BACKEND_KINDS);
  const client = connect(values, cli);
  const host = await hostId(client, required(values.host, 'host HOST'), cli.signal);
  const target = values.target === undefined ? undefined : await targetId(client, values.target, cli.signal);
  const volume = await client.createVolume(
    {
      host_id: host,
      backend,
      locator,
      ...(values.name === undefined ? {} : { name: values.name }),
      ...(target === undefined ? {} : { backup_target_id: target }),
    },
    cli.signal,
  );
  if (values.json) printJson(cli, volume);
  else cli.stdout.write(volumeFields(volume));
  return EXIT.ok;
}

export async function volumeList(
  values: OptionValues<C['volumeList']>,
  _: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  const filter = {
    ...(values.host === undefined ? {} : { host_id: await hostId(client, values.host, cli.signal) }),
    ...(values.target === undefined
      ? {}
      : { backup_target_id: await targetId(client, values.target, cli.signal) }),
    ...(values.state === undefined ? {} : { state: parseChoice('state', values.state, VOLUME_STATES) }),
    ...(values.name === undefined ? {} : { name: values.name }),
  };
  return listCommand(
    cli,
    values,
    'volumes',
    (q) => client.listVolumes({ ...filter, ...q }, cli.signal),
    volumeTable,
  );
}

export async function volumeGet(
  values: OptionValues<C['volumeGet']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const volume = await connect(values, cli).getVolume(idArg('ID', ref), cli.signal);
  if (values.json) printJson(cli, volume);
  else cli.stdout.write(volumeFields(volume));
  return EXIT.ok;
}

export async function volumeDelete(
  values: OptionValues<C['volumeDelete']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('ID', ref);
  await connect(values, cli).deleteVolume(id, cli.signal);
  if (values.json) printJson(cli, { id, deleted: true });
  else printLine(cli, `deleted volume ${id}`);
  return EXIT.ok;
}

const KEEPS = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;

export async function volumeSchedule(
  values: OptionValues<C['volumeSchedule']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('ID', ref);
  exclusive(values, 'cron', 'no-cron');
  exclusive(values, 'enable', 'disable');
  const retention: RetentionPolicy = {};
  for (const unit of KEEPS) {
    const text = values[`keep-${unit}`];
    if (text !== undefined) retention[`keep_${unit}`] = parseInteger(`keep-${unit}`, text, 0, 1_000_000);
  }
  if (values['keep-within'] !== undefined) retention.keep_within = values['keep-within'];
  const keeps = Object.keys(retention).length > 0;
  if (keeps && values['no-retention'])
    throw new UsageError('--no-retention cannot be given with --keep options');
  const body = {
    ...(values.cron !== undefined ? { cron: values.cron } : values['no-cron'] ? { cron: null } : {}),
    ...(values.timezone === undefined ? {} : { timezone: values.timezone }),
    ...(values.enable ? { enabled: true } : values.disable ? { enabled: false } : {}),
    ...(keeps ? { retention } : values['no-retention'] ? { retention: null } : {}),
  };
  if (Object.keys(body).length === 0)
    throw new UsageError('give something to change: --cron, --timezone, --enable, --disable or --keep-…');
  const client = connect(values, cli);
  const volume = await client.updateBackupSchedule(id, body, cli.signal);
  const fireTimes =
    volume.schedule.cron === null
      ? []
      : (await client.previewBackupSchedule(id, { count: 5 }, cli.signal)).fire_times;
  if (values.json) printJson(cli, { volume, next_fire_times: fireTimes });
  else {
    const s = volume.schedule;
    const lines = [
      `schedule: ${s.cron ?? 'none'}${s.cron === null ? '' : ` (${s.timezone})`}, ${s.enabled ? 'on' : 'off'}, ${s.status}`,
      `retention: ${s.retention === null ? 'keep everything' : retentionText(s.retention)}`,
      ...(fireTimes.length > 0 ? ['next fire times:', ...fireTimes.map((t) => `  ${t}`)] : []),
    ];
    printLine(cli, lines.join('\n'));
  }
  return EXIT.ok;
}

function retentionText(policy: RetentionPolicy): string {
  const parts = Object.entries(policy).map(([key, value]) => `${key.replace('keep_', '')} ${value}`);
  return parts.length === 0 ? 'keep everything' : `keep ${parts.join(', ')}`;
}
