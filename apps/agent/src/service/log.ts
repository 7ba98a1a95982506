import type { Logger } from './contracts.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface JsonLoggerOptions {
  level?: LogLevel;
  /** Where each line goes (default: stderr, so stdout stays free for a command's own output). */
  write?: (line: string) => void;
  now?: () => Date;
  /** Fields on every line, e.g. `{ agent_id }`. */
  base?: Record<string, unknown>;
}

/**
 * One JSON object per line: `{"time":…,"level":…,"msg":…, …fields}`. Errors in fields are flattened to their
 * message and code, never their stack (that goes to debug), so a log line stays one line.
 */
export function createJsonLogger(options: JsonLoggerOptions = {}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? 'info');
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? (() => new Date());
  const base = options.base ?? {};
  const log = (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    const record: Record<string, unknown> = { time: now().toISOString(), level, msg: message, ...base };
    if (fields !== undefined) {
      for (const [key, value] of Object.entries(fields)) record[key] = plain(value);
    }
    write(`${JSON.stringify(record)}\n`);
  };
  return {
    debug: (message, fields) => log('debug', message, fields),
    info: (message, fields) => log('info', message, fields),
    warn: (message, fields) => log('warn', message, fields),
    error: (message, fields) => log('error', message, fields),
  };
}

function plain(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown; kind?: unknown }).code ?? (value as { kind?: unknown }).kind;
    return code === undefined ? { message: value.message } : { message: value.message, code };
  }
  return value;
}

/** A logger that drops everything (tests, library defaults). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
