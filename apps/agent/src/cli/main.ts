import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { backup, chunks, ls, repoInit, restore, verify } from './commands.js';
import type { CliEnv } from './context.js';
import { describeFailure, EXIT, UsageError } from './exit-codes.js';

const USAGE = `Usage: agent <command> [options]

Repository commands (a repository is file:///abs/path or s3://bucket/prefix?endpoint=URL&region=R&path_style=true):
  agent repo init --repo URL [--min SIZE --avg SIZE --max SIZE --level 0-3]
  agent backup FILE_OR_DEVICE --repo URL --volume NAME [--json]
  agent ls --repo URL [--json]
  agent restore BACKUP_ID --repo URL --to FILE_OR_DEVICE [--overwrite] [--json]
  agent verify BACKUP_ID --repo URL [--sample PERCENT] [--json]

Service:
  agent serve [--config FILE.json]   the agent service for the manager (see "agent serve --help")

Tools:
  agent chunks FILE [--min SIZE --avg SIZE --max SIZE --level 0-3 --seed N] [--json]

Environment:
  STOWAGE_REPOSITORY       repository URL when --repo is not given
  STOWAGE_PASSPHRASE       recovery passphrase (or STOWAGE_PASSPHRASE_FILE; prompted for on a terminal)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   S3 credentials
  STOWAGE_THREADS          worker threads for hashing and encryption (default: one per core)
  STOWAGE_RETRY_ATTEMPTS   attempts per storage request before giving up (default 6)
  STOWAGE_DEBUG            print stack traces of unexpected failures

Exit codes: 0 ok, 1 failure, 2 usage, 3 no repository, 4 wrong passphrase, 5 integrity error (damaged or
missing data), 6 storage unreachable or failing, 7 backup not found, 130 interrupted.
`;

export async function run(argv: string[], cli: CliEnv): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        cli.stdout.write(USAGE);
        return command === undefined ? EXIT.usage : EXIT.ok;
      case 'repo':
        if (rest[0] === 'init') return await repoInit(rest.slice(1), cli);
        throw new UsageError(`unknown repo command "${rest[0] ?? ''}" (try "agent repo init")`);
      case 'backup':
        return await backup(rest, cli);
      case 'ls':
        return await ls(rest, cli);
      case 'restore':
        return await restore(rest, cli);
      case 'verify':
        return await verify(rest, cli);
      case 'chunks':
        return await chunks(rest, cli);
      case 'serve':
        // Loaded only here: the service's HTTP, zod and metrics modules would slow every other command.
        return await (await import('./serve.js')).serveCommand(rest, cli);
      default:
        throw new UsageError(`unknown command "${command}" (see "agent --help")`);
    }
  } catch (error) {
    const { code, message } = describeFailure(error);
    cli.stderr.write(`agent: ${message}\n`);
    if (code === EXIT.usage && error instanceof UsageError) cli.stderr.write('(see "agent --help")\n');
    if (code === EXIT.failure && cli.env.STOWAGE_DEBUG && error instanceof Error)
      cli.stderr.write(`${error.stack}\n`);
    return code;
  }
}

/** Runs the command line of this process and sets its exit code (the `agent` binary calls this). */
export async function runFromProcess(): Promise<void> {
  // The AWS SDK is pinned to a release that supports Node 20; its notice about later releases is noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
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
