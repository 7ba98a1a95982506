import { EngineError } from '@stowage/engine';
import { FORMAT_VERSION, StowageFormatError } from '@stowage/format';
import { ObjectStoreError } from '@stowage/object-store';

/** Exit codes of the `agent` command; documented in docs/agent-cli.md. Never renumber one. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  repositoryNotFound: 3,
  wrongPassphrase: 4,
  integrity: 5,
  storage: 6,
  notFound: 7,
  interrupted: 130,
  /** Standard output or error was closed by its reader (`| head`): 128 + SIGPIPE, as a shell reports restic's. */
  outputClosed: 141,
} as const;

export type ExitName = keyof typeof EXIT;

/** What each code means, for --help and the docs' table. */
export const EXIT_MEANINGS: Record<ExitName, string> = {
  ok: 'success',
  failure: 'failure not covered below (I/O error on the volume, target exists, ...)',
  usage: 'usage error: unknown command or option, missing argument, bad value, no passphrase',
  repositoryNotFound: 'no repository at the URL',
  wrongPassphrase: 'wrong passphrase',
  integrity: 'integrity error: data damaged, truncated or missing',
  storage: 'storage unreachable or failing after retries',
  notFound: 'backup not found',
  interrupted: 'interrupted (SIGINT, SIGTERM)',
  outputClosed: 'output closed by its reader (as under "| head"); the command was cancelled',
};

export class UsageError extends Error {
  override name = 'UsageError';
  /** Whether the line points at the command's --help (not for a bad environment variable or passphrase). */
  readonly hint: boolean;
  constructor(message: string, options: { hint?: boolean } = {}) {
    super(message);
    this.hint = options.hint ?? true;
  }
}

/** A failure the CLI itself reports, with its exit code (a command that cannot run in this build, ...). */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly code: number = EXIT.failure,
  ) {
    super(message);
  }
}

/** Maps an error to its exit code and the one line printed for it. */
export function describeFailure(error: unknown): { code: number; message: string } {
  if (error instanceof UsageError) return { code: EXIT.usage, message: error.message };
  if (error instanceof CliError) return { code: error.code, message: error.message };
  if (error instanceof EngineError) {
    switch (error.code) {
      case 'repository-not-found':
        return { code: EXIT.repositoryNotFound, message: error.message };
      case 'backup-not-found':
        return { code: EXIT.notFound, message: error.message };
      case 'invalid-argument':
      case 'ambiguous-backup-id':
      case 'invalid-source':
        return { code: EXIT.usage, message: error.message };
      case 'aborted':
        return { code: EXIT.interrupted, message: error.message };
      case 'wrong-key':
        return { code: EXIT.wrongPassphrase, message: error.message };
      default:
        return { code: EXIT.failure, message: error.message };
    }
  }
  if (error instanceof StowageFormatError) {
    switch (error.code) {
      case 'FORMAT_WRONG_PASSPHRASE':
        return { code: EXIT.wrongPassphrase, message: 'wrong passphrase' };
      case 'FORMAT_UNSUPPORTED_VERSION': {
        // Only a newer version is cured by upgrading; an older one's message says why it is not read.
        const version = (error as { version?: unknown }).version;
        const newer = typeof version !== 'number' || version > FORMAT_VERSION;
        return {
          code: EXIT.failure,
          message: newer ? `${error.message}; a newer Stowage wrote it, upgrade to read it` : error.message,
        };
      }
      default: // FORMAT_INTEGRITY, FORMAT_INVALID: damaged data
        return { code: EXIT.integrity, message: error.message };
    }
  }
  if (error instanceof ObjectStoreError) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    if (error.kind === 'not-found')
      return { code: EXIT.integrity, message: `${error.message} (missing object)` };
    return { code: EXIT.storage, message: `${error.message}${error.message.includes(cause) ? '' : cause}` };
  }
  if (isSystemError(error)) return { code: EXIT.failure, message: error.message };
  // Anything else is a bug or a case nobody thought of: say so, and how to see more.
  const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return {
    code: EXIT.failure,
    message: `unexpected error: ${what} (STOWAGE_DEBUG=1 prints the stack)`,
  };
}

/** Node's errors from the system (ENOENT, EACCES, EIO, ...) are failures of the volume or file, not bugs. */
function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}
