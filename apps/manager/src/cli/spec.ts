import { EXIT, EXIT_MEANINGS, type ExitName } from './exit-codes.js';

/**
 * The shape of the command table (command-specs.ts) and its help: the parser reads a command's options from
 * its spec and --help prints the same spec, so the two cannot drift apart.
 */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** The value's placeholder in help (`--url URL`); string options only. */
  value?: string;
  help: string;
  /** Printed as `[default: …]`. */
  default?: string;
  /** The environment variable used when the option is absent, printed as `[env: …]`. */
  env?: string;
}

export interface ArgSpec {
  name: string;
  help: string;
  optional?: boolean;
}

export interface CommandSpec {
  /** The words that name the command: `backup now`. */
  name: string;
  summary: string;
  /** What follows `manager <name> ` in the usage line. */
  synopsis: string;
  args: readonly ArgSpec[];
  options: Readonly<Record<string, OptionSpec>>;
  description: string;
  environment: readonly EnvName[];
  exitCodes: readonly ExitName[];
  examples: readonly string[];
}

const ENVIRONMENT = {
  MANAGER_URL: 'the manager client commands talk to [default: http://127.0.0.1:$PORT, the embedded one]',
  MANAGER_TOKEN: 'the bearer token of client commands',
  MANAGER_TOKEN_FILE: 'a file holding it [default: $STOWAGE_HOME/admin-token, sent to a loopback URL only]',
  STOWAGE_HOME: 'the embedded data dir [default: ./.stowage]',
  PORT: "the API's port [default: 8080]",
  HOST: "the API's address (serve, start) [default: 127.0.0.1]",
  DATABASE_URL: 'postgres://… for real PostgreSQL; unset: embedded PGlite in $STOWAGE_HOME/db',
  MANAGER_MASTER_KEY_FILE: 'the master key sealing secrets [default: $STOWAGE_HOME/master.key]',
  MANAGER_PUBLIC_URL:
    'the URL agents and browsers reach this manager at, when not the listening address (https: Secure cookies)',
  MANAGER_SESSION_HOURS: 'how long a console sign-in lasts [default: 12]',
  MANAGER_CONSOLE_DIR: "the console's static files, served at / [default: apps/console/out]",
  LOG_LEVEL: 'debug, info, warn or error [default: info]',
  AWS_ACCESS_KEY_ID: 'target create, import: the S3 access key id when --access-key-id is absent',
  AWS_SECRET_ACCESS_KEY: 'target create, import: the S3 secret when --secret-access-key-file is absent',
  AWS_SESSION_TOKEN: 'target create, import: an S3 session token (optional)',
  AGENT_TOKEN: 'host add: the agent’s token when --agent-token-file is absent',
  STOWAGE_DEBUG: 'set to 1 to print the stack trace of a failure',
} as const;
export type EnvName = keyof typeof ENVIRONMENT;
export const ENVIRONMENT_HELP: Readonly<Record<EnvName, string>> = ENVIRONMENT;

const WIDTH = 100;

function wrap(text: string, indent: number, first = indent): string {
  const room = WIDTH - indent;
  const lines: string[] = [];
  let line = '';
  let limit = WIDTH - first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > limit) {
      lines.push(line);
      line = word;
      limit = room;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

function table(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows
    .map(([left, right]) => `  ${left.padEnd(width)}  ${wrap(right, width + 4, width + 4)}`)
    .join('\n');
}

function optionLabel(name: string, o: OptionSpec): string {
  const flag = o.short ? `-${o.short}, --${name}` : `--${name}`;
  return o.value ? `${flag} ${o.value}` : flag;
}

export function exitCodeTable(codes: readonly ExitName[]): string {
  return table(codes.map((name) => [String(EXIT[name]).padEnd(3), EXIT_MEANINGS[name]]));
}

/** `manager <command> --help`. */
export function commandHelp(spec: CommandSpec): string {
  const parts = [`Usage: manager ${spec.name}${spec.synopsis ? ` ${spec.synopsis}` : ''}`];
  if (spec.description) parts.push(...spec.description.split('\n\n').map((p) => wrap(p, 0)));
  if (spec.args.length > 0) parts.push(`Arguments:\n${table(spec.args.map((a) => [a.name, a.help]))}`);
  const options: [string, string][] = Object.entries(spec.options).map(([name, o]) => [
    optionLabel(name, o),
    [o.help, o.default === undefined ? '' : `[default: ${o.default}]`, o.env ? `[env: ${o.env}]` : '']
      .filter(Boolean)
      .join(' '),
  ]);
  options.push(['-h, --help', 'print this help']);
  parts.push(`Options:\n${table(options)}`);
  if (spec.environment.length > 0) {
    parts.push(`Environment:\n${table(spec.environment.map((name) => [name, ENVIRONMENT[name]]))}`);
  }
  parts.push(`Exit codes:\n${exitCodeTable(spec.exitCodes)}`);
  if (spec.examples.length > 0) parts.push(`Examples:\n${spec.examples.map((e) => `  ${e}`).join('\n')}`);
  return `${parts.join('\n\n')}\n`;
}

/** `manager volume --help`: the commands of a group. */
export function groupHelp(group: string, commands: readonly CommandSpec[]): string {
  const members = commands.filter((c) => c.name.startsWith(`${group} `));
  return (
    `Usage: manager ${group} <command> [options]\n\nCommands:\n` +
    `${table(members.map((c) => [`manager ${c.name}`, c.summary]))}\n\n` +
    `"manager ${group} <command> --help" describes each.\n`
  );
}

/** `manager --help`. */
export function overviewHelp(commands: readonly CommandSpec[]): string {
  return [
    'Usage: manager <command> [options]',
    wrap(
      "Stowage's control plane: serves the REST API over its inventory (serve, or start for everything " +
        'embedded), and drives a manager from the command line: tokens, hosts, backup targets, volumes, ' +
        'backups, jobs and disaster recovery.',
      0,
    ),
    `Commands:\n${table(commands.map((c) => [`manager ${c.name}`, c.summary]))}`,
    `Options:\n${table([
      ['-h, --help', 'print help (also "manager help <command>", "manager <command> --help")'],
      ['-V, --version', 'print the version'],
    ])}`,
    `Environment:\n${table(Object.entries(ENVIRONMENT))}`,
    `Exit codes:\n${exitCodeTable(Object.keys(EXIT) as ExitName[])}`,
    'Docs: docs/manager-cli.md (the commands), docs/manager.md (the service and its API).\n',
  ].join('\n\n');
}
