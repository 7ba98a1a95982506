/** Structured logs: one JSON object per line on stderr, with the ids of what a line is about. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function jsonLogger(
  options: { level?: LogLevel; write?: (line: string) => void; now?: () => Date } = {},
): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? 'info');
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? (() => new Date());
  const log = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    const record: Record<string, unknown> = {
      time: now().toISOString(),
      level,
      msg: message,
      component: 'manager',
    };
    // Errors become their message and code: never a stack on one line, and never an object that might
    // carry a request (and its secrets) along.
    for (const [key, value] of Object.entries(fields ?? {})) {
      record[key] =
        value instanceof Error
          ? {
              message: value.message,
              ...((value as { code?: unknown }).code === undefined
                ? {}
                : { code: (value as { code?: unknown }).code }),
            }
          : value;
    }
    write(`${JSON.stringify(record)}\n`);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
