import { z } from 'zod';
import { Label, Page, Timestamp, Uuid } from './primitives.js';

/**
 * API tokens: 256-bit random bearer strings the manager keeps only as hashes, so the secret is in exactly one
 * answer (`CreatedToken`, or `RegisteredHost.manager_token` for an agent's). `agent` tokens belong to a host
 * and reach only the agent routes; they are never created through `POST /v1/tokens`.
 */
export const TOKEN_ROLES = ['admin', 'operator', 'viewer', 'agent'] as const;
export const TokenRole = z.enum(TOKEN_ROLES);
export type TokenRole = z.infer<typeof TokenRole>;

export const ApiToken = z.strictObject({
  id: Uuid,
  name: z.string(),
  role: TokenRole,
  /** The host an `agent` token belongs to; null for people's tokens. */
  host_id: Uuid.nullable(),
  created_at: Timestamp,
  last_used_at: Timestamp.nullable(),
  revoked_at: Timestamp.nullable(),
});
export type ApiToken = z.infer<typeof ApiToken>;
export const ApiTokenPage = Page(ApiToken);

export const CreateTokenRequest = z.strictObject({
  name: Label,
  role: z.enum(['admin', 'operator', 'viewer']).default('admin'),
});
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;

export const CreatedToken = z.strictObject({
  token: ApiToken,
  /** The bearer token itself: shown once, never retrievable again. */
  secret: z.string().min(1),
});
export type CreatedToken = z.infer<typeof CreatedToken>;
