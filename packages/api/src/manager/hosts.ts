import { z } from 'zod';
import { BackendInfo, VolumeName } from '../agent.js';
import { HttpUrl, Page, Timestamp, Uuid } from './primitives.js';

/** A registered agent. `status` is what the last contact said; the loops refresh it. */
export const HOST_STATUSES = ['up', 'down', 'unknown'] as const;
export const HostStatus = z.enum(HOST_STATUSES);
export type HostStatus = z.infer<typeof HostStatus>;

export const Host = z.strictObject({
  id: Uuid,
  name: z.string(),
  url: z.string(),
  /** The `agent_id` its job events carry; null until the agent has been reached. */
  agent_id: z.string().nullable(),
  status: HostStatus,
  last_contact_at: Timestamp.nullable(),
  /** Why the last contact failed; null after a good one. */
  last_error: z.string().nullable(),
  backends: z.array(BackendInfo),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type Host = z.infer<typeof Host>;
export const HostPage = Page(Host);

export const RegisterHostRequest = z.strictObject({
  name: VolumeName,
  /** Where the agent listens (`agent serve`), e.g. `http://10.0.0.5:7070`. */
  url: HttpUrl,
  /** The agent's own bearer token, which the manager presents to it; stored encrypted, never returned. */
  token: z.string().min(16).max(4096),
});
export type RegisterHostRequest = z.infer<typeof RegisterHostRequest>;

export const RegisteredHost = z.strictObject({
  host: Host,
  /** The agent-route token the agent must send with its job events (its `manager_token`): shown once. */
  manager_token: z.string().min(1),
});
export type RegisteredHost = z.infer<typeof RegisteredHost>;
