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

function beforeDashes(args: readonly string[]): readonly string[] {
  const end = args.indexOf('--');
  return end === -1 ? args : args.slice(0, end);
}

/** Whether `--help` or `-h` stands among the options (before a `--`). */
export function asksForHelp(args: readonly string[]): boolean {
  return beforeDashes(args).some((a) => a === '--help' || a === '-h');
}

/**
 * Parses a command's arguments against its spec. `--help` wins over everything else, so a half-typed command
 * line still gets its help; unknown options, missing values and a wrong number of arguments are usage errors.
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
  const max = spec.args.length;
  const min = spec.args.filter((a) => !a.optional).length;
  if (parsed.positionals.length > max) {
    const extra = parsed.positionals.slice(max);
    throw new UsageError(
      `unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((a) => JSON.stringify(a)).join(' ')}` +
        (max === 0 ? ` (manager ${spec.name} takes no arguments)` : ''),
    );
  }
  if (parsed.positionals.length < min) {
    throw new UsageError(
      `missing ${spec.args
        .slice(parsed.positionals.length, min)
        .map((a) => a.name)
        .join(' ')}`,
    );
  }
  return { help: false, values: parsed.values as OptionValues<S>, positionals: parsed.positionals };
}

/** parseArgs's messages, shortened to what was wrong and how the option is written. */
function parseArgsMessage(error: NodeJS.ErrnoException, spec: CommandSpec): string {
  const message = error.message.split('\n')[0]!;
  const named = /'(-[^ ',]*)/.exec(message)?.[1];
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && named) {
    return `unknown option ${named} for "manager ${spec.name}"`;
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

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** A size as people write it: 1048576, 256K, 1M, 10G, 4MiB, 1GB (binary units throughout). */
export function parseSize(option: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  const value = match ? Number(match[1]) * UNITS[match[2]!.toLowerCase()]! : Number.NaN;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`option --${option} must be a size such as 1048576, 512K, 1M or 10G, got "${text}"`);
  }
  return value;
}

/** An integer option within bounds. */
export function parseInteger(option: string, text: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`option --${option} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(option: string, text: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`option --${option} must be one of ${choices.join(', ')}, got "${text}"`);
  }
  return text as T;
}

/** Options that exclude each other (`--all` and `--limit`). */
export function exclusive(values: object, ...names: string[]): void {
  const record = values as Record<string, unknown>;
  const given = names.filter((n) => record[n] !== undefined && record[n] !== false);
  if (given.length > 1)
    throw new UsageError(`options ${given.map((n) => `--${n}`).join(' and ')} exclude each other`);
}
