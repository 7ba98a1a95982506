import type { OptionValues } from './args.js';
import type { CliEnv } from './context.js';
import { CliError, UsageError } from './exit-codes.js';
import type { COMMANDS } from './spec.js';

type Values = OptionValues<(typeof COMMANDS)['check']>;

/** The share of chunks `check` downloads: none, all (--read-data) or a percentage (--read-data-subset). */
export function readDataPercent(values: Values): number {
  if (values['read-data'] && values['read-data-subset'] !== undefined) {
    throw new UsageError('--read-data and --read-data-subset exclude each other');
  }
  if (values['read-data']) return 100;
  const subset = values['read-data-subset'];
  if (subset === undefined) return 0;
  const percent = Number(subset.replace(/%$/, ''));
  if (!(percent > 0 && percent <= 100)) {
    throw new UsageError(`--read-data-subset must be a percentage in (0, 100], got "${subset}"`);
  }
  return percent;
}

/**
 * `agent check`: the whole repository. The engine's checkRepository is not in this build yet, so the command
 * parses its options (and --help describes it) but refuses to run; `agent verify` checks one backup.
 */
export async function check(values: Values, _positionals: string[], _cli: CliEnv): Promise<number> {
  readDataPercent(values);
  throw new CliError(
    'agent check is not available in this build yet (the engine has no repository check); ' +
      '"agent verify BACKUP_ID" checks one backup',
  );
}
