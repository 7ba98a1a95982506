import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagerClient } from '@stowage/api';
import { parseConfig } from '../config.js';
import type { Db } from '../db/conn.js';
import { insertToken, type TokenRole } from '../db/tokens.js';
import { type Logger, silentLogger } from '../log.js';
import { generateToken, hashToken } from '../secrets/tokens.js';
import { type RunningManager, startManager } from '../server.js';
import { TEST_KDF } from './embedded.js';

/**
 * A fresh API token of `role` (an agent's is bound to `hostId`), written straight into the database: what
 * `manager token create` does. Returns its secret.
 */
export async function issueToken(
  db: Db,
  role: TokenRole,
  name: string = role,
  hostId: string | null = null,
): Promise<string> {
  const secret = generateToken();
  await insertToken(db, { id: randomUUID(), name, role, hostId, hash: hashToken(secret) });
  return secret;
}

export interface TestManager {
  readonly home: string;
  readonly manager: RunningManager;
  /** The admin token's secret, for CLIs run with MANAGER_TOKEN. */
  readonly adminToken: string;
  /** A client holding the admin token. */
  readonly admin: ManagerClient;
  /** A client with a new token of `role`. */
  clientFor(role: TokenRole, name?: string): Promise<ManagerClient>;
  stop(): Promise<void>;
}

export interface TestManagerOptions {
  /** Names the temporary home: stowage-<prefix>-XXXXXX. */
  readonly prefix?: string;
  /** Added to the configuration; a function gets the home, for paths inside it. */
  readonly env?: Record<string, string> | ((home: string) => Record<string, string>);
  readonly logger?: Logger;
  /** Check every answer against its schema (the default). */
  readonly validateResponses?: boolean;
}

/**
 * A manager alone (no agent) on embedded PGlite in a temporary home, with an admin token: the setup most
 * API and CLI tests share.
 */
export async function startTestManager(options: TestManagerOptions = {}): Promise<TestManager> {
  const home = mkdtempSync(join(tmpdir(), `stowage-${options.prefix ?? 'manager'}-`));
  try {
    const env = typeof options.env === 'function' ? options.env(home) : options.env;
    const manager = await startManager(parseConfig({ STOWAGE_HOME: home, PORT: '0', ...env }), {
      logger: options.logger ?? silentLogger,
      validateResponses: options.validateResponses ?? true,
      kdf: TEST_KDF,
    });
    const adminToken = await issueToken(manager.ctx.db, 'admin', 'test admin');
    const clientFor = async (role: TokenRole, name?: string) =>
      new ManagerClient({ baseUrl: manager.url, token: await issueToken(manager.ctx.db, role, name) });
    return {
      home,
      manager,
      adminToken,
      admin: new ManagerClient({ baseUrl: manager.url, token: adminToken }),
      clientFor,
      async stop() {
        await manager.stop();
        rmSync(home, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(home, { recursive: true, force: true });
    throw error;
  }
}
