import {
  BACKEND_KINDS,
  BACKUP_STATES,
  INDEX_REBUILD_DEFAULT_LIMIT,
  INDEX_REBUILD_MAX_LIMIT,
  JOB_KINDS,
  JOB_STATES,
  VERIFY_STATES,
  VOLUME_STATES,
} from '@stowage/api';
import type { CommandSpec } from './spec.js';
import { byId, client, clientEnv, getCommand, idArg, list, watch, watching } from './spec-fragments.js';

/** The commands on the inventory's data: volumes, backups and jobs. */
export const DATA_COMMANDS = {
  volumeCreate: {
    name: 'volume create',
    summary: "create a volume through its host's agent",
    synopsis: 'NAME --host HOST --size SIZE [--backend KIND] [--target TARGET] [--json]',
    args: [{ name: 'NAME', help: "the volume's name" }],
    options: {
      ...client,
      host: { type: 'string', value: 'HOST', help: 'the host, by id or name (required)' },
      backend: { type: 'string', value: 'KIND', help: BACKEND_KINDS.join(', '), default: 'local-file' },
      size: { type: 'string', value: 'SIZE', help: 'the size, e.g. 10G (required)' },
      target: { type: 'string', value: 'TARGET', help: '"backup now" writes here: a target id or name' },
    },
    description: '',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: ['npx manager volume create web-data --host local --size 10G --target local'],
  },
  volumeAdopt: {
    name: 'volume adopt',
    summary: 'take a volume already on a host into the inventory',
    synopsis: '--host HOST --locator PATH [--backend KIND] [--name NAME] [--target TARGET] [--json]',
    args: [],
    options: {
      ...client,
      host: { type: 'string', value: 'HOST', help: 'the host, by id or name (required)' },
      backend: { type: 'string', value: 'KIND', help: BACKEND_KINDS.join(', '), default: 'local-file' },
      locator: { type: 'string', value: 'PATH', help: 'the volume on the host, an absolute path (required)' },
      name: { type: 'string', value: 'NAME', help: "the volume's name [default: the agent's]" },
      target: { type: 'string', value: 'TARGET', help: '"backup now" writes here: a target id or name' },
    },
    description: '',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: ['npx manager volume adopt --host web-1 --locator /var/lib/images/db.img --target nas'],
  },
  volumeList: {
    name: 'volume list',
    summary: 'list volumes',
    synopsis: '[--host HOST] [--target TARGET] [--state STATE] [--name TEXT] [--limit N | --all] [--json]',
    args: [],
    options: {
      ...client,
      ...list,
      host: { type: 'string', value: 'HOST', help: 'only those of this host (id or name)' },
      name: { type: 'string', value: 'TEXT', help: 'only those whose name contains TEXT (any case)' },
      target: { type: 'string', value: 'TARGET', help: 'only those backed up to this target (id or name)' },
      state: { type: 'string', value: 'STATE', help: VOLUME_STATES.join(', ') },
    },
    description: '',
    environment: clientEnv,
    exitCodes: byId,
    examples: ['npx manager volume list --host local'],
  },
  volumeGet: getCommand('volume', 'volume'),
  volumeSchedule: {
    name: 'volume schedule',
    summary: "set a volume's backup schedule and retention, and show the next fire times",
    synopsis:
      'ID [--cron EXPR | --no-cron] [--timezone ZONE] [--enable | --disable] [--keep-last N] [--keep-hourly N] ' +
      '[--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-yearly N] [--keep-within DURATION] ' +
      '[--no-retention] [--json]',
    args: idArg('volume'),
    options: {
      ...client,
      cron: { type: 'string', value: 'EXPR', help: 'a cron expression (5 fields, or @daily and the like)' },
      'no-cron': { type: 'boolean', help: 'no schedule: the volume is backed up only when asked' },
      timezone: { type: 'string', value: 'ZONE', help: 'the IANA zone the expression is read in' },
      enable: { type: 'boolean', help: 'switch the schedule on' },
      disable: { type: 'boolean', help: 'switch it off, keeping the expression' },
      'keep-last': { type: 'string', value: 'N', help: 'keep the N newest backups' },
      'keep-hourly': { type: 'string', value: 'N', help: 'the newest of each of the last N hours' },
      'keep-daily': { type: 'string', value: 'N', help: '… of the last N days' },
      'keep-weekly': { type: 'string', value: 'N', help: '… of the last N weeks' },
      'keep-monthly': { type: 'string', value: 'N', help: '… of the last N months' },
      'keep-yearly': { type: 'string', value: 'N', help: '… of the last N years' },
      'keep-within': {
        type: 'string',
        value: 'DURATION',
        help: 'every backup within 30d, 1y6m, 2d12h… of the newest',
      },
      'no-retention': { type: 'boolean', help: 'keep every backup (no retention policy)' },
    },
    description:
      "Changes only what is given; the --keep options together replace the whole retention policy (restic's " +
      'forget rules). Prints the volume\'s schedule and its next five fire times. "manager backup list ' +
      '--volume ID" shows what is kept; the console previews what a policy would keep or prune.',
    environment: clientEnv,
    exitCodes: byId,
    examples: [
      "npx manager volume schedule VOLUME_ID --cron '0 2 * * *' --timezone Europe/Paris --keep-daily 7 --keep-weekly 4",
      'npx manager volume schedule VOLUME_ID --disable',
    ],
  },
  volumeDelete: {
    name: 'volume delete',
    summary: 'delete a volume (refused while a job uses it)',
    synopsis: 'ID [--json]',
    args: idArg('volume'),
    options: client,
    description: '',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: [],
  },

  backupNow: {
    name: 'backup now',
    summary: 'back a volume up now',
    synopsis: 'VOLUME_ID [--target TARGET] [--snapshot on|copy|off] [--watch] [--json]',
    args: [{ name: 'VOLUME_ID', help: "the volume's id" }],
    options: {
      ...client,
      target: { type: 'string', value: 'TARGET', help: "the target (id or name) [default: the volume's]" },
      snapshot: {
        type: 'string',
        value: 'MODE',
        help: 'on (a snapshot by the backend), copy (a full copy first) or off (a live read)',
        default: 'on',
      },
      watch,
    },
    description:
      'Starts the job and prints its id and the backup id; with --watch, follows it to the end. While a ' +
      'backup of the volume runs, a second one is refused (exit 4) naming the running job.',
    environment: clientEnv,
    exitCodes: watching,
    examples: ['npx manager backup now 2b0c…  --watch'],
  },
  backupList: {
    name: 'backup list',
    summary: 'list backups',
    synopsis:
      '[--volume ID] [--target TARGET] [--state STATE] [--verify-state STATE] [--limit N | --all] [--json]',
    args: [],
    options: {
      ...client,
      ...list,
      volume: { type: 'string', value: 'ID', help: 'only those of this volume' },
      target: { type: 'string', value: 'TARGET', help: 'only those in this target (id or name)' },
      state: { type: 'string', value: 'STATE', help: BACKUP_STATES.join(', ') },
      'verify-state': {
        type: 'string',
        value: 'STATE',
        help: `${VERIFY_STATES.join(', ')}: what verification found (damaged: will not restore whole)`,
      },
    },
    description: '',
    environment: clientEnv,
    exitCodes: byId,
    examples: [],
  },
  backupGet: getCommand('backup', 'backup'),
  backupDelete: {
    name: 'backup delete',
    summary: 'delete a backup: its manifest, then its record',
    synopsis: 'ID [--json]',
    args: idArg('backup'),
    options: client,
    description: 'Refused while the backup runs (cancel its job first).',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: [],
  },
  backupRestore: {
    name: 'backup restore',
    summary: 'restore a backup onto a new volume',
    synopsis: 'BACKUP_ID [--host HOST] [--name NAME] [--backend KIND] [--watch] [--json]',
    args: [{ name: 'BACKUP_ID', help: "the backup's id" }],
    options: {
      ...client,
      host: {
        type: 'string',
        value: 'HOST',
        help: "the new volume's host (id or name) [default: the backed-up volume's]",
      },
      name: {
        type: 'string',
        value: 'NAME',
        help: "the new volume's name [default: derived from the source's]",
      },
      backend: { type: 'string', value: 'KIND', help: `${BACKEND_KINDS.join(', ')} [default: the source's]` },
      watch,
    },
    description: "Prints the new volume's id and the job's; with --watch, follows the job to the end.",
    environment: clientEnv,
    exitCodes: watching,
    examples: ['npx manager backup restore 7f3e… --name web-data-copy --watch'],
  },
  backupVerify: {
    name: 'backup verify',
    summary: 'verify a backup on an agent: re-read and authenticate its chunks',
    synopsis: 'BACKUP_ID [--sample PERCENT] [--host HOST] [--watch] [--json]',
    args: [{ name: 'BACKUP_ID', help: "the backup's id" }],
    options: {
      ...client,
      sample: {
        type: 'string',
        value: 'PERCENT',
        help: 'read this share of the chunks, in (0, 100] [default: 100, all]',
      },
      host: {
        type: 'string',
        value: 'HOST',
        help: "the agent that reads it (id or name) [default: the backup's volume's host]",
      },
      watch,
    },
    description:
      'Starts a verify job and prints its id; with --watch, follows it and prints what it found: exit 0 when ' +
      'the backup is whole, 1 when it is damaged (every backup sharing a damaged chunk is marked too). One ' +
      'verify of a backup at a time (exit 4 names the running one).',
    environment: clientEnv,
    exitCodes: [...watching, 'failure'],
    examples: ['npx manager backup verify 7f3e… --sample 10 --watch'],
  },

  backupIndexRebuild: {
    name: 'backup index-rebuild',
    summary: "record every backup in a target's bucket that the database lacks (disaster recovery)",
    synopsis: '--target TARGET [--batch N] [--start-after KEY] [--volume-backend KIND] [--json]',
    args: [],
    options: {
      ...client,
      target: { type: 'string', value: 'TARGET', help: 'the target, by id or name (required)' },
      batch: {
        type: 'string',
        value: 'N',
        help: `manifests per request (1–${INDEX_REBUILD_MAX_LIMIT})`,
        default: String(INDEX_REBUILD_DEFAULT_LIMIT),
      },
      'start-after': {
        type: 'string',
        value: 'KEY',
        help: 'resume after this manifest key (what an interrupted run printed)',
      },
      'volume-backend': {
        type: 'string',
        value: 'KIND',
        help: `the backend of volume rows it creates: ${BACKEND_KINDS.join(', ')}`,
        default: 'local-file',
      },
    },
    description:
      "Reads every manifest in the target's bucket, batch after batch, and records each backup the database " +
      'does not have (completed, its size and chunk count from the manifest); a volume it does not know is ' +
      'recorded as archived (no host), so its backups can be restored onto a host. Rows that exist are left ' +
      'as they are, so a second run records nothing and a run while the manager serves is safe. Progress goes ' +
      'to stderr after each batch, the totals to stdout. Manifests that cannot be read are listed on stderr ' +
      '(and in "problems" with --json) and make the command exit 1 once it has read everything else. An ' +
      'interrupted or failed run says which --start-after resumes it.',
    environment: clientEnv,
    exitCodes: byId,
    examples: [
      'npx manager target import offsite --s3-bucket backups --passphrase-file ./passphrase',
      'npx manager backup index-rebuild --target offsite',
    ],
  },

  jobGet: getCommand('job', 'job'),
  jobList: {
    name: 'job list',
    summary: 'list jobs',
    synopsis: '[--state STATE] [--kind KIND] [--volume ID] [--host HOST] [--limit N | --all] [--json]',
    args: [],
    options: {
      ...client,
      ...list,
      state: { type: 'string', value: 'STATE', help: JOB_STATES.join(', ') },
      kind: { type: 'string', value: 'KIND', help: JOB_KINDS.join(', ') },
      volume: { type: 'string', value: 'ID', help: 'only those of this volume' },
      host: { type: 'string', value: 'HOST', help: 'only those of this host (id or name)' },
    },
    description: '',
    environment: clientEnv,
    exitCodes: byId,
    examples: ['npx manager job list --state running'],
  },
  jobWatch: {
    name: 'job watch',
    summary: 'follow a job to its end',
    synopsis: 'ID [--json]',
    args: idArg('job'),
    options: { ...client, json: { type: 'boolean', help: 'one JSON line (the job) per change' } },
    description:
      'A progress bar on a terminal (bytes done and total, rate, time left), one line per change otherwise. ' +
      "Exits 0 when the job succeeded, 7 when it failed and 8 when it was cancelled, with the job's error. " +
      'Interrupting stops watching; the job goes on.',
    environment: clientEnv,
    exitCodes: [...byId, 'jobFailed', 'jobCancelled'],
    examples: [],
  },
  jobCancel: {
    name: 'job cancel',
    summary: 'ask the agent to cancel a job',
    synopsis: 'ID [--json]',
    args: idArg('job'),
    options: client,
    description: '',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: [],
  },
} as const satisfies Record<string, CommandSpec>;
