import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from './exit-codes.js';
import type { CommandSpec, OptionSpec } from './spec.js';

/** The values of a command's options, typed from its spec. */
export type OptionValues<S extends CommandSpec> = {
  [K in keyof S['options']]?: S['options'][K] extends { type: 'boolean' } ? boolean : string;
};

export type Parsed<S extends CommandSpec> =
  | { help: true }
  | { help: false; values: OptionValues<S>; positionals: string[] };

/** Whether `--help` or `-h` stands among the options (before a `--`). */
export function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** Whether the options hold `--json` (so even a usage error is reported as a JSON line). */
export function asksForJson(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes('--json');
}

/**
 * Parses a command's arguments against its spec. `--help` wins over everything else, so a half-typed command
 * line still gets its help; otherwise unknown options, missing values and a wrong number of arguments are
 * usage errors in one line.
 */
export function parseCommand<S extends CommandSpec>(spec: S, args: string[]): Parsed<S> {
  if (asksForHelp(args)) return { help: true };
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, o] of Object.entries(spec.options) as [string, OptionSpec][]) {
    options[name] = o.short ? { type: o.type, short: o.short } : { type: o.type };
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (error) {
    throw new UsageError(parseArgsMessage(error as NodeJS.ErrnoException, spec));
  }
  const want = spec.args.map((a) => a.name);
  if (parsed.positionals.length > want.length) {
    const extra = parsed.positionals.slice(want.length);
    throw new UsageError(
      `unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((a) => JSON.stringify(a)).join(' ')}` +
        (want.length === 0 ? ` (agent ${spec.name} takes no arguments)` : ''),
    );
  }
  if (parsed.positionals.length < want.length) {
    throw new UsageError(`missing ${want.slice(parsed.positionals.length).join(' ')}`);
  }
  return { help: false, values: parsed.values as OptionValues<S>, positionals: parsed.positionals };
}

/** parseArgs's messages, shortened to what was wrong and how the option is written. */
function parseArgsMessage(error: NodeJS.ErrnoException, spec: CommandSpec): string {
  const message = error.message.split('\n')[0]!;
  const named = /'(-[^ ',]*)/.exec(message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && named) {
    return `unknown option ${named} for "agent ${spec.name}"`;
  }
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && named) {
    const entry = (Object.entries(spec.options) as [string, OptionSpec][]).find(
      ([name, o]) => named === `--${name}` || named === `-${o.short}`,
    );
    if (!entry) return message;
    const [name, o] = entry;
    if (o.type === 'boolean') return `option --${name} takes no value`;
    const form = `--${name} ${o.value ?? 'VALUE'}`;
    if (/ambiguous/.test(message)) {
      return `option --${name} needs a value (${form}); a value starting with "-" is written --${name}=-…`;
    }
    return `option --${name} needs a value (${form})`;
  }
  return message;
}
