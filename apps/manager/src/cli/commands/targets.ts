import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  type BackupTarget,
  CHUNKER_AVG_SIZES,
  type CreateBackupTargetRequest,
  type CreatedBackupTarget,
  type TargetTestResult,
} from '@stowage/api';
import { type OptionValues, parseInteger, parseSize } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, targetId } from '../context.js';
import { CliError, EXIT, UsageError } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import { formatBytes, formatFields, formatTable, printable, printJson, printLine } from '../output.js';

type C = typeof COMMANDS;
type CreateValues = OptionValues<C['targetCreate']>;

export function where(t: BackupTarget): string {
  if (t.filesystem) return t.filesystem.path;
  if (t.s3) return `s3://${t.s3.bucket}/${t.s3.prefix}${t.s3.endpoint ? ` at ${t.s3.endpoint}` : ''}`;
  return t.repository;
}

export function targetTable(targets: readonly BackupTarget[]): string {
  return formatTable(
    ['ID', 'NAME', 'KIND', 'BACKUPS', 'STORED', 'LOCATION'],
    targets.map((t) => [t.id, t.name, t.kind, t.usage.backups, formatBytes(t.usage.stored_bytes), where(t)]),
  );
}

export function targetFields(t: BackupTarget): string {
  return formatFields([
    ['id', t.id],
    ['name', t.name],
    ['kind', t.kind],
    ['location', where(t)],
    ['repository', t.repository],
    ['repository id', t.repository_id],
    [
      'chunks',
      `${formatBytes(t.chunker.min_size)} / ${formatBytes(t.chunker.avg_size)} / ${formatBytes(t.chunker.max_size)}`,
    ],
    ['gc', `${String(t.gc_hour).padStart(2, '0')}:00 ${t.timezone}`],
    ['credentials', t.has_credentials ? 'stored' : 'none'],
    ['backups', t.usage.backups],
    ['logical', formatBytes(t.usage.logical_bytes)],
    ['stored', formatBytes(t.usage.stored_bytes)],
  ]);
}

/** The passphrase warning, printed beside a passphrase the manager generated. */
export function createdTargetText(created: CreatedBackupTarget): string {
  let text = `created target ${created.target.id} "${printable(created.target.name)}" (${created.target.kind}: ${printable(where(created.target))})\n`;
  if (created.recovery_passphrase !== null) {
    text +=
      `recovery passphrase: ${created.recovery_passphrase}\n` +
      'WARNING: shown once. It is the only way to read these backups without this manager (its database ' +
      'and master key lost): write it down and keep it offline.\n';
  }
  return text;
}

export function readSecretFile(option: string, file: string, cli: Pick<CliEnv, 'cwd'>): string {
  try {
    return readFileSync(resolve(cli.cwd, file), 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new UsageError(`cannot read --${option} ${file}: ${(error as NodeJS.ErrnoException).code}`, {
      hint: false,
    });
  }
}

/** The location options `target create` and `target import` share. */
export interface LocationValues {
  path?: string | undefined;
  's3-bucket'?: string | undefined;
  's3-endpoint'?: string | undefined;
  's3-region'?: string | undefined;
  's3-prefix'?: string | undefined;
  'path-style'?: boolean | undefined;
  'access-key-id'?: string | undefined;
  'secret-access-key-file'?: string | undefined;
}

export type LocationRequest =
  | { kind: 'filesystem'; filesystem: { path: string } }
  | {
      kind: 's3';
      s3: { bucket: string; endpoint?: string; region: string; prefix: string; path_style: boolean };
      credentials: { access_key_id: string; secret_access_key: string; session_token?: string };
    };

/** Where a repository lives, from the options; every S3 secret from a file or the environment, never a flag
 * value. */
export function locationRequest(values: LocationValues, cli: Pick<CliEnv, 'env' | 'cwd'>): LocationRequest {
  const s3Flags = [
    's3-endpoint',
    's3-region',
    's3-prefix',
    'path-style',
    'access-key-id',
    'secret-access-key-file',
  ] as const;
  if ((values.path === undefined) === (values['s3-bucket'] === undefined)) {
    throw new UsageError('give the target one location: --path DIR or --s3-bucket BUCKET');
  }
  if (values.path !== undefined) {
    const extra = s3Flags.filter((f) => values[f] !== undefined);
    if (extra.length > 0) throw new UsageError(`--${extra[0]} is for S3 targets, not with --path`);
    return { kind: 'filesystem', filesystem: { path: resolve(cli.cwd, values.path) } };
  }
  const accessKeyId = values['access-key-id'] ?? cli.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey =
    values['secret-access-key-file'] === undefined
      ? cli.env.AWS_SECRET_ACCESS_KEY
      : readSecretFile('secret-access-key-file', values['secret-access-key-file'], cli);
  if (!accessKeyId) throw new UsageError('an S3 target needs --access-key-id ID (or AWS_ACCESS_KEY_ID)');
  if (!secretAccessKey) {
    throw new UsageError(
      'an S3 target needs its secret key: --secret-access-key-file FILE, or AWS_SECRET_ACCESS_KEY',
    );
  }
  const session = cli.env.AWS_SESSION_TOKEN;
  return {
    kind: 's3',
    s3: {
      bucket: values['s3-bucket']!,
      ...(values['s3-endpoint'] === undefined ? {} : { endpoint: values['s3-endpoint'] }),
      region: values['s3-region'] ?? 'us-east-1',
      prefix: values['s3-prefix'] ?? '',
      path_style: values['path-style'] ?? false,
    },
    credentials: {
      access_key_id: accessKeyId,
      secret_access_key: secretAccessKey,
      ...(session ? { session_token: session } : {}),
    },
  };
}

/** `--gc-hour` and `--timezone`, as create and import take them. */
export function gcRequest(values: { 'gc-hour'?: string | undefined; timezone?: string | undefined }) {
  return {
    ...(values['gc-hour'] === undefined
      ? {}
      : { gc_hour: parseInteger('gc-hour', values['gc-hour'], 0, 23) }),
    ...(values.timezone === undefined ? {} : { timezone: values.timezone }),
  };
}

/** The request body from the options. */
export function targetRequest(
  name: string,
  values: CreateValues,
  cli: Pick<CliEnv, 'env' | 'cwd'>,
): CreateBackupTargetRequest {
  const location = locationRequest(values, cli);
  const common = {
    name,
    ...(values['passphrase-file'] === undefined
      ? {}
      : { passphrase: readSecretFile('passphrase-file', values['passphrase-file'], cli) }),
    ...(values['avg-chunk-size'] === undefined
      ? {}
      : { chunker: { avg_size: avgSize(values['avg-chunk-size']) } }),
    ...gcRequest(values),
  };
  return { ...common, ...location };
}

function avgSize(text: string): (typeof CHUNKER_AVG_SIZES)[number] {
  const size = parseSize('avg-chunk-size', text);
  const allowed = CHUNKER_AVG_SIZES.find((s) => s === size);
  if (allowed === undefined)
    throw new UsageError(`option --avg-chunk-size must be 512K, 1M, 2M or 4M, got "${text}"`);
  return allowed;
}

export async function targetCreate(values: CreateValues, [name]: string[], cli: CliEnv): Promise<number> {
  const body = targetRequest(name!, values, cli);
  const created = await connect(values, cli).createTarget(body, cli.signal);
  if (values.json) printJson(cli, created);
  else cli.stdout.write(createdTargetText(created));
  return EXIT.ok;
}

export function targetList(values: OptionValues<C['targetList']>, _: string[], cli: CliEnv): Promise<number> {
  const client = connect(values, cli);
  return listCommand(cli, values, 'backup targets', (q) => client.listTargets(q, cli.signal), targetTable);
}

export async function targetGet(
  values: OptionValues<C['targetGet']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  const target = await client.getTarget(await targetId(client, ref!, cli.signal), cli.signal);
  if (values.json) printJson(cli, target);
  else cli.stdout.write(targetFields(target));
  return EXIT.ok;
}

export function testResultText(result: TargetTestResult): string {
  const steps = result.steps
    .map((s) => `${s.step} ${s.ok ? 'ok' : 'FAILED'} (${Math.round(s.ms)} ms)`)
    .join(', ');
  return `${result.ok ? 'ok' : 'failed'}: ${steps || 'no step ran'}\n`;
}

export async function targetTest(
  values: OptionValues<C['targetTest']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  const id = await targetId(client, ref!, cli.signal);
  const result = await client.testTarget(id, cli.signal);
  if (values.json) printJson(cli, result);
  else cli.stdout.write(testResultText(result));
  if (result.ok) return EXIT.ok;
  const e = result.error;
  const code = e?.s3_code ? `, ${e.s3_code}` : '';
  throw new CliError(
    `target ${id} failed its test: ${e ? `${e.cause}${code}: ${e.message}` : 'no cause given'}`,
  );
}

export async function targetDelete(
  values: OptionValues<C['targetDelete']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  const id = await targetId(client, ref!, cli.signal);
  await client.deleteTarget(id, cli.signal);
  if (values.json) printJson(cli, { id, deleted: true });
  else printLine(cli, `deleted target ${id} (the repository itself is left in place)`);
  return EXIT.ok;
}
