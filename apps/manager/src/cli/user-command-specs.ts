import type { CommandSpec } from './spec.js';
import { base, byId, client, clientEnv, list } from './spec-fragments.js';

const passwordFile = {
  type: 'string',
  value: 'FILE',
  help: 'a file holding the password (never on the command line, where ps shows it); "-": standard input',
} as const;

/** `manager user …` and `manager audit list` (docs/manager.md#users-roles-and-the-audit-log); spread into command-specs.ts. */
export const USER_COMMANDS = {
  userAdd: {
    name: 'user add',
    summary: 'add a console user who signs in with a name and password',
    synopsis: 'NAME [--role admin|operator|viewer] [--password-file FILE] [--json]',
    args: [{ name: 'NAME', help: 'the sign-in name: 1–64 of a-z, 0-9, ".", "_", "-"' }],
    options: {
      ...client,
      role: { type: 'string', value: 'ROLE', help: 'admin, operator or viewer', default: 'viewer' },
      'password-file': passwordFile,
    },
    description:
      'Without --password-file a password is generated and printed alone on stdout, once. Admins do ' +
      'everything; operators run backups, restores, schedules and verifies; viewers read.',
    environment: clientEnv,
    exitCodes: [...base, 'conflict'],
    examples: [
      'npx manager user add alice --role operator --password-file alice.pw',
      'npx manager user add bob > bob.pw',
    ],
  },
  userList: {
    name: 'user list',
    summary: 'list console users',
    synopsis: '[--limit N | --all] [--json]',
    args: [],
    options: { ...client, ...list },
    description: '',
    environment: clientEnv,
    exitCodes: base,
    examples: [],
  },
  userPasswd: {
    name: 'user passwd',
    summary: "set a user's password (ending their sessions) or role",
    synopsis: 'USER [--password-file FILE | --role ROLE] [--json]',
    args: [{ name: 'USER', help: "the user's name or id" }],
    options: {
      ...client,
      'password-file': passwordFile,
      role: { type: 'string', value: 'ROLE', help: 'a new role instead: admin, operator or viewer' },
    },
    description:
      'Without --password-file or --role a new password is generated and printed alone on stdout, once. A ' +
      'new password signs the user out everywhere; a new role applies to their next request. The last admin ' +
      'cannot lose the role (exit 4).',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: [
      'npx manager user passwd alice --password-file new.pw',
      'npx manager user passwd bob --role admin',
    ],
  },
  userRemove: {
    name: 'user remove',
    summary: 'remove a user and end their sessions',
    synopsis: 'USER [--json]',
    args: [{ name: 'USER', help: "the user's name or id" }],
    options: client,
    description: 'The last admin cannot be removed (exit 4).',
    environment: clientEnv,
    exitCodes: [...byId, 'conflict'],
    examples: ['npx manager user remove bob'],
  },
  auditList: {
    name: 'audit list',
    summary: 'the audit log of state-changing calls, newest first',
    synopsis: '[--action ACTION] [--actor NAME] [--failed] [--limit N | --all] [--json]',
    args: [],
    options: {
      ...client,
      ...list,
      action: { type: 'string', value: 'ACTION', help: 'only this operation (e.g. deleteBackup, signIn)' },
      actor: { type: 'string', value: 'NAME', help: 'only calls by this user or token name' },
      failed: { type: 'boolean', help: 'only calls that failed' },
    },
    description:
      'Admins only. Records who did what to which resource, when and how it ended; never a secret.',
    environment: clientEnv,
    exitCodes: base,
    examples: ['npx manager audit list --action signIn --failed'],
  },
} as const satisfies Record<string, CommandSpec>;
