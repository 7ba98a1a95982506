import type { ColumnType, Generated, Selectable } from 'kysely';
import type { NullableTimestamp, Timestamp } from './schema.js';

// Tables of migration 0004 (0006 added the audit log's repeats): console users, their sessions and the audit
// log.

export type UserRole = 'admin' | 'operator' | 'viewer';

export interface AppUserTable {
  id: string;
  name: string;
  role: UserRole;
  password_hash: string;
  password_changed_at: Timestamp;
  created_at: Timestamp;
  last_sign_in_at: NullableTimestamp;
}

export interface UserSessionTable {
  id: string;
  token_hash: Uint8Array;
  user_id: string;
  csrf_token: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  remote: string | null;
}

export type AuditActorKind = 'user' | 'token' | 'agent' | 'anonymous';

export interface AuditLogTable {
  id: string;
  at: Timestamp;
  actor_kind: AuditActorKind;
  actor_id: string | null;
  actor_name: string | null;
  actor_role: string | null;
  action: string;
  method: string;
  path: string;
  /** jsonb: written as a JSON string, read as an object. */
  resource: ColumnType<Record<string, string>, string | undefined, string>;
  outcome: 'ok' | 'error';
  status: number;
  error_code: string | null;
  remote: string | null;
  /** How many calls the row stands for: repeated refusals fold into one row a minute (migration 0006). */
  repeats: Generated<number>;
  /** When the last of those calls came; null for a row of one call. */
  last_at: NullableTimestamp;
}

export interface UserTables {
  app_user: AppUserTable;
  user_session: UserSessionTable;
  audit_log: AuditLogTable;
}

export type AppUserRow = Selectable<AppUserTable>;
export type UserSessionRow = Selectable<UserSessionTable>;
export type AuditLogRow = Selectable<AuditLogTable>;
