import { ApiError, type ApiErrorCode } from '@stowage/api';

/** Exit codes of the `manager` command; documented in docs/manager-cli.md. Never renumber one. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  unauthorized: 5,
  unavailable: 6,
  jobFailed: 7,
  jobCancelled: 8,
  interrupted: 130,
  /** Standard output or error was closed by its reader (`| head`): 128 + SIGPIPE. */
  outputClosed: 141,
} as const;

export type ExitName = keyof typeof EXIT;

/** What each code means, for --help and the docs' table. */
export const EXIT_MEANINGS: Record<ExitName, string> = {
  ok: 'success',
  failure: 'failure not covered below (a target test that failed, an internal error of the manager, ...)',
  usage:
    'usage error: unknown command or option, missing argument, bad value; or the manager refused the request as invalid',
  notFound: 'no such token, host, target, volume, backup or job',
  conflict: 'conflict: the name exists, a backup is already running, the target is in use, ...',
  unauthorized: 'no valid token (401), or the token may not do that (403)',
  unavailable: 'the manager cannot be reached, or an agent it needs is unavailable',
  jobFailed: 'the watched job failed',
  jobCancelled: 'the watched job was cancelled',
  interrupted: 'interrupted (SIGINT, SIGTERM)',
  outputClosed: 'output closed by its reader (as under "| head")',
};

export class UsageError extends Error {
  override name = 'UsageError';
  /** Whether the line points at the command's --help (not for a bad environment variable). */
  readonly hint: boolean;
  constructor(message: string, options: { hint?: boolean } = {}) {
    super(message);
    this.hint = options.hint ?? true;
  }
}

/** A failure the CLI itself reports, with its exit code (a job that failed, a target test that failed). */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly code: number = EXIT.failure,
  ) {
    super(message);
  }
}

/** The exit code of each API error code: what a script can branch on without parsing messages. */
export const API_ERROR_EXIT: Readonly<Record<ApiErrorCode, number>> = {
  invalid_request: EXIT.usage,
  unauthorized: EXIT.unauthorized,
  forbidden: EXIT.unauthorized,
  not_found: EXIT.notFound,
  conflict: EXIT.conflict,
  payload_too_large: EXIT.failure,
  rate_limited: EXIT.unavailable,
  unsupported: EXIT.failure,
  unavailable: EXIT.unavailable,
  no_space: EXIT.failure,
  wrong_key: EXIT.failure,
  internal: EXIT.failure,
  cancelled: EXIT.jobCancelled,
};

/** Maps an error to its exit code and the one line printed for it. */
export function describeFailure(error: unknown): { code: number; message: string } {
  if (error instanceof UsageError) return { code: EXIT.usage, message: error.message };
  if (error instanceof CliError) return { code: error.code, message: error.message };
  if (error instanceof ApiError) return { code: API_ERROR_EXIT[error.code], message: apiMessage(error) };
  if (isSystemError(error)) return { code: EXIT.failure, message: error.message };
  const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return { code: EXIT.failure, message: `unexpected error: ${what} (STOWAGE_DEBUG=1 prints the stack)` };
}

/** The server's message, with what helps act on it: the first invalid field, the running job, the cause. */
function apiMessage(error: ApiError): string {
  const details = error.details ?? {};
  if (error.code === 'unavailable' && error.cause !== undefined) {
    // fetch's own message is "fetch failed"; the system error under it says what happened.
    const root = rootCause(error.cause);
    const reason = root instanceof Error ? root.message : String(root);
    const base = error.message.includes(reason) ? error.message : `${error.message} (${reason})`;
    return `${base}; is the manager running? ("npx manager start", or set MANAGER_URL)`;
  }
  if (error.code === 'unauthorized') {
    return `${error.message} (check MANAGER_TOKEN, MANAGER_TOKEN_FILE or --token-file)`;
  }
  const issues = details.issues;
  if (error.code === 'invalid_request' && Array.isArray(issues) && issues.length > 0) {
    const first = issues[0] as { path?: unknown; message?: unknown };
    const where = typeof first.path === 'string' && first.path !== '' ? `${first.path}: ` : '';
    const text = `${where}${String(first.message)}`;
    if (!error.message.includes(text)) return `${error.message} (${text})`;
  }
  if (
    error.code === 'conflict' &&
    typeof details.job_id === 'string' &&
    !error.message.includes(details.job_id)
  ) {
    return `${error.message} (job ${details.job_id})`;
  }
  return error.message;
}

function rootCause(error: unknown): unknown {
  let e = error;
  for (let depth = 0; depth < 8 && e instanceof Error && e.cause !== undefined; depth++) e = e.cause;
  return e;
}

/** Node's errors from the system (ENOENT, EACCES, ...): failures of a file or the network, not bugs. */
function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code);
}
