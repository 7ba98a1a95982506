import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManagerConfig } from '../config.js';
import { getHostByName, recordHostContact, updateHostUrl } from '../db/hosts.js';
import { findActiveToken, insertToken } from '../db/tokens.js';
import { getUserByName } from '../db/users.js';
import type { Logger } from '../log.js';
import { generatePassword } from '../secrets/passwords.js';
import { readOrCreateSecretFile } from '../secrets/secret-files.js';
import { generateToken, hashToken } from '../secrets/tokens.js';
import { type ManagerOptions, type RunningManager, startManager } from '../server.js';
import { registerHost } from '../services/hosts.js';
import { rebuildIndex } from '../services/recovery.js';
import { createUser } from '../services/users.js';
import { createVolume } from '../services/volumes.js';
import { createTarget, importTarget } from '../targets/targets.js';
import { defaultAgentBin, type LocalAgent, superviseLocalAgent } from './local-agent.js';

export const LOCAL_HOST = 'local';
export const LOCAL_TARGET = 'local';
export const DEMO_VOLUME = 'demo';
const DEMO_SIZE = 64 * 1024 * 1024;

export interface EmbeddedOptions extends ManagerOptions {
  readonly agentBin?: string;
  readonly agentNodeArgs?: readonly string[];
  readonly agentStderr?: (text: string) => void;
  /** Skip the demo volume (tests that make their own). */
  readonly demo?: boolean;
}

export interface ConsoleUser {
  readonly name: string;
  /** Holds the password it was made with (a later `manager user passwd` does not change the file). */
  readonly passwordFile: string;
  readonly password: string | undefined;
}

export interface RunningEmbedded {
  readonly manager: RunningManager;
  readonly agent: LocalAgent;
  readonly adminToken: string;
  /** The console's first user, `admin`; its password is set on the start that created it. */
  readonly consoleUser: ConsoleUser;
  /** Set on the start that created the local target (shown once, also kept in the home). */
  readonly recoveryPassphrase: string | undefined;
  /** Where that passphrase was kept (`recovery-passphrase`, or beside an older one that file still holds). */
  readonly recoveryPassphraseFile: string | undefined;
  stop(): Promise<void>;
}

/**
 * `npm start`: the manager on PGlite under `$STOWAGE_HOME`, one local `agent serve` it supervises (volumes
 * under `volumes/`, repositories under `targets/`), a filesystem target and a demo volume holding real data,
 * and an admin token in `admin-token`. Everything is created once and found again on the next start.
 */
export async function startEmbedded(
  config: ManagerConfig,
  options: EmbeddedOptions,
): Promise<RunningEmbedded> {
  const { logger } = options;
  const home = config.home;
  const paths = {
    agentState: join(home, 'agent'),
    volumes: join(home, 'volumes'),
    targets: join(home, 'targets'),
    adminToken: join(home, 'admin-token'),
    adminPassword: join(home, 'admin-password'),
    agentToken: join(home, 'agent', 'agent.token'),
    managerToken: join(home, 'agent', 'manager.token'),
    passphrase: join(home, 'recovery-passphrase'),
  };
  for (const dir of [paths.agentState, paths.volumes, paths.targets])
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  const manager = await startManager(config, options);
  const { ctx } = manager;
  let agent: LocalAgent | undefined;
  try {
    const adminToken = await ensureAdminToken(manager, paths.adminToken);
    const consoleUser = await ensureAdminUser(manager, paths.adminPassword);
    const agentToken = readOrCreateSecretFile(paths.agentToken, generateToken).value;
    const managerToken = readOrCreateSecretFile(paths.managerToken, generateToken).value;
    agent = superviseLocalAgent({
      bin: options.agentBin ?? defaultAgentBin(),
      ...(options.agentNodeArgs ? { nodeArgs: options.agentNodeArgs } : {}),
      ...(options.agentStderr ? { onStderr: options.agentStderr } : {}),
      logger,
      env: {
        AGENT_TOKEN: agentToken,
        AGENT_ID: LOCAL_HOST,
        AGENT_STATE_DIR: paths.agentState,
        AGENT_LOCAL_FILE_ROOTS: paths.volumes,
        AGENT_REPOSITORY_ROOTS: paths.targets,
        AGENT_MANAGER_URL: manager.url,
        AGENT_MANAGER_TOKEN: managerToken,
        AGENT_LOG_LEVEL: config.logLevel,
      },
      onListening: async (url) => {
        const existing = await getHostByName(ctx.db, LOCAL_HOST);
        if (existing) {
          await updateHostUrl(ctx.db, existing.id, url, ctx.now());
          await recordHostContact(ctx.db, existing.id, { ok: true, now: ctx.now() });
        } else {
          await registerHost(ctx, { name: LOCAL_HOST, url, token: agentToken, managerToken });
        }
      },
    });
    await agent.ready;
    const created = await ensureLocalTarget(manager, paths.targets, paths.passphrase);
    if (options.demo !== false) await ensureDemoVolume(manager, logger);
    const running = agent;
    return {
      manager,
      agent: running,
      adminToken,
      consoleUser,
      recoveryPassphrase: created?.passphrase,
      recoveryPassphraseFile: created?.file,
      async stop() {
        await running.stop();
        await manager.stop();
      },
    };
  } catch (error) {
    await agent?.stop(5_000);
    await manager.stop();
    throw error;
  }
}

/** The admin token of the home: made on the first start; put back if the database was lost. */
async function ensureAdminToken(manager: RunningManager, path: string): Promise<string> {
  const { value } = readOrCreateSecretFile(path, generateToken);
  const { db } = manager.ctx;
  if (!(await findActiveToken(db, hashToken(value)))) {
    await insertToken(db, {
      id: randomUUID(),
      name: 'embedded admin',
      role: 'admin',
      hostId: null,
      hash: hashToken(value),
    });
  }
  return value;
}

/**
 * The console's user `admin`, with a generated password kept in `admin-password` (0600): made on the first
 * start, and made again from that file if the database was lost.
 */
async function ensureAdminUser(manager: RunningManager, path: string): Promise<ConsoleUser> {
  const name = 'admin';
  if (await getUserByName(manager.ctx.db, name)) return { name, passwordFile: path, password: undefined };
  const { value } = readOrCreateSecretFile(path, generatePassword);
  await createUser(manager.ctx, { name, role: 'admin', password: value });
  return { name, passwordFile: path, password: value };
}

/**
 * The filesystem target `local` under `targets/`. A repository left there by a lost database (the `db/`
 * directory deleted) is imported with the passphrase kept beside it and its backups recorded again (the
 * index rebuild), so `npm start` recovers its own data. Only when that cannot be done (no passphrase file,
 * or another's) is a fresh directory taken beside it — and the kept passphrase is never written over.
 */
async function ensureLocalTarget(
  manager: RunningManager,
  root: string,
  passphraseFile: string,
): Promise<{ passphrase: string; file: string } | undefined> {
  const { ctx } = manager;
  const existing = await ctx.db
    .selectFrom('backup_target')
    .select('id')
    .where('name', '=', LOCAL_TARGET)
    .executeTakeFirst();
  if (existing) return undefined;
  const first = join(root, LOCAL_TARGET);
  if (existsSync(join(first, 'config')) && existsSync(passphraseFile)) {
    try {
      const row = await importTarget(ctx, {
        name: LOCAL_TARGET,
        location: { kind: 'filesystem', path: first },
        credentials: undefined,
        passphrase: readFileSync(passphraseFile, 'utf8').trim(),
        settings: {},
      });
      let startAfter: string | undefined;
      let recorded = 0;
      do {
        const batch = await rebuildIndex(ctx, row.id, {
          startAfter,
          limit: 2000,
          volumeBackend: 'local-file',
        });
        recorded += batch.inserted;
        startAfter = batch.next_start_after ?? undefined;
      } while (startAfter !== undefined);
      ctx.logger.warn('local target imported from its directory (the database was new)', {
        path: first,
        backups_recorded: recorded,
      });
      return undefined;
    } catch (error) {
      ctx.logger.error('the local target directory could not be imported; a new one is made beside it', {
        path: first,
        error,
      });
    }
  }
  let dir = first;
  for (let n = 2; existsSync(join(dir, 'config')); n++) dir = join(root, `${LOCAL_TARGET}-${n}`);
  const { recoveryPassphrase } = await createTarget(ctx, {
    name: LOCAL_TARGET,
    location: { kind: 'filesystem', path: dir },
    credentials: undefined,
    passphrase: undefined,
    avgChunkSize: undefined,
    settings: {},
  });
  // The passphrase of an older repository may be in the file: the new one goes beside it, never over it.
  let file = passphraseFile;
  for (let n = 2; existsSync(file); n++) file = `${passphraseFile}-${n}`;
  if (recoveryPassphrase !== null) writeFileSync(file, `${recoveryPassphrase}\n`, { mode: 0o600 });
  ctx.logger.info('local target created', { path: dir, recovery_passphrase_file: file });
  return recoveryPassphrase === null ? undefined : { passphrase: recoveryPassphrase, file };
}

/** A 64 MiB volume on the local agent holding real bytes (the start of the node binary) and free space. */
async function ensureDemoVolume(manager: RunningManager, logger: Logger): Promise<void> {
  const { ctx } = manager;
  const found = await ctx.db
    .selectFrom('volume')
    .select('id')
    .where('name', '=', DEMO_VOLUME)
    .executeTakeFirst();
  if (found) return;
  const host = await getHostByName(ctx.db, LOCAL_HOST);
  const target = await ctx.db
    .selectFrom('backup_target')
    .select('id')
    .where('name', '=', LOCAL_TARGET)
    .executeTakeFirst();
  if (!host || !target) return;
  const volume = await createVolume(ctx, {
    name: DEMO_VOLUME,
    hostId: host.id,
    backend: 'local-file',
    size: DEMO_SIZE,
    targetId: target.id,
    // Idle, and the home may be on a filesystem without reflinks: a copy is a true snapshot of it.
    snapshot: 'copy',
  });
  const source = await open(process.execPath, 'r');
  const image = await open(volume.locator!, 'r+');
  try {
    const buffer = Buffer.alloc(1024 * 1024);
    for (let offset = 0; offset < 24 * 1024 * 1024; offset += buffer.length) {
      const { bytesRead } = await source.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) break;
      await image.write(buffer, 0, bytesRead, offset);
    }
    await image.sync();
  } finally {
    await source.close();
    await image.close();
  }
  logger.info('demo volume created', { volume_id: volume.id, locator: volume.locator });
}
