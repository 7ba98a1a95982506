import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { LOG_LEVELS } from './log.js';

/**
 * The manager's settings, from the environment, parsed once in `main` (never at import). Embedded defaults
 * everywhere: with nothing set, everything lives under `./.stowage`.
 */
const Env = z.object({
  STOWAGE_HOME: z.string().min(1).default('.stowage'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  MANAGER_MASTER_KEY_FILE: z.string().min(1).optional(),
  /** The URL agents and clients reach this manager at, when it differs from the listening address. */
  MANAGER_PUBLIC_URL: z.url().optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  /** A job silent this long has lost its agent (the reconciler's threshold). */
  MANAGER_STALE_JOB_MINUTES: z.coerce
    .number()
    .positive()
    .max(7 * 24 * 60)
    .default(10),
  /**
   * The tick of the scheduler, reconciler and GC loops, instead of their own (15 s, 60 s, 60 s): for tests
   * of replicas, which cannot wait minutes for two schedulers to tick. Unset in production.
   */
  MANAGER_LOOP_INTERVAL_MS: z.coerce.number().int().min(50).max(3_600_000).optional(),
  /** The console's static export; unset: the one built into apps/console/out beside this package. */
  MANAGER_CONSOLE_DIR: z.string().min(1).optional(),
  /** How long a console sign-in lasts. */
  MANAGER_SESSION_HOURS: z.coerce
    .number()
    .positive()
    .max(30 * 24)
    .default(12),
  /** How long audit rows are kept; 0 keeps them for ever. */
  MANAGER_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(400),
});

export interface ManagerConfig {
  readonly home: string;
  readonly port: number;
  readonly host: string;
  /** Real PostgreSQL; undefined: embedded PGlite under `home`. */
  readonly databaseUrl: string | undefined;
  readonly pgliteDir: string;
  readonly masterKeyFile: string;
  /** Generate the master key when missing: only in embedded mode, where nothing else could hold it. */
  readonly createMasterKey: boolean;
  readonly publicUrl: string | undefined;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly staleJobMs: number;
  /** The loops' tick when MANAGER_LOOP_INTERVAL_MS overrides their own; undefined: their defaults. */
  readonly loopIntervalMs?: number | undefined;
  /** Where the console's files are; undefined: the default build location (console-assets.ts). */
  readonly consoleDir?: string | undefined;
  readonly sessionMs: number;
  /** Audit rows older than this are deleted; undefined keeps them. */
  readonly auditRetentionMs?: number | undefined;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function parseConfig(env: NodeJS.ProcessEnv, cwd: string = process.cwd()): ManagerConfig {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${issue.path.join('.')}: ${issue.message}`);
  }
  const e = parsed.data;
  const home = isAbsolute(e.STOWAGE_HOME) ? e.STOWAGE_HOME : resolve(cwd, e.STOWAGE_HOME);
  const embedded = e.DATABASE_URL === undefined;
  if (!embedded && e.MANAGER_MASTER_KEY_FILE === undefined) {
    throw new ConfigError(
      'MANAGER_MASTER_KEY_FILE is required with DATABASE_URL: the key that seals the secrets must not be generated beside a shared database',
    );
  }
  return {
    home,
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    pgliteDir: join(home, 'db'),
    masterKeyFile:
      e.MANAGER_MASTER_KEY_FILE === undefined
        ? join(home, 'master.key')
        : resolve(cwd, e.MANAGER_MASTER_KEY_FILE),
    createMasterKey: embedded,
    publicUrl: e.MANAGER_PUBLIC_URL,
    logLevel: e.LOG_LEVEL,
    staleJobMs: e.MANAGER_STALE_JOB_MINUTES * 60_000,
    loopIntervalMs: e.MANAGER_LOOP_INTERVAL_MS,
    consoleDir: e.MANAGER_CONSOLE_DIR === undefined ? undefined : resolve(cwd, e.MANAGER_CONSOLE_DIR),
    sessionMs: e.MANAGER_SESSION_HOURS * 3_600_000,
    auditRetentionMs:
      e.MANAGER_AUDIT_RETENTION_DAYS === 0 ? undefined : e.MANAGER_AUDIT_RETENTION_DAYS * 86_400_000,
  };
}
