import type { CliEnv } from './context.js';
import { EXIT } from './exit-codes.js';

/**
 * Characters a terminal may act on rather than show: C0 controls, DEL, C1 controls, the Unicode line
 * separators, bidirectional overrides and isolates, lone surrogates; and the backslash, so an escaped string
 * reads back unambiguously. Names and messages come from the manager, which took them from users and agents.
 */
const UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is being escaped
  /[\u0000-\u001f\u007f-\u009f\\\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\p{Cs}]/gu;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

/** A string as it may be printed in human output, with what is listed above escaped as JavaScript writes it. */
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
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** One line of JSON with nothing in it a terminal would act on. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value).replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function printJson(cli: CliEnv, value: unknown): void {
  cli.stdout.write(`${jsonText(value)}\n`);
}

export function printLine(cli: CliEnv, text: string): void {
  cli.stdout.write(`${text}\n`);
}

/** A note for people (what to do next, that a list goes on): on stderr, so stdout stays the answer. */
export function printNote(cli: CliEnv, text: string): void {
  cli.stderr.write(`${text}\n`);
}

export type Cell = string | number | boolean | null | undefined;

/** Rows under a header, columns aligned, every cell escaped; `-` for a missing value. */
export function formatTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = [header.map(String), ...rows.map((row) => row.map(cellText))];
  const widths = header.map((_, i) => Math.max(...text.map((row) => row[i]?.length ?? 0)));
  return `${text
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

/** `key: value` lines, keys aligned, for one resource. */
export function formatFields(fields: readonly (readonly [string, Cell])[]): string {
  const width = Math.max(...fields.map(([key]) => key.length)) + 1;
  return `${fields.map(([key, value]) => `${`${key}:`.padEnd(width)} ${cellText(value)}`).join('\n')}\n`;
}

function cellText(cell: Cell): string {
  if (cell === null || cell === undefined || cell === '') return '-';
  return printable(String(cell));
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** A timestamp as `2025-01-31 14:05:09Z`: the API's ISO string, shorter and still unambiguous. */
export function formatTime(iso: string | null): string {
  if (iso === null) return '-';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/**
 * Watches stdout and stderr for their reader going away (EPIPE: `manager volume list | head -1`): the command
 * is cancelled, nothing more is printed, and the exit code is 141 instead of a crash with a stack trace.
 */
export function watchOutput(cli: Pick<CliEnv, 'stdout' | 'stderr'>): {
  readonly closed: boolean;
  readonly exitCode: number;
  signal: AbortSignal;
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
      try {
        // An empty write completes after every write before it; its callback sees their failure.
        stream.write('', (error) => {
          if (error) onError(error);
          resolve();
        });
      } catch {
        resolve();
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
