import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FORMAT_VERSION } from '@stowage/format';
import { asksForHelp, asksForJson, parseCommand } from './args.js';
import { check } from './check.js';
import { backup, chunks, ls, repoInit, repoKeyExport, restore, verify } from './commands.js';
import type { CliEnv } from './context.js';
import { describeFailure, EXIT, UsageError } from './exit-codes.js';
import { jsonMessages, printable, watchOutput } from './output.js';
import {
  COMMANDS,
  type CommandKey,
  type CommandSpec,
  commandHelp,
  GROUPS,
  groupHelp,
  overviewHelp,
} from './spec.js';

type Handler = (values: never, positionals: string[], cli: CliEnv) => Promise<number>;

const HANDLERS: Record<Exclude<CommandKey, 'serve'>, Handler> = {
  repoInit,
  repoKeyExport,
  backup,
  ls,
  restore,
  verify,
  check,
  chunks,
};

type Resolved =
  | { kind: 'command'; key: CommandKey; spec: CommandSpec; rest: string[] }
  | { kind: 'group'; group: string; rest: string[] }
  | { kind: 'unknown'; words: string; group: string | undefined };

/** The command named by the first words of `argv` (the longest that matches), or its group. */
function resolve(argv: string[]): Resolved {
  const specs = Object.entries(COMMANDS) as [CommandKey, CommandSpec][];
  let best: [CommandKey, CommandSpec] | undefined;
  for (const entry of specs) {
    const words = entry[1].name.split(' ');
    if (words.every((w, i) => argv[i] === w) && words.length > (best?.[1].name.split(' ').length ?? 0))
      best = entry;
  }
  if (best)
    return { kind: 'command', key: best[0], spec: best[1], rest: argv.slice(best[1].name.split(' ').length) };
  const group = [...GROUPS].reverse().find((g) => g.split(' ').every((w, i) => argv[i] === w));
  if (group) {
    const rest = argv.slice(group.split(' ').length);
    if (rest.length === 0 || rest[0]!.startsWith('-')) return { kind: 'group', group, rest };
    return { kind: 'unknown', words: [group, rest[0]].join(' '), group };
  }
  return { kind: 'unknown', words: argv[0] ?? '', group: undefined };
}

function unknownCommand(words: string, group: string | undefined): UsageError {
  const candidates = Object.values(COMMANDS)
    .map((c) => c.name)
    .filter((name) => (group ? name.startsWith(`${group} `) : true));
  const near = candidates.find((name) => {
    const typed = words.split(' ');
    const wanted = name.split(' ').slice(0, typed.length).join(' ');
    return wanted !== words && editDistance(wanted, words) <= 2;
  });
  const hint = near ? ` (did you mean "agent ${near}"?)` : '';
  return Object.assign(new UsageError(`unknown command "${words}"${hint}`), { helpFor: group });
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        previous[j]! + 1,
        row[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length]!;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return `agent ${pkg.version} (repository format ${FORMAT_VERSION}; node ${process.version}, ${process.platform}/${process.arch})\n`;
}

async function serveHelp(): Promise<string> {
  // Loaded only here: the service's HTTP, zod and metrics modules would slow every other command.
  return (await import('./serve.js')).serveHelp();
}

async function help(words: string[], cli: CliEnv): Promise<number> {
  if (words.length === 0) {
    cli.stdout.write(overviewHelp());
    return EXIT.ok;
  }
  const resolved = resolve(words);
  if (resolved.kind === 'unknown' || resolved.rest.length > 0) {
    throw unknownCommand(resolved.kind === 'unknown' ? resolved.words : words.join(' '), undefined);
  }
  if (resolved.kind === 'group') cli.stdout.write(groupHelp(resolved.group));
  else cli.stdout.write(resolved.key === 'serve' ? await serveHelp() : commandHelp(resolved.spec));
  return EXIT.ok;
}

async function dispatch(argv: string[], cli: CliEnv, resolved: Resolved | undefined): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    cli.stdout.write(overviewHelp());
    return EXIT.usage;
  }
  if (first === 'help' || first === '--help' || first === '-h') return help(rest, cli);
  if (first === '--version' || first === '-V') {
    cli.stdout.write(version());
    return EXIT.ok;
  }
  if (!resolved || resolved.kind === 'unknown')
    throw unknownCommand(resolved?.words ?? first, resolved?.group);
  if (resolved.kind === 'group') {
    if (asksForHelp(resolved.rest)) {
      cli.stdout.write(groupHelp(resolved.group));
      return EXIT.ok;
    }
    const commands = Object.values(COMMANDS)
      .filter((c) => c.name.startsWith(`${resolved.group} `))
      .map((c) => c.name.slice(resolved.group.length + 1));
    throw Object.assign(new UsageError(`"agent ${resolved.group}" needs a command: ${commands.join(', ')}`), {
      helpFor: resolved.group,
    });
  }
  if (resolved.key === 'serve') {
    return (await import('./serve.js')).serveCommand(resolved.rest, cli);
  }
  const parsed = parseCommand(resolved.spec, resolved.rest);
  if (parsed.help) {
    cli.stdout.write(commandHelp(resolved.spec));
    return EXIT.ok;
  }
  return HANDLERS[resolved.key](parsed.values as never, parsed.positionals, cli);
}

function debugging(env: NodeJS.ProcessEnv): boolean {
  const value = env.STOWAGE_DEBUG;
  return value !== undefined && value !== '' && value !== '0';
}

/** An error's stack and the stacks of its causes, for STOWAGE_DEBUG. */
function stackOf(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error, depth = 0; e !== undefined && depth < 8; depth++) {
    parts.push(e instanceof Error ? (e.stack ?? String(e)) : String(e));
    e = e instanceof Error ? e.cause : undefined;
    if (e !== undefined) parts.push('caused by:');
  }
  return `${parts.join('\n')}\n`;
}

/**
 * Runs one command line and returns its exit code. Every failure ends as one line on stderr (a JSON error
 * line under --json of a long command); stack traces only with STOWAGE_DEBUG.
 */
export async function run(argv: string[], cli: CliEnv): Promise<number> {
  const output = watchOutput(cli);
  const env: CliEnv = { ...cli, signal: AbortSignal.any([cli.signal, output.signal]) };
  const isHelp = argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h';
  const resolved = argv.length === 0 || isHelp ? undefined : resolve(argv);
  let code: number;
  try {
    code = await dispatch(argv, env, resolved);
  } catch (error) {
    const failure = describeFailure(error);
    code = failure.code;
    if (!output.closed) {
      const command = resolved?.kind === 'command' ? resolved : undefined;
      if (command?.spec.streaming && asksForJson(command.rest)) {
        jsonMessages.error(env, { message: failure.message, exit_code: failure.code });
      } else {
        env.stderr.write(`agent: ${oneLine(error, failure.message)}${hintFor(error, resolved)}\n`);
      }
      if (debugging(cli.env) && !(error instanceof UsageError)) env.stderr.write(stackOf(error));
    }
  }
  await output.flush();
  return output.closed ? output.exitCode : code;
}

/**
 * A failure's message on one line, escaped: messages quote object keys and names from the repository. The
 * one exception is a usage error of several lines (a config file's problems, the operator's own text),
 * printed one `agent:` line each.
 */
function oneLine(error: unknown, message: string): string {
  if (error instanceof UsageError) return message.split('\n').map(printable).join('\nagent: ');
  return printable(message);
}

function hintFor(error: unknown, resolved: Resolved | undefined): string {
  if (!(error instanceof UsageError) || !error.hint) return '';
  const helpFor =
    (error as UsageError & { helpFor?: string }).helpFor ??
    (resolved?.kind === 'command' ? resolved.spec.name : resolved?.kind === 'group' ? resolved.group : '');
  return `; see "agent ${helpFor ? `${helpFor} ` : ''}--help"`;
}

/** Runs the command line of this process and sets its exit code (the `agent` binary calls this). */
export async function runFromProcess(): Promise<void> {
  // The AWS SDK is pinned to a release that supports Node 20; its notice about later releases is noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const debug = debugging(process.env);
  // Whatever escapes a command (an error thrown in a callback, a rejected promise nobody awaited) is still
  // one line, not Node's stack trace; and a warning is one line too.
  const fatal = (error: unknown) => {
    const { message } = describeFailure(error);
    process.stderr.write(`agent: ${printable(message)}\n`);
    if (debug) process.stderr.write(stackOf(error));
    process.exit(EXIT.failure);
  };
  // `agent serve` keeps Node's own reports: a crash of the long-running service needs its stack in the log.
  if (process.argv[2] !== 'serve') {
    process.on('uncaughtException', fatal);
    process.on('unhandledRejection', fatal);
    process.removeAllListeners('warning');
    process.on('warning', (warning) => {
      process.stderr.write(`agent: warning: ${printable(`${warning.name}: ${warning.message}`)}\n`);
      if (debug) process.stderr.write(stackOf(warning));
    });
  }
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    // The first ^C cancels cleanly (partial restores are removed); a second one exits at once.
    if (++interrupts > 1) process.exit(EXIT.interrupted);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.exitCode = await run(process.argv.slice(2), {
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    signal: controller.signal,
  });
}

function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

// Run directly (tests start this file through tsx); the installed binary goes through bin/agent.cjs.
if (isMain()) await runFromProcess();
