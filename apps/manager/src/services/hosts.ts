import { randomUUID } from 'node:crypto';
import { ApiError } from '@stowage/api';
import { AgentClient } from '../agents/agent-client.js';
import { uniqueViolation } from '../db/conn.js';
import { getHost, insertHost, recordHostContact } from '../db/hosts.js';
import type { HostRow } from '../db/schema.js';
import { insertToken } from '../db/tokens.js';
import { type SecretBox, secretPlace } from '../secrets/envelope.js';
import { generateToken, hashToken } from '../secrets/tokens.js';
import type { ManagerContext } from './context.js';

/** The token the manager presents to a host's agent, unsealed for one call. */
export function agentToken(secrets: SecretBox, host: HostRow): string {
  return secrets.openText(host.agent_token, secretPlace('host', 'agent_token', host.id));
}

/** A client for a host's agent, from its row (the default `agentFor` of the context). */
export function agentClientFor(secrets: SecretBox, host: HostRow, fetchImpl?: typeof fetch): AgentClient {
  return new AgentClient({
    url: host.url,
    token: agentToken(secrets, host),
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
  });
}

/**
 * Registers an agent: the URL and token are checked by calling it (its backends are what it offers), then
 * the host is stored with its token sealed, and an agent-route token is made for the agent's job events —
 * returned once, like every token.
 */
export async function registerHost(
  ctx: ManagerContext,
  input: { name: string; url: string; token: string; managerToken?: string },
): Promise<{ host: HostRow; managerToken: string }> {
  const probe = new AgentClient({ url: input.url, token: input.token });
  const backends = await probe.backends();
  const id = randomUUID();
  const now = ctx.now();
  // The embedded supervisor starts its agent with a token it chose, then registers it with that token.
  const managerToken = input.managerToken ?? generateToken();
  try {
    const host = await ctx.db.transaction().execute(async (trx) => {
      const row = await insertHost(trx, {
        id,
        name: input.name,
        url: probe.url,
        agentToken: ctx.secrets.sealText(input.token, secretPlace('host', 'agent_token', id)),
        backends,
        now,
      });
      await insertToken(trx, {
        id: randomUUID(),
        name: `agent ${input.name}`,
        role: 'agent',
        hostId: id,
        hash: hashToken(managerToken),
      });
      return row;
    });
    ctx.logger.info('host registered', {
      host_id: id,
      url: probe.url,
      backends: backends.map((b) => b.backend),
    });
    return { host, managerToken };
  } catch (error) {
    if (uniqueViolation(error) !== undefined) {
      throw new ApiError('conflict', `a host named ${JSON.stringify(input.name)} exists`);
    }
    throw error;
  }
}

export async function requireHost(ctx: ManagerContext, id: string): Promise<HostRow> {
  const host = await getHost(ctx.db, id);
  if (!host) throw new ApiError('not_found', `no host ${id}`);
  return host;
}

/** Calls the host's agent and records how that went on the host row (status, last contact, last error). */
export async function callAgent<T>(
  ctx: ManagerContext,
  host: HostRow,
  call: (agent: AgentClient) => Promise<T>,
): Promise<T> {
  try {
    const value = await call(ctx.agentFor(host));
    await recordHostContact(ctx.db, host.id, { ok: true, now: ctx.now() });
    return value;
  } catch (error) {
    if (error instanceof ApiError && error.code === 'unavailable') {
      await recordHostContact(ctx.db, host.id, { ok: false, now: ctx.now(), error: error.message });
      ctx.logger.warn('agent unreachable', { host_id: host.id, error });
    } else {
      await recordHostContact(ctx.db, host.id, { ok: true, now: ctx.now() });
    }
    throw error;
  }
}
