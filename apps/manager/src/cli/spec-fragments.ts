import type { ExitName } from './exit-codes.js';
import type { CommandSpec, EnvName, OptionSpec } from './spec.js';

/** Option sets, environments and exit codes several commands share (command-specs.ts). */

export const json = { type: 'boolean', help: "print the API's answer as JSON" } as const satisfies OptionSpec;

/** What every client command takes besides its own options. */
export const client = {
  json,
  url: { type: 'string', value: 'URL', help: 'the manager', env: 'MANAGER_URL' },
  'token-file': {
    type: 'string',
    value: 'FILE',
    help: 'a file holding the bearer token [default: MANAGER_TOKEN, MANAGER_TOKEN_FILE, $STOWAGE_HOME/admin-token]',
  },
} as const satisfies Record<string, OptionSpec>;

export const list = {
  limit: { type: 'string', value: 'N', help: 'one page of at most N items (1–500)', default: '100' },
  cursor: { type: 'string', value: 'CURSOR', help: 'the page after the one whose next_cursor this is' },
  all: { type: 'boolean', help: 'every page, following next_cursor' },
} as const satisfies Record<string, OptionSpec>;

export const watch = {
  type: 'boolean',
  help: "follow the job until it ends (a progress bar on a terminal); exit with the job's outcome",
} as const satisfies OptionSpec;

export const clientEnv = [
  'MANAGER_URL',
  'MANAGER_TOKEN',
  'MANAGER_TOKEN_FILE',
  'STOWAGE_HOME',
  'PORT',
  'STOWAGE_DEBUG',
] as const satisfies EnvName[];
export const serverEnv = [
  'STOWAGE_HOME',
  'PORT',
  'HOST',
  'DATABASE_URL',
  'MANAGER_MASTER_KEY_FILE',
  'MANAGER_PUBLIC_URL',
  'MANAGER_SESSION_HOURS',
  'MANAGER_CONSOLE_DIR',
  'LOG_LEVEL',
  'STOWAGE_DEBUG',
] as const satisfies EnvName[];

export const base = [
  'ok',
  'failure',
  'usage',
  'unauthorized',
  'unavailable',
  'interrupted',
] as const satisfies ExitName[];
export const byId = [...base, 'notFound'] as const satisfies ExitName[];
export const watching = [...byId, 'conflict', 'jobFailed', 'jobCancelled'] as const satisfies ExitName[];

export const idArg = (what: string, byName = false) =>
  [{ name: 'ID', help: `the ${what}'s id${byName ? ' or name' : ''}` }] as const;

/** `<resource> get ID`: the same for every resource. */
export function getCommand(resource: string, what: string, byName = false) {
  return {
    name: `${resource} get`,
    summary: `show one ${what}`,
    synopsis: 'ID [--json]',
    args: idArg(what, byName),
    options: client,
    description: '',
    environment: clientEnv,
    exitCodes: byId,
    examples: [] as string[],
  } satisfies CommandSpec;
}
