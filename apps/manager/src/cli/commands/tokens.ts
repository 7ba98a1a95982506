import type { ApiToken } from '@stowage/api';
import { type OptionValues, parseChoice } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, idArg } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import { formatTable, formatTime, printable, printJson, printLine, printNote } from '../output.js';

type C = typeof COMMANDS;

export function tokenTable(tokens: readonly ApiToken[]): string {
  return formatTable(
    ['ID', 'NAME', 'ROLE', 'CREATED', 'LAST USED', 'REVOKED'],
    tokens.map((t) => [
      t.id,
      t.name,
      t.role,
      formatTime(t.created_at),
      formatTime(t.last_used_at),
      formatTime(t.revoked_at),
    ]),
  );
}

export async function tokenCreate(
  values: OptionValues<C['tokenCreate']>,
  [name]: string[],
  cli: CliEnv,
): Promise<number> {
  const role = parseChoice('role', values.role ?? 'admin', ['admin', 'operator', 'viewer'] as const);
  const client = connect(values, cli);
  const created = await client.createToken({ name: name!, role }, cli.signal);
  if (values.json) printJson(cli, created);
  else {
    printLine(cli, created.secret);
    printNote(
      cli,
      `created token ${created.token.id} "${printable(created.token.name)}" (${created.token.role}); ` +
        'the token above is shown once: keep it now',
    );
  }
  return EXIT.ok;
}

export function tokenList(values: OptionValues<C['tokenList']>, _: string[], cli: CliEnv): Promise<number> {
  const client = connect(values, cli);
  return listCommand(cli, values, 'tokens', (q) => client.listTokens(q, cli.signal), tokenTable);
}

export async function tokenRevoke(
  values: OptionValues<C['tokenRevoke']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const id = idArg('ID', ref);
  await connect(values, cli).revokeToken(id, cli.signal);
  if (values.json) printJson(cli, { id, revoked: true });
  else printLine(cli, `revoked token ${id}`);
  return EXIT.ok;
}
