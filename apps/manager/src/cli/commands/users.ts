import type { AuditEntry, ManagerClient, User } from '@stowage/api';
import { exclusive, type OptionValues, parseChoice } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, isUuid } from '../context.js';
import { CliError, EXIT } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import { formatTable, formatTime, printable, printJson, printLine, printNote } from '../output.js';
import { readSecretFile } from './targets.js';

type C = typeof COMMANDS;
const ROLES = ['admin', 'operator', 'viewer'] as const;

export function userTable(users: readonly User[]): string {
  return formatTable(
    ['ID', 'NAME', 'ROLE', 'CREATED', 'LAST SIGN-IN'],
    users.map((u) => [u.id, u.name, u.role, formatTime(u.created_at), formatTime(u.last_sign_in_at)]),
  );
}

function auditTable(entries: readonly AuditEntry[]): string {
  return formatTable(
    ['AT', 'ACTOR', 'ACTION', 'RESOURCE', 'OUTCOME', 'FROM', 'REPEATS'],
    entries.map((e) => [
      formatTime(e.at),
      `${e.actor.kind}:${printable(e.actor.name ?? '-')}`,
      e.action,
      Object.values(e.resource).join(' ') || '-',
      e.outcome === 'ok' ? String(e.status) : `${e.status} ${e.error_code ?? ''}`.trim(),
      e.remote ?? '-',
      // A folded refusal: how many calls, until when.
      e.repeats === 1 ? '' : `×${e.repeats} until ${formatTime(e.last_at ?? e.at)}`,
    ]),
  );
}

/** The password of --password-file ("-": standard input), or a generated one to print. */
function passwordFrom(file: string | undefined, cli: CliEnv): { password: string; generated: boolean } {
  if (file === undefined) return { password: generatedPassword(), generated: true };
  return {
    password: readSecretFile('password-file', file === '-' ? '/dev/stdin' : file, cli),
    generated: false,
  };
}

// 144 random bits in 24 base64url characters: strong, and copied without ambiguity.
function generatedPassword(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return Buffer.from(bytes).toString('base64url');
}

async function userId(client: ManagerClient, ref: string, signal: AbortSignal): Promise<string> {
  if (isUuid(ref)) return ref.toLowerCase();
  for await (const user of client.paginate(client.listUsers, {}, signal))
    if (user.name === ref) return user.id;
  throw new CliError(`no user named ${JSON.stringify(ref)}`, EXIT.notFound);
}

export async function userAdd(
  values: OptionValues<C['userAdd']>,
  [name]: string[],
  cli: CliEnv,
): Promise<number> {
  const role = parseChoice('role', values.role ?? 'viewer', ROLES);
  const { password, generated } = passwordFrom(values['password-file'], cli);
  const user = await connect(values, cli).createUser({ name: name!, role, password }, cli.signal);
  if (values.json) printJson(cli, generated ? { user, password } : { user });
  else {
    if (generated) printLine(cli, password);
    printNote(
      cli,
      `added user ${user.id} "${printable(user.name)}" (${user.role})` +
        (generated ? '; the password above is shown once: keep it now' : ''),
    );
  }
  return EXIT.ok;
}

export function userList(values: OptionValues<C['userList']>, _: string[], cli: CliEnv): Promise<number> {
  const client = connect(values, cli);
  return listCommand(cli, values, 'users', (q) => client.listUsers(q, cli.signal), userTable);
}

export async function userPasswd(
  values: OptionValues<C['userPasswd']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  exclusive(values, 'role', 'password-file');
  const client = connect(values, cli);
  const id = await userId(client, ref!, cli.signal);
  if (values.role !== undefined) {
    const user = await client.updateUser(id, { role: parseChoice('role', values.role, ROLES) }, cli.signal);
    if (values.json) printJson(cli, { user });
    else printLine(cli, `${printable(user.name)} is now ${user.role}`);
    return EXIT.ok;
  }
  const { password, generated } = passwordFrom(values['password-file'], cli);
  const user = await client.updateUser(id, { password }, cli.signal);
  if (values.json) printJson(cli, generated ? { user, password } : { user });
  else {
    if (generated) printLine(cli, password);
    printNote(
      cli,
      `new password for ${printable(user.name)}; their sessions have ended` +
        (generated ? '; the password above is shown once' : ''),
    );
  }
  return EXIT.ok;
}

export async function userRemove(
  values: OptionValues<C['userRemove']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  const id = await userId(client, ref!, cli.signal);
  await client.deleteUser(id, cli.signal);
  if (values.json) printJson(cli, { id, removed: true });
  else printLine(cli, `removed user ${id}`);
  return EXIT.ok;
}

export function auditList(values: OptionValues<C['auditList']>, _: string[], cli: CliEnv): Promise<number> {
  const client = connect(values, cli);
  const filters = {
    ...(values.action === undefined ? {} : { action: values.action }),
    ...(values.actor === undefined ? {} : { actor: values.actor }),
    ...(values.failed ? { outcome: 'error' as const } : {}),
  };
  return listCommand(
    cli,
    values,
    'entries',
    (q) => client.listAudit({ ...q, ...filters }, cli.signal),
    auditTable,
  );
}
