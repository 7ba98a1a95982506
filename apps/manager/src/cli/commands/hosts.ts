import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Host } from '@stowage/api';
import type { OptionValues } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import { type CliEnv, connect, hostId } from '../context.js';
import { EXIT, UsageError } from '../exit-codes.js';
import { listCommand } from '../listing.js';
import { formatFields, formatTable, formatTime, printJson, printLine, printNote } from '../output.js';

type C = typeof COMMANDS;

export function hostTable(hosts: readonly Host[]): string {
  return formatTable(
    ['ID', 'NAME', 'STATUS', 'URL', 'BACKENDS', 'LAST CONTACT'],
    hosts.map((h) => [
      h.id,
      h.name,
      h.status,
      h.url,
      h.backends.map((b) => b.backend).join(','),
      formatTime(h.last_contact_at),
    ]),
  );
}

export function hostFields(h: Host): string {
  return formatFields([
    ['id', h.id],
    ['name', h.name],
    ['url', h.url],
    ['status', h.status],
    ['agent id', h.agent_id],
    ['backends', h.backends.map((b) => b.backend).join(', ')],
    ['last contact', formatTime(h.last_contact_at)],
    ['last error', h.last_error],
    ['created', formatTime(h.created_at)],
  ]);
}

/** The agent's token: a file, or AGENT_TOKEN; never a flag value, which `ps` would show. */
function agentToken(values: OptionValues<C['hostAdd']>, cli: CliEnv): string {
  const file = values['agent-token-file'];
  if (file !== undefined) {
    try {
      return readFileSync(resolve(cli.cwd, file), 'utf8').trim();
    } catch (error) {
      throw new UsageError(
        `cannot read --agent-token-file ${file}: ${(error as NodeJS.ErrnoException).code}`,
        { hint: false },
      );
    }
  }
  if (cli.env.AGENT_TOKEN) return cli.env.AGENT_TOKEN.trim();
  throw new UsageError("the agent's token is needed: --agent-token-file FILE, or AGENT_TOKEN");
}

export async function hostAdd(
  values: OptionValues<C['hostAdd']>,
  [name]: string[],
  cli: CliEnv,
): Promise<number> {
  if (values['agent-url'] === undefined) throw new UsageError('missing --agent-url URL');
  const token = agentToken(values, cli);
  const registered = await connect(values, cli).registerHost(
    { name: name!, url: values['agent-url'], token },
    cli.signal,
  );
  if (values.json) printJson(cli, registered);
  else {
    cli.stdout.write(hostFields(registered.host));
    printLine(cli, `manager token: ${registered.manager_token}`);
    printNote(
      cli,
      'give the agent the manager token as AGENT_MANAGER_TOKEN (or AGENT_MANAGER_TOKEN_FILE); it is shown once',
    );
  }
  return EXIT.ok;
}

export function hostList(values: OptionValues<C['hostList']>, _: string[], cli: CliEnv): Promise<number> {
  const client = connect(values, cli);
  return listCommand(cli, values, 'hosts', (q) => client.listHosts(q, cli.signal), hostTable);
}

export async function hostGet(
  values: OptionValues<C['hostGet']>,
  [ref]: string[],
  cli: CliEnv,
): Promise<number> {
  const client = connect(values, cli);
  const host = await client.getHost(await hostId(client, ref!, cli.signal), cli.signal);
  if (values.json) printJson(cli, host);
  else cli.stdout.write(hostFields(host));
  return EXIT.ok;
}
