import type { KdfParams } from '@stowage/format';
import type { Kysely } from 'kysely';
import type { AgentClient } from '../agents/agent-client.js';
import type { Database, HostRow } from '../db/schema.js';
import type { Logger } from '../log.js';
import type { SecretBox } from '../secrets/envelope.js';

/**
 * What the services need, passed in (never imported): the database, the sealed secrets, the clock, how to
 * reach a host's agent and where logs go. Tests build one around a real database and a fake clock.
 */
export interface ManagerContext {
  readonly db: Kysely<Database>;
  readonly secrets: SecretBox;
  readonly now: () => Date;
  readonly agentFor: (host: HostRow) => AgentClient;
  readonly logger: Logger;
  /** Change notifications for live streams (SSE): a job's id after each change to its row. */
  readonly jobChanged: (jobId: string) => void;
  /** Told of each job that finished here (metrics). */
  readonly jobFinished?: (kind: string, state: string, seconds: number) => void;
  /** The key file's scrypt cost for new targets (tests use a cheap one). */
  readonly kdf?: KdfParams;
}
