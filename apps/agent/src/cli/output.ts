import type { Progress } from '@stowage/engine';
import type { CliEnv } from './context.js';
import { EXIT } from './exit-codes.js';

/**
 * Characters a terminal may act on rather than show: C0 controls (newline and carriage return forge lines,
 * ESC starts colour, title and clipboard sequences), DEL, C1 controls (U+009B is a one-character CSI), the
 * Unicode line separators, bidirectional overrides and isolates (text that reads differently from what it is),
 * and lone surrogates. The backslash is escaped too, so an escaped name reads back unambiguously.
 */
const UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is being escaped
  /[\u0000-\u001f\u007f-\u009f\\\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\p{Cs}]/gu;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

/**
 * A string as it may be printed in human output: every character listed above escaped the way JavaScript
 * writes it (`\n`, `\x1b`, `\u202e`). Anything a repository supplies (volume names, dates and ids from
 * manifests, which any key holder can write; object keys; error messages quoting them) goes through this.
 */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

// JSON.stringify escapes C0 controls but leaves DEL, C1 and the Unicode separators and overrides raw.
// Outside strings JSON is ASCII, so each of them can be replaced by its \u escape wherever it stands.
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** One line of JSON (bigints as strings), with nothing in it a terminal would act on. */
export function jsonText(value: unknown): string {
  const text = JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v));
  return text.replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function printLine(cli: CliEnv, text: string): void {
  cli.stdout.write(`${text}\n`);
}

export function printJson(cli: CliEnv, value: unknown): void {
  cli.stdout.write(`${jsonText(value)}\n`);
}

/**
 * The `--json` protocol of the long commands (backup, restore, verify, check), after restic's: while the
 * command runs, `status` lines on stdout; at the end one `summary` line on stdout; each problem found and
 * the failure that ends the command, `error` lines on stderr. Field names are in docs/agent-cli.md.
 */
export const jsonMessages = {
  /** `extra` holds a command's own fields (check's `step` and `pass`), after the common ones. */
  status(cli: CliEnv, p: Progress, extra: Record<string, unknown> = {}): void {
    // A total below what is done is not known yet (check's listing of chunks/): no fraction, no estimate.
    const known = p.bytesTotal >= p.bytesDone;
    const fraction = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : 1;
    const eta = p.etaSeconds;
    printJson(cli, {
      message_type: 'status',
      seconds_elapsed: round(p.elapsedSeconds, 3),
      ...(known && eta !== undefined && Number.isFinite(eta)
        ? { seconds_remaining: round(Math.max(0, eta), 3) }
        : {}),
      ...(known ? { percent_done: round(fraction, 4) } : {}),
      total_bytes: p.bytesTotal,
      bytes_done: p.bytesDone,
      bytes_per_second: Math.round(p.rate),
      ...extra,
    });
  },
  summary(cli: CliEnv, fields: Record<string, unknown>): void {
    printJson(cli, { message_type: 'summary', ...fields });
  },
  /**
   * A problem found (`object` names what is damaged, `problem` says how, `backups` which it affects), or,
   * with `exit_code`, the failure that ends the run.
   */
  error(
    cli: CliEnv,
    error: { message: string; object?: string; problem?: string; backups?: string[]; exit_code?: number },
  ): void {
    cli.stderr.write(`${jsonText({ message_type: 'error', ...error })}\n`);
  },
};

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * Watches stdout and stderr for their reader going away (EPIPE: `agent ls | head -1`). Unwatched, the
 * stream's 'error' event would crash the process with a stack trace; instead the command is cancelled (as on
 * SIGINT: a partial restore is removed), nothing more is printed, and the exit code is 141, what a shell
 * shows for restic killed by SIGPIPE. The listeners stay for the life of the process: a write that fails
 * after the command returned must not crash it either.
 */
export function watchOutput(cli: Pick<CliEnv, 'stdout' | 'stderr'>): {
  readonly closed: boolean;
  readonly exitCode: number;
  /** Aborted once either stream is gone. */
  signal: AbortSignal;
  /** Waits until what was written has reached the streams, so a late EPIPE is seen before the exit code. */
  flush: () => Promise<void>;
} {
  const controller = new AbortController();
  let exitCode: number = EXIT.outputClosed;
  const onError = (error: NodeJS.ErrnoException) => {
    if (controller.signal.aborted) return;
    if (error.code !== 'EPIPE') exitCode = EXIT.failure;
    controller.abort();
  };
  cli.stdout.on('error', onError);
  cli.stderr.on('error', onError);
  const flushOne = (stream: NodeJS.WritableStream) =>
    new Promise<void>((resolve) => {
      // An empty write completes after every write before it; its callback sees their failure.
      try {
        stream.write('', (error) => {
          if (error) onError(error);
          resolve();
        });
      } catch {
        resolve(); // a stream that throws on write has already reported what it could
      }
    });
  return {
    get closed() {
      return controller.signal.aborted;
    },
    get exitCode() {
      return exitCode;
    },
    signal: controller.signal,
    flush: async () => {
      if (controller.signal.aborted) return;
      await Promise.all([flushOne(cli.stdout), flushOne(cli.stderr)]);
    },
  };
}
