import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ManagerClient } from '@stowage/api';
import { ConfigError, type ManagerConfig, parseConfig } from '../../config.js';
import { openDatabase } from '../../db/database.js';
import { migrate } from '../../db/migrate.js';
import { DEMO_VOLUME, startEmbedded } from '../../embedded/start.js';
import { jsonLogger, type Logger } from '../../log.js';
import { startManager } from '../../server.js';
import type { OptionValues } from '../args.js';
import type { COMMANDS } from '../command-specs.js';
import type { CliEnv } from '../context.js';
import { EXIT, UsageError } from '../exit-codes.js';
import { printJson, printLine } from '../output.js';

/**
 * The commands that run a manager rather than talk to one. Loaded only when one of them runs: PGlite, Hono
 * and the engine would slow every client command.
 */
type C = typeof COMMANDS;

function config(cli: CliEnv): ManagerConfig {
  try {
    return parseConfig(cli.env, cli.cwd);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message, { hint: false });
    throw error;
  }
}

function logger(cli: CliEnv, level: ManagerConfig['logLevel']): Logger {
  return jsonLogger({ level, write: (line) => cli.stderr.write(line) });
}

/** Resolves when the run is asked to stop (SIGTERM, SIGINT, or the caller's signal). */
function stopped(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export async function serve(values: OptionValues<C['serve']>, _: string[], cli: CliEnv): Promise<number> {
  const settings = config(cli);
  const manager = await startManager(settings, { logger: logger(cli, settings.logLevel) });
  if (values.json) printJson(cli, { url: manager.url });
  else printLine(cli, `manager listening on ${manager.url}`);
  await stopped(cli.signal);
  await manager.stop();
  return EXIT.ok;
}

/** What `manager start` prints once everything is up. */
export interface StartBanner {
  url: string;
  home: string;
  admin_token_file: string;
  /** The console's sign-in: user `admin`, the password in this file (printed on the start that made it). */
  console_user: string;
  console_password_file: string;
  console_password: string | null;
  recovery_passphrase: string | null;
  recovery_passphrase_file: string | null;
  demo_volume_id: string | null;
  /** Commands to try, with the environment they need when the home or port is not the default. */
  examples: string[];
}

/** `STOWAGE_HOME=… PORT=… ` when the client commands would not find this manager by default. */
export function clientPrefix(home: string, url: string, cwd: string): string {
  const parts: string[] = [];
  if (home !== resolve(cwd, '.stowage')) parts.push(`STOWAGE_HOME=${home}`);
  const port = new URL(url).port;
  if (port !== '8080') parts.push(`PORT=${port}`);
  return parts.map((p) => `${p} `).join('');
}

export function startBannerText(b: StartBanner): string {
  const lines = [
    `Stowage is running at ${b.url}`,
    `  home:        ${b.home}`,
    `  console:     ${b.url}/ (sign in as ${b.console_user}${b.console_password === null ? '' : ` with ${b.console_password}`}; the password is in ${b.console_password_file})`,
    `  admin token: ${b.admin_token_file} (the CLI reads it from there)`,
  ];
  if (b.recovery_passphrase !== null) {
    lines.push(
      '',
      `Recovery passphrase of the local target: ${b.recovery_passphrase}`,
      `  shown once; also kept in ${b.recovery_passphrase_file}. Without it the backups cannot be read once this`,
      '  manager (its database and master key) is gone: keep a copy offline.',
    );
  }
  lines.push('', 'Try:', ...b.examples.map((e) => `  ${e}`));
  lines.push('', 'Ctrl-C stops it; starting again keeps everything.');
  return `${lines.join('\n')}\n`;
}

export async function start(values: OptionValues<C['start']>, _: string[], cli: CliEnv): Promise<number> {
  const settings = config(cli);
  const embedded = await startEmbedded(settings, { logger: logger(cli, settings.logLevel) });
  try {
    const client = new ManagerClient({ baseUrl: embedded.manager.url, token: embedded.adminToken });
    let demo: string | null = null;
    for await (const volume of client.paginate(client.listVolumes, {}, cli.signal)) {
      if (volume.name === DEMO_VOLUME) {
        demo = volume.id;
        break;
      }
    }
    const prefix = clientPrefix(settings.home, embedded.manager.url, cli.cwd);
    const banner: StartBanner = {
      url: embedded.manager.url,
      home: settings.home,
      admin_token_file: join(settings.home, 'admin-token'),
      console_user: embedded.consoleUser.name,
      console_password_file: embedded.consoleUser.passwordFile,
      console_password: embedded.consoleUser.password ?? null,
      recovery_passphrase: embedded.recoveryPassphrase ?? null,
      recovery_passphrase_file: embedded.recoveryPassphraseFile ?? null,
      demo_volume_id: demo,
      examples: [
        `${prefix}npx manager volume list`,
        `${prefix}npx manager backup now ${demo ?? '<volume id>'} --watch`,
      ],
    };
    if (values.json) printJson(cli, banner);
    else cli.stdout.write(startBannerText(banner));
    await stopped(cli.signal);
  } finally {
    await embedded.stop();
  }
  return EXIT.ok;
}

export async function migrateCommand(
  values: OptionValues<C['migrate']>,
  _: string[],
  cli: CliEnv,
): Promise<number> {
  const settings = config(cli);
  if (settings.databaseUrl === undefined) mkdirSync(settings.home, { recursive: true, mode: 0o700 });
  const database = await openDatabase(
    settings.databaseUrl === undefined ? { dataDir: settings.pgliteDir } : { url: settings.databaseUrl },
  );
  try {
    const report = await migrate(database);
    if (values.json) printJson(cli, { applied: report.applied, already_applied: report.alreadyApplied });
    else if (report.applied.length === 0) {
      printLine(
        cli,
        `${database.description}: up to date (${report.alreadyApplied} migrations applied before)`,
      );
    } else {
      printLine(cli, `${database.description}: applied ${report.applied.join(', ')}`);
    }
  } finally {
    await database.close();
  }
  return EXIT.ok;
}
