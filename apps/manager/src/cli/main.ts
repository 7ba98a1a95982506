import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { asksForHelp, parseCommand } from './args.js';
import { ALL_COMMANDS, COMMANDS, type CommandKey, GROUPS } from './command-specs.js';
import {
  alertAck,
  alertList,
  webhookAdd,
  webhookList,
  webhookRemove,
  webhookTest,
} from './commands/alerts.js';
import {
  backupDelete,
  backupGet,
  backupList,
  backupNow,
  backupRestore,
  backupVerify,
} from './commands/backups.js';
import { targetGc, targetGcRuns } from './commands/gc.js';
import { hostAdd, hostGet, hostList } from './commands/hosts.js';
import { jobCancel, jobGet, jobList, jobWatch } from './commands/jobs.js';
import { backupIndexRebuild, targetImport } from './commands/recovery.js';
import { targetCreate, targetDelete, targetGet, targetList, targetTest } from './commands/targets.js';
import { tokenCreate, tokenList, tokenRevoke } from './commands/tokens.js';
import { auditList, userAdd, userList, userPasswd, userRemove } from './commands/users.js';
import {
  volumeAdopt,
  volumeCreate,
  volumeDelete,
  volumeGet,
  volumeList,
  volumeSchedule,
} from './commands/volumes.js';
import type { CliEnv, OutStream } from './context.js';
import { describeFailure, EXIT, UsageError } from './exit-codes.js';
import { printable, watchOutput } from './output.js';
import { type CommandSpec, commandHelp, groupHelp, overviewHelp } from './spec.js';

type Handler = (values: never, positionals: string[], cli: CliEnv) => Promise<number>;

// The server commands load the database, Hono and the engine; only they pay for it.
const server = () => import('./commands/server.js');

const HANDLERS: Record<CommandKey, Handler> = {
  serve: async (v, p, c) => (await server()).serve(v, p, c),
  start: async (v, p, c) => (await server()).start(v, p, c),
  migrate: async (v, p, c) => (await server()).migrateCommand(v, p, c),
  tokenCreate,
  tokenList,
  tokenRevoke,
  userAdd,
  userList,
  userPasswd,
  userRemove,
  auditList,
  hostAdd,
  hostList,
  hostGet,
  targetCreate,
  targetList,
  targetGet,
  targetTest,
  targetDelete,
  targetImport,
  targetGc,
  targetGcRuns,
  volumeCreate,
  volumeAdopt,
  volumeList,
  volumeGet,
  volumeSchedule,
  volumeDelete,
  backupNow,
  backupList,
  backupGet,
  backupDelete,
  backupRestore,
  backupVerify,
  backupIndexRebuild,
  jobGet,
  jobList,
  jobWatch,
  jobCancel,
  alertList,
  alertAck,
  webhookAdd,
  webhookList,
  webhookRemove,
  webhookTest,
};

type Resolved =
  | { kind: 'command'; key: CommandKey; spec: CommandSpec; rest: string[] }
  | { kind: 'group'; group: string; rest: string[] }
  | { kind: 'unknown'; words: string; group: string | undefined };

/** The command named by the first words of `argv`, or its group. */
export function resolveCommand(argv: readonly string[]): Resolved {
  for (const [key, spec] of Object.entries(COMMANDS) as [CommandKey, CommandSpec][]) {
    const words = spec.name.split(' ');
    if (words.every((w, i) => argv[i] === w))
      return { kind: 'command', key, spec, rest: argv.slice(words.length) };
  }
  const group = GROUPS.find((g) => argv[0] === g);
  if (group) {
    const rest = argv.slice(1);
    if (rest.length === 0 || rest[0]!.startsWith('-')) return { kind: 'group', group, rest };
    return { kind: 'unknown', words: `${group} ${rest[0]}`, group };
  }
  return { kind: 'unknown', words: argv[0] ?? '', group: undefined };
}

function unknownCommand(words: string, group: string | undefined): UsageError {
  const names = ALL_COMMANDS.map((c) => c.name).filter((n) => (group ? n.startsWith(`${group} `) : true));
  const typed = words.split(' ');
  const near = names.find((name) => {
    const wanted = name.split(' ').slice(0, typed.length).join(' ');
    return wanted !== words && editDistance(wanted, words) <= 2;
  });
  const hint = near ? ` (did you mean "manager ${near}"?)` : '';
  return Object.assign(new UsageError(`unknown command "${printable(words)}"${hint}`), { helpFor: group });
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
  return `manager ${pkg.version} (node ${process.version}, ${process.platform}/${process.arch})\n`;
}

function help(words: string[], cli: CliEnv): number {
  if (words.length === 0) {
    cli.stdout.write(overviewHelp(ALL_COMMANDS));
    return EXIT.ok;
  }
  const resolved = resolveCommand(words);
  if (resolved.kind === 'unknown' || resolved.rest.length > 0) {
    throw unknownCommand(resolved.kind === 'unknown' ? resolved.words : words.join(' '), undefined);
  }
  cli.stdout.write(
    resolved.kind === 'group' ? groupHelp(resolved.group, ALL_COMMANDS) : commandHelp(resolved.spec),
  );
  return EXIT.ok;
}

async function dispatch(argv: string[], cli: CliEnv, resolved: Resolved | undefined): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    cli.stdout.write(overviewHelp(ALL_COMMANDS));
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
      cli.stdout.write(groupHelp(resolved.group, ALL_COMMANDS));
      return EXIT.ok;
    }
    const names = ALL_COMMANDS.filter((c) => c.name.startsWith(`${resolved.group} `)).map((c) =>
      c.name.slice(resolved.group.length + 1),
    );
    throw Object.assign(new UsageError(`"manager ${resolved.group}" needs a command: ${names.join(', ')}`), {
      helpFor: resolved.group,
    });
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

/** Where a run writes; `signal` is what SIGINT/SIGTERM abort, `cwd` what relative paths resolve against. */
export interface CliIo {
  stdout: OutStream;
  stderr: OutStream;
  signal?: AbortSignal;
  cwd?: string;
  now?: () => number;
}

/**
 * Runs one command line and resolves to its exit code. Every failure ends as one line `manager: <message>`
 * on stderr; the stack only with STOWAGE_DEBUG=1.
 */
export async function run(argv: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const output = watchOutput(io);
  const signals = [output.signal, ...(io.signal ? [io.signal] : [])];
  const cli: CliEnv = {
    env,
    stdout: io.stdout,
    stderr: io.stderr,
    signal: AbortSignal.any(signals),
    cwd: io.cwd ?? process.cwd(),
    now: io.now ?? Date.now,
  };
  const isHelp = argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h';
  const resolved = argv.length === 0 || isHelp ? undefined : resolveCommand(argv);
  let code: number;
  try {
    code = await dispatch(argv, cli, resolved);
  } catch (error) {
    const failure = describeFailure(error);
    const interrupted = cli.signal.aborted && !(error instanceof UsageError);
    code = interrupted ? EXIT.interrupted : failure.code;
    if (!output.closed) {
      const message = interrupted ? 'interrupted' : printable(failure.message);
      cli.stderr.write(`manager: ${message}${hintFor(error, resolved)}\n`);
      if (debugging(env) && !(error instanceof UsageError)) cli.stderr.write(stackOf(error));
    }
  }
  await output.flush();
  return output.closed ? output.exitCode : code;
}

function hintFor(error: unknown, resolved: Resolved | undefined): string {
  if (!(error instanceof UsageError) || !error.hint) return '';
  const helpFor =
    (error as UsageError & { helpFor?: string }).helpFor ??
    (resolved?.kind === 'command' ? resolved.spec.name : resolved?.kind === 'group' ? resolved.group : '');
  return `; see "manager ${helpFor ? `${helpFor} ` : ''}--help"`;
}

/** Runs the command line of this process and sets its exit code (bin/manager.cjs calls this). */
export async function runFromProcess(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const debug = debugging(process.env);
  const command = process.argv[2];
  // The long-running commands keep Node's own reports: a crash of a service needs its stack in the log.
  if (command !== 'serve' && command !== 'start') {
    const fatal = (error: unknown) => {
      process.stderr.write(`manager: ${printable(describeFailure(error).message)}\n`);
      if (debug) process.stderr.write(stackOf(error));
      process.exit(EXIT.failure);
    };
    process.on('uncaughtException', fatal);
    process.on('unhandledRejection', fatal);
  }
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    // The first signal stops cleanly (the server drains, the watch ends); a second one exits at once.
    if (++interrupts > 1) process.exit(EXIT.interrupted);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const code = await run(process.argv.slice(2), process.env, {
    stdout: process.stdout,
    stderr: process.stderr,
    signal: controller.signal,
  });
  process.exitCode = code;
}

function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) await runFromProcess();
