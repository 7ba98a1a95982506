import { ALERT_COMMANDS } from './alert-command-specs.js';
import { DATA_COMMANDS } from './data-command-specs.js';
import type { CommandSpec, OptionSpec } from './spec.js';
import { base, byId, client, clientEnv, getCommand, idArg, list, serverEnv } from './spec-fragments.js';
import { USER_COMMANDS } from './user-command-specs.js';

/** Where a repository lives: `target create` and `target import`. */
const location = {
  path: {
    type: 'string',
    value: 'DIR',
    help: 'a filesystem target: this directory (on the manager and every agent)',
  },
  's3-bucket': { type: 'string', value: 'BUCKET', help: 'an S3 target: this bucket' },
  's3-endpoint': { type: 'string', value: 'URL', help: 'the S3-compatible service', default: 'AWS S3' },
  's3-region': { type: 'string', value: 'REGION', help: 'the region', default: 'us-east-1' },
  's3-prefix': { type: 'string', value: 'PREFIX', help: 'a key prefix in the bucket' },
  'path-style': { type: 'boolean', help: 'path-style requests (MinIO, Ceph RGW)' },
  'access-key-id': {
    type: 'string',
    value: 'ID',
    help: 'the S3 access key id',
    env: 'AWS_ACCESS_KEY_ID',
  },
  'secret-access-key-file': {
    type: 'string',
    value: 'FILE',
    help: 'a file holding the S3 secret key (never on the command line, where ps shows it)',
    env: 'AWS_SECRET_ACCESS_KEY',
  },
} as const satisfies Record<string, OptionSpec>;

/**
 * Every command of `manager`, once: the parser, --help and docs/manager-cli.md follow this table. The
 * volume, backup and job commands are in data-command-specs.ts.
 */
export const COMMANDS = {
  serve: {
    name: 'serve',
    summary: 'run the manager (the API over its database) until SIGTERM or SIGINT',
    synopsis: '[--json]',
    args: [],
    options: { json: { type: 'boolean', help: 'announce the URL as {"url": …} on stdout' } },
    description:
      'Reads its settings from the environment (below), migrates the database under its advisory lock and ' +
      'serves the API; logs are JSON lines on stderr. The first SIGTERM or SIGINT stops it cleanly; a second ' +
      'one exits at once with 130.',
    environment: serverEnv,
    exitCodes: ['ok', 'failure', 'usage', 'interrupted'],
    examples: [
      'DATABASE_URL=postgres://stowage@db/stowage MANAGER_MASTER_KEY_FILE=/etc/stowage/master.key manager serve',
    ],
  },
  start: {
    name: 'start',
    summary: 'run everything embedded: manager, a local agent, a filesystem target, a demo volume',
    synopsis: '[--json]',
    args: [],
    options: { json: { type: 'boolean', help: 'print what is ready as one JSON object' } },
    description:
      'What "npm start" runs. Under $STOWAGE_HOME: the manager on PGlite, one local "agent serve" it ' +
      'supervises, the filesystem target "local" and the volume "demo" holding real data. Prints the URL, where ' +
      'the admin token is, and (on the start that created the target) the recovery passphrase. Restarting ' +
      'keeps everything.',
    environment: ['STOWAGE_HOME', 'PORT', 'HOST', 'LOG_LEVEL', 'STOWAGE_DEBUG'],
    exitCodes: ['ok', 'failure', 'usage', 'interrupted'],
    examples: ['npx manager start', 'STOWAGE_HOME=/tmp/stowage PORT=9090 npx manager start'],
  },
  migrate: {
    name: 'migrate',
    summary: 'apply the database migrations without serving',
    synopsis: '[--json]',
    args: [],
    options: { json: { type: 'boolean', help: 'print {"applied": […], "already_applied": n}' } },
    description:
      'Applies the migrations not yet recorded, under the same advisory lock as serve. With embedded PGlite, ' +
      'stop the manager first: one PGlite database takes one process.',
    environment: ['STOWAGE_HOME', 'DATABASE_URL', 'STOWAGE_DEBUG'],
    exitCodes: ['ok', 'failure', 'usage'],
    examples: ['DATABASE_URL=postgres://stowage@db/stowage manager migrate'],
  },

  tokenCreate: {
    name: 'token create',
    summary: 'create an API token (printed once)',
    synopsis: 'NAME [--role admin|operator|viewer] [--json]',
    args: [{ name: 'NAME', help: 'a label for the token' }],
    options: {
      ...client,
      role: { type: 'string', value: 'ROLE', help: 'admin, operator or viewer', default: 'admin' },
    },
    description:
      'Prints the bearer token alone on stdout (so "manager token create ci > ci.token" keeps it); it cannot be ' +
      'shown again. The note about it goes to stderr.',
    environment: clientEnv,
    exitCodes: base,
    examples: ['npx manager token create ci > ci.token'],
  },
  tokenList: {
    name: 'token list',
    summary: 'list API tokens',
    synopsis: '[--limit N | --all] [--json]',
    args: [],
    options: { ...client, ...list },
    description: '',
    environment: clientEnv,
    exitCodes: base,
    examples: [],
  },
  tokenRevoke: {
    name: 'token revoke',
    summary: 'revoke an API token',
    synopsis: 'ID [--json]',
    args: idArg('token'),
    options: client,
    description: '',
    environment: clientEnv,
    exitCodes: byId,
    examples: [],
  },

  hostAdd: {
    name: 'host add',
    summary: 'register an agent (checked by calling it)',
    synopsis: 'NAME --agent-url URL [--agent-token-file FILE] [--json]',
    args: [{ name: 'NAME', help: "the host's name" }],
    options: {
      ...client,
      'agent-url': { type: 'string', value: 'URL', help: 'where the agent listens (required)' },
      'agent-token-file': {
        type: 'string',
        value: 'FILE',
        help: "a file holding the agent's own token (its AGENT_TOKEN)",
        env: 'AGENT_TOKEN',
      },
    },
    description:
      'Prints the host, and the token the agent must send with its job events (its AGENT_MANAGER_TOKEN): ' +
      'shown once.',
    environment: [...clientEnv, 'AGENT_TOKEN'],
    exitCodes: [...base, 'conflict'],
    examples: ['npx manager host add web-1 --agent-url http://10.0.0.5:7070 --agent-token-file agent.token'],
  },
  hostList: {
    name: 'host list',
    summary: 'list hosts',
    synopsis: '[--limit N | --all] [--json]',
    args: [],
    options: { ...client, ...list },
    description: '',
    environment: clientEnv,
    exitCodes: base,
    examples: [],
  },
  hostGet: getCommand('host', 'host', true),

  targetCreate: {
    name: 'target create',
    summary: 'create a backup target and its repository',
    synopsis:
      'NAME (--path DIR | --s3-bucket B [--s3-endpoint URL --s3-region R --s3-prefix P --path-style] ' +
      '[--access-key-id ID] [--secret-access-key-file FILE]) [--passphrase-file FILE] [--avg-chunk-size SIZE] ' +
      '[--gc-hour H] [--timezone ZONE] [--json]',
    args: [{ name: 'NAME', help: "the target's name" }],
    options: {
      ...client,
      ...location,
      'passphrase-file': {
        type: 'string',
        value: 'FILE',
        help: 'a file holding the recovery passphrase; absent: the manager generates one and prints it once',
      },
      'avg-chunk-size': {
        type: 'string',
        value: 'SIZE',
        help: 'the average chunk: 512K, 1M, 2M or 4M',
        default: '512K',
      },
      'gc-hour': { type: 'string', value: 'H', help: 'the hour (0–23) garbage collection runs at' },
      timezone: { type: 'string', value: 'ZONE', help: 'the IANA zone of --gc-hour, e.g. Europe/Paris' },
    },
    description:
      'Writes the repository (key file, then config) into the bucket or directory and records the target; ' +
      'a location that already holds a repository is refused. Without --passphrase-file the generated recovery ' +
      'passphrase is printed once: without it the backups cannot be read once the manager is gone.',
    environment: [...clientEnv, 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'],
    exitCodes: [...base, 'conflict'],
    examples: [
      'npx manager target create nas --path /srv/stowage',
      'AWS_SECRET_ACCESS_KEY=… npx manager target create s3 --s3-bucket backups --s3-endpoint http://minio:9000 --path-style --access-key-id stowage',
    ],
  },
  targetList: {
    name: 'target list',
    summary: 'list backup targets',
    synopsis: '[--limit N | --all] [--json]',
    args: [],
    options: { ...client, ...list },
    description: '',
    environment: clientEnv,
    exitCodes: base,
    examples: [],
  },
  targetGet: getCommand('target', 'target', true),
  targetTest: {
    name: 'target test',
    summary: 'write, read, list and delete a probe object; say why it fails',
    synopsis: 'ID [--json]',
    args: idArg('target', true),
    options: client,
    description: 'Exits 1 when a step failed, naming the cause (unreachable, tls, bad_credentials, …).',
    environment: clientEnv,
    exitCodes: byId,
    examples: [],
  },
  targetDelete: {
    name: 'target delete',
    summary: 'delete a backup target (refused while volumes or backups use it)',
    synopsis: 'ID [--json]',
    args: idArg('target', true),
    options: client,
    description: 'Forgets the target; the repository in the bucket is left as it is.',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: [],
  },

  targetImport: {
    name: 'target import',
    summary: 'take in a repository already in a bucket or directory (disaster recovery)',
    synopsis:
      'NAME (--path DIR | --s3-bucket B [--s3-endpoint URL --s3-region R --s3-prefix P --path-style] ' +
      '[--access-key-id ID] [--secret-access-key-file FILE]) --passphrase-file FILE [--gc-hour H] ' +
      '[--timezone ZONE] [--json]',
    args: [{ name: 'NAME', help: "the target's name in this manager" }],
    options: {
      ...client,
      ...location,
      'passphrase-file': {
        type: 'string',
        value: 'FILE',
        help: "a file holding the repository's recovery passphrase (required)",
      },
      'gc-hour': { type: 'string', value: 'H', help: 'the hour (0–23) garbage collection runs at' },
      timezone: { type: 'string', value: 'ZONE', help: 'the IANA zone of --gc-hour, e.g. Europe/Paris' },
    },
    description:
      'Re-creates a target from the bucket alone, as after losing the database: the recovery passphrase opens ' +
      "one of the repository's key files, the key is checked against its config and kept (sealed) by the " +
      "manager; the repository's id and chunk sizes come from its config. Nothing is written to the bucket. " +
      'A wrong passphrase stores nothing and exits 1; a location without a repository exits 3; a repository ' +
      'this manager already has exits 4. Then rebuild the backup index: "manager backup index-rebuild ' +
      '--target NAME".',
    environment: [...clientEnv, 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'],
    exitCodes: [...byId, 'conflict'],
    examples: [
      'npx manager target import nas --path /srv/stowage --passphrase-file ./passphrase',
      'AWS_SECRET_ACCESS_KEY=… npx manager target import offsite --s3-bucket backups --s3-endpoint http://minio:9000 --path-style --access-key-id stowage --passphrase-file ./passphrase',
    ],
  },
  targetGc: {
    name: 'target gc',
    summary: "collect a target's garbage now (or plan it with --dry-run)",
    synopsis: 'TARGET [--dry-run] [--json]',
    args: idArg('target', true),
    options: {
      ...client,
      'dry-run': { type: 'boolean', help: 'plan only: count what a sweep would delete, delete nothing' },
    },
    description:
      'Starts a garbage collection of the target and prints the run (it goes on in the manager; "manager ' +
      'target gc-runs" shows how it ends). One run per target at a time: another one running exits 4.',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: ['npx manager target gc local --dry-run', 'npx manager target gc-runs local'],
  },
  targetGcRuns: {
    name: 'target gc-runs',
    summary: "list a target's garbage collections, newest first",
    synopsis: 'TARGET [--limit N | --all] [--json]',
    args: idArg('target', true),
    options: { ...client, ...list },
    description: '',
    environment: clientEnv,
    exitCodes: byId,
    examples: [],
  },

  ...DATA_COMMANDS,
  ...USER_COMMANDS,
  ...ALERT_COMMANDS,
} as const satisfies Record<string, CommandSpec>;

export type CommandKey = keyof typeof COMMANDS;
export const ALL_COMMANDS: readonly CommandSpec[] = Object.values(COMMANDS);

/** Groups: `manager volume --help` lists theirs. */
export const GROUPS = [
  'user',
  'audit',
  'token',
  'host',
  'target',
  'volume',
  'backup',
  'job',
  'alert',
  'webhook',
] as const;
