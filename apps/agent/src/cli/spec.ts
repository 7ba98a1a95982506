import { DEFAULT_CHUNKER_PARAMS } from '@stowage/chunker';
import { EXIT, EXIT_MEANINGS, type ExitName } from './exit-codes.js';

/**
 * Every command's arguments, options, environment and exit codes, in one table: the argument parser reads
 * its options from here and --help prints them, so the two cannot drift apart.
 */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** The value's placeholder in help (`--repo URL`); string options only. */
  value?: string;
  help: string;
  /** Printed as `[default: …]`. */
  default?: string;
  /** The environment variable used when the option is absent, printed as `[env: …]`. */
  env?: string;
}

export interface CommandSpec {
  /** The words that name the command: `repo key export`. */
  name: string;
  /** One line for the overview. */
  summary: string;
  /** What follows `agent <name> ` in the usage line. */
  synopsis: string;
  args: readonly { name: string; help: string }[];
  options: Readonly<Record<string, OptionSpec>>;
  description: string;
  environment: readonly EnvName[];
  exitCodes: readonly ExitName[];
  examples: readonly string[];
  /** A long command whose --json is the status/summary/error line protocol. */
  streaming?: boolean;
}

const ENVIRONMENT = {
  STOWAGE_REPOSITORY: 'repository URL when --repo is not given',
  STOWAGE_PASSPHRASE: 'the recovery passphrase',
  STOWAGE_PASSPHRASE_FILE:
    'a file holding the recovery passphrase (one line); without either, it is asked for on a terminal',
  AWS_ACCESS_KEY_ID: 'S3 credentials, with AWS_SECRET_ACCESS_KEY and (optionally) AWS_SESSION_TOKEN',
  STOWAGE_THREADS: 'worker threads for hashing, compression and encryption [default: one per core]',
  STOWAGE_RETRY_ATTEMPTS: 'attempts per storage request before giving up [default: 6]',
  STOWAGE_PACKS_PER_INDEX:
    'packs (~8 MiB) one index object names: a re-run after a kill stores again at most this many [default: 64]',
  STOWAGE_DIRECT_IO: '0 reads the volume through the page cache, not with O_DIRECT where it can [default: 1]',
  STOWAGE_DEBUG: 'set to 1 to print the stack trace of an unexpected failure',
} as const;
export type EnvName = keyof typeof ENVIRONMENT;
export const ENVIRONMENT_HELP: Readonly<Record<EnvName, string>> = ENVIRONMENT;

const size = (n: number) => (n % 1024 ** 2 === 0 ? `${n / 1024 ** 2}M` : `${n / 1024}K`);
const D = DEFAULT_CHUNKER_PARAMS;

const repo = {
  type: 'string',
  value: 'URL',
  help: 'the repository: file:///abs/path or s3://bucket/prefix?endpoint=URL&region=R&path_style=true',
  env: 'STOWAGE_REPOSITORY',
} as const satisfies OptionSpec;

const chunker = {
  min: { type: 'string', value: 'SIZE', help: 'smallest chunk', default: size(D.minSize) },
  avg: {
    type: 'string',
    value: 'SIZE',
    help: 'average chunk the cut points aim at',
    default: size(D.avgSize),
  },
  max: { type: 'string', value: 'SIZE', help: 'largest chunk', default: size(D.maxSize) },
  level: {
    type: 'string',
    value: 'N',
    help: 'FastCDC normalization level, 0 to 3 (higher: chunk sizes closer to the average)',
    default: String(D.level),
  },
  seed: {
    type: 'string',
    value: 'N',
    help: 'gear table seed, an unsigned 64-bit integer',
    default: String(D.seed),
  },
} as const satisfies Record<string, OptionSpec>;

const quiet = {
  type: 'boolean',
  short: 'q',
  help: 'no progress: no status lines with --json, no progress bar on a terminal',
} as const satisfies OptionSpec;

const jsonStream = {
  type: 'boolean',
  help: 'JSON lines: status lines while running and a summary line at the end on stdout, error lines on stderr',
} as const satisfies OptionSpec;

const passphraseEnv = ['STOWAGE_PASSPHRASE', 'STOWAGE_PASSPHRASE_FILE', 'AWS_ACCESS_KEY_ID'] as const;
const repositoryEnv = [
  'STOWAGE_REPOSITORY',
  ...passphraseEnv,
  'STOWAGE_THREADS',
  'STOWAGE_RETRY_ATTEMPTS',
  'STOWAGE_DEBUG',
] as const;
const repositoryExits = [
  'ok',
  'failure',
  'usage',
  'repositoryNotFound',
  'wrongPassphrase',
  'storage',
] as const satisfies ExitName[];

export const COMMANDS = {
  repoInit: {
    name: 'repo init',
    summary: 'create a repository',
    synopsis: '--repo URL [--min SIZE --avg SIZE --max SIZE --level N --seed N] [--json]',
    args: [],
    options: {
      repo,
      ...chunker,
      json: { type: 'boolean', help: 'print {"repository_id": …, "location": …} instead of a sentence' },
    },
    description:
      'Creates a repository: a random target key wrapped under the recovery passphrase (asked twice on a ' +
      'terminal) and the config object with the chunker parameters. The parameters are fixed for the life of ' +
      'the repository, since dedup needs every backup cut the same way. Refuses to overwrite an existing ' +
      'repository. Sizes accept 1048576, 256K, 1M, 4MiB.',
    environment: ['STOWAGE_REPOSITORY', ...passphraseEnv, 'STOWAGE_RETRY_ATTEMPTS', 'STOWAGE_DEBUG'],
    exitCodes: ['ok', 'failure', 'usage', 'storage', 'interrupted', 'outputClosed'],
    examples: ['agent repo init --repo file:///srv/backups'],
  },
  repoKeyExport: {
    name: 'repo key export',
    summary: "print the repository's target key (base64), for the manager",
    synopsis: '--repo URL [--json]',
    args: [],
    options: {
      repo,
      json: { type: 'boolean', help: 'print {"repository_id": …, "target_key": …}' },
    },
    description:
      "Prints the repository's 32-byte target key in base64 on stdout: the target_key field of the agent " +
      'API, and what the manager imports.\n\nWARNING: the key gives full access to the repository: whoever holds ' +
      'it (with the storage credentials) can read every backup, and write and delete, without the passphrase; ' +
      'changing the passphrase does not revoke it. Keep it where the passphrase would be kept, and do not ' +
      'leave it in shell history or logs.',
    environment: ['STOWAGE_REPOSITORY', ...passphraseEnv, 'STOWAGE_RETRY_ATTEMPTS', 'STOWAGE_DEBUG'],
    exitCodes: [...repositoryExits, 'interrupted', 'outputClosed'],
    examples: ['agent repo key export --repo file:///srv/backups > target-key.b64'],
  },
  backup: {
    name: 'backup',
    summary: 'back up a volume image or block device',
    synopsis: 'FILE_OR_DEVICE --repo URL --volume NAME [--json] [--quiet]',
    args: [{ name: 'FILE_OR_DEVICE', help: 'a volume image (regular file) or a block device' }],
    options: {
      repo,
      volume: {
        type: 'string',
        value: 'NAME',
        help: "the volume's name (required): backups of one name share a volume id, derived from it",
      },
      json: jsonStream,
      quiet,
    },
    description:
      "Reads the volume, uploads the chunks the repository lacks and commits the backup's manifest, then " +
      'prints the backup id. Holes (all-zero chunks) are recorded, never uploaded. An interrupted backup ' +
      'leaves no manifest; running it again uploads only the chunks still missing.',
    environment: [...repositoryEnv, 'STOWAGE_PACKS_PER_INDEX', 'STOWAGE_DIRECT_IO'],
    exitCodes: [...repositoryExits, 'interrupted', 'outputClosed'],
    examples: [
      'agent backup /dev/vg0/web-1 --repo file:///srv/backups --volume web-1',
      "agent backup web-1.img --repo 's3://bucket/prefix?region=us-east-1' --volume web-1 --json",
    ],
    streaming: true,
  },
  ls: {
    name: 'ls',
    summary: 'list the backups',
    synopsis: '--repo URL [--json]',
    args: [],
    options: {
      repo,
      json: { type: 'boolean', help: 'print one JSON array of the backups' },
    },
    description:
      'Lists committed backups, oldest first: id, creation time, size, volume name. Control characters in ' +
      'names are printed escaped (\\n, \\x1b). A manifest that cannot be read does not stop the listing: ' +
      'every readable backup is listed, each unreadable manifest gets a line on stderr, and the exit code ' +
      'is 5.',
    environment: repositoryEnv,
    exitCodes: [...repositoryExits, 'integrity', 'interrupted', 'outputClosed'],
    examples: ['agent ls --repo file:///srv/backups'],
  },
  restore: {
    name: 'restore',
    summary: 'restore a backup to a file or block device',
    synopsis: 'BACKUP_ID --repo URL --to FILE_OR_DEVICE [--overwrite] [--json] [--quiet]',
    args: [{ name: 'BACKUP_ID', help: 'the backup, or a unique prefix of its id (at least 4 hex digits)' }],
    options: {
      repo,
      to: {
        type: 'string',
        value: 'FILE_OR_DEVICE',
        help: 'where to write the volume (required): a new or empty file, or a block device not in use',
      },
      overwrite: {
        type: 'boolean',
        help: 'replace an existing non-empty file (kept until the new one is whole)',
      },
      json: jsonStream,
      quiet,
    },
    description:
      'Writes a backup to the target. Every chunk is authenticated and re-hashed before it is written; holes ' +
      'stay sparse in files and are zero-filled on devices. A file is restored beside the target and renamed ' +
      'into place only on success, so a failed or cancelled restore leaves no partial image.',
    environment: repositoryEnv,
    exitCodes: [...repositoryExits, 'integrity', 'notFound', 'interrupted', 'outputClosed'],
    examples: ['agent restore 3f2a --repo file:///srv/backups --to /var/lib/images/web-1.img'],
    streaming: true,
  },
  verify: {
    name: 'verify',
    summary: "download and check one backup's chunks",
    synopsis: 'BACKUP_ID --repo URL [--sample PERCENT] [--json] [--quiet]',
    args: [{ name: 'BACKUP_ID', help: 'the backup, or a unique prefix of its id (at least 4 hex digits)' }],
    options: {
      repo,
      sample: {
        type: 'string',
        value: 'PERCENT',
        help: "check a random PERCENT of the backup's distinct chunks, in (0, 100]",
        default: '100',
      },
      json: jsonStream,
      quiet,
    },
    description:
      "Downloads the backup's chunks (or a random sample, like restic check --read-data-subset), " +
      'authenticates, decompresses and re-hashes each, and names every damaged or missing object, one line ' +
      'each on stderr.',
    environment: repositoryEnv,
    exitCodes: [...repositoryExits, 'integrity', 'notFound', 'interrupted', 'outputClosed'],
    examples: ['agent verify 3f2a --repo file:///srv/backups --sample 10'],
    streaming: true,
  },
  check: {
    name: 'check',
    summary: 'check the whole repository: every manifest, and that their chunks exist',
    synopsis: '--repo URL [--read-data | --read-data-subset PERCENT] [--json] [--quiet]',
    args: [],
    options: {
      repo,
      'read-data': { type: 'boolean', help: 'also download and authenticate every chunk' },
      'read-data-subset': {
        type: 'string',
        value: 'PERCENT',
        help: 'download and authenticate a random PERCENT of the chunks, in (0, 100]',
      },
      json: jsonStream,
      quiet,
    },
    description:
      'Reads every manifest and checks that every chunk they name exists; with --read-data (or a subset) it ' +
      'also downloads and authenticates the chunks. Each problem is one line on stderr naming the object and ' +
      'the backups that name it; the exit code is 5 when anything is missing, corrupt or undecodable. What ' +
      'it finds is written into the damage records, so the next backup of a damaged volume stores those chunks ' +
      'again.',
    environment: repositoryEnv,
    exitCodes: [...repositoryExits, 'integrity', 'interrupted', 'outputClosed'],
    examples: [
      'agent check --repo file:///srv/backups',
      'agent check --repo file:///srv/backups --read-data-subset 5%',
    ],
    streaming: true,
  },
  chunks: {
    name: 'chunks',
    summary: 'print the chunker cut points of a file (tuning, reference checks)',
    synopsis: 'FILE [--min SIZE --avg SIZE --max SIZE --level N --seed N] [--json]',
    args: [{ name: 'FILE', help: 'any file or block device' }],
    options: {
      ...chunker,
      json: { type: 'boolean', help: 'print one JSON array of {"offset", "length"}' },
    },
    description:
      'Prints the FastCDC cut points of a file, one "offset<TAB>length" line per chunk: for tuning chunk ' +
      'sizes, and as the reference check of the chunker against the fastcdc crate. Needs no repository.',
    environment: [],
    exitCodes: ['ok', 'failure', 'usage', 'outputClosed'],
    examples: ['agent chunks web-1.img --avg 256K | wc -l'],
  },
  serve: {
    name: 'serve',
    summary: 'run the agent service for the manager',
    synopsis: '[--config FILE]',
    args: [],
    options: {
      config: {
        type: 'string',
        value: 'FILE',
        help: 'the JSON config file; its settings are listed above',
        env: 'AGENT_CONFIG',
      },
    },
    description: '',
    environment: [],
    exitCodes: ['ok', 'failure', 'usage', 'interrupted'],
    examples: [],
  },
} as const satisfies Record<string, CommandSpec>;

export type CommandKey = keyof typeof COMMANDS;

/** Groups of commands: `agent repo --help` lists theirs. */
export const GROUPS = ['repo', 'repo key'] as const;

const WIDTH = 80;

/** Words wrapped to `width`, every line but the first indented by `indent` spaces. */
function wrap(text: string, indent: number, first = indent): string {
  const lines: string[] = [];
  let line = '';
  // A bracketed note ([default: 1M], [env: STOWAGE_REPOSITORY]) is kept whole on one line.
  for (const word of text.match(/\[[^\]]*\]|\S+/g) ?? []) {
    const room = WIDTH - (lines.length === 0 ? first : indent);
    if (line && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

function table(rows: [string, string][]): string {
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

/** The options of a command, each with its default and environment variable, and -h. */
export function optionsSection(spec: CommandSpec): string {
  const options: [string, string][] = Object.entries(spec.options).map(([name, o]: [string, OptionSpec]) => [
    optionLabel(name, o),
    [o.help, o.default === undefined ? '' : `[default: ${o.default}]`, o.env ? `[env: ${o.env}]` : '']
      .filter(Boolean)
      .join(' '),
  ]);
  options.push(['-h, --help', 'print this help']);
  return `Options:\n${table(options)}`;
}

/** `agent <command> --help`. */
export function commandHelp(spec: CommandSpec): string {
  const parts = [`Usage: agent ${spec.name} ${spec.synopsis}`];
  if (spec.description) parts.push(...spec.description.split('\n\n').map((p) => wrap(p, 0)));
  if (spec.args.length > 0) parts.push(`Arguments:\n${table(spec.args.map((a) => [a.name, a.help]))}`);
  parts.push(optionsSection(spec));
  if (spec.environment.length > 0) {
    parts.push(`Environment:\n${table(spec.environment.map((name) => [name, ENVIRONMENT[name]]))}`);
  }
  parts.push(`Exit codes:\n${exitCodeTable(spec.exitCodes)}`);
  if (spec.examples.length > 0) parts.push(`Examples:\n${spec.examples.map((e) => `  ${e}`).join('\n')}`);
  return `${parts.join('\n\n')}\n`;
}

/** `agent repo --help`, `agent repo key --help`: the commands of a group. */
export function groupHelp(group: string): string {
  const members = Object.values(COMMANDS).filter((c) => c.name.startsWith(`${group} `));
  return (
    `Usage: agent ${group} <command> [options]\n\nCommands:\n` +
    `${table(members.map((c) => [`agent ${c.name}`, c.summary]))}\n\n` +
    `"agent <command> --help" describes each.\n`
  );
}

/** `agent --help`. */
export function overviewHelp(): string {
  const all = Object.values(COMMANDS) as CommandSpec[];
  const allExits = Object.keys(EXIT) as ExitName[];
  return [
    'Usage: agent <command> [options]',
    wrap(
      'Backs up block volumes to a repository (a directory or an S3 bucket), chunked, deduplicated and ' +
        'encrypted; restores and verifies them. Works with the repository and the recovery passphrase alone.',
      0,
    ),
    `Commands:\n${table(all.map((c) => [`agent ${c.name}`, c.summary]))}`,
    `Options:\n${table([
      ['-h, --help', 'print help (also "agent help <command>", "agent <command> --help")'],
      ['-V, --version', 'print the version'],
    ])}`,
    `Environment:\n${table(Object.entries(ENVIRONMENT))}`,
    `Exit codes:\n${exitCodeTable(allExits)}`,
    'Docs: docs/agent-cli.md (the commands), docs/agent.md (agent serve).\n',
  ].join('\n\n');
}
