import { z } from 'zod';
import { Page, Timestamp, Uuid } from './primitives.js';

/**
 * People who sign in to the console (docs/manager.md#users-roles-and-the-audit-log). Passwords are kept only as scrypt hashes; a
 * session is an HttpOnly cookie plus a CSRF token that every state-changing request of that session carries
 * in `X-CSRF-Token` (bearer tokens need none: a browser never sends them on its own).
 */
export const USER_ROLES = ['admin', 'operator', 'viewer'] as const;
export const UserRole = z.enum(USER_ROLES);
export type UserRole = z.infer<typeof UserRole>;

/** Sign-in names: lower-case letters, digits and `._-`, as in Unix user names; 1–64 characters. */
export const UserName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    'must be 1–64 of a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
  );

/** At least 12 characters (NIST SP 800-63B's floor for a chosen password is 8; we ask a little more). */
export const NewPassword = z
  .string()
  .min(12, 'must be at least 12 characters')
  .max(1024, 'must be at most 1024 characters');

export const User = z.strictObject({
  id: Uuid,
  name: z.string(),
  role: UserRole,
  created_at: Timestamp,
  last_sign_in_at: Timestamp.nullable(),
});
export type User = z.infer<typeof User>;
export const UserPage = Page(User);

export const CreateUserRequest = z.strictObject({
  name: UserName,
  role: UserRole,
  password: NewPassword,
});
export type CreateUserRequest = z.infer<typeof CreateUserRequest>;

export const UpdateUserRequest = z
  .strictObject({ role: UserRole.optional(), password: NewPassword.optional() })
  .refine((body) => body.role !== undefined || body.password !== undefined, 'give a role or a password');
export type UpdateUserRequest = z.infer<typeof UpdateUserRequest>;

export const SignInRequest = z.strictObject({
  name: z.string().min(1).max(64),
  password: z.string().min(1).max(1024),
});
export type SignInRequest = z.infer<typeof SignInRequest>;

/** The signed-in user and the session's CSRF token (the cookie itself is never readable by scripts). */
export const Session = z.strictObject({
  user: User,
  csrf_token: z.string().min(1),
  expires_at: Timestamp,
});
export type Session = z.infer<typeof Session>;

/** Who made a call, as the audit log names them. */
export const AuditActor = z.strictObject({
  kind: z.enum(['user', 'token', 'agent', 'anonymous']),
  /** The user's or token's id; null for an anonymous caller (a failed sign-in). */
  id: Uuid.nullable(),
  /** The user's name or the token's label (a failed sign-in: the name that was tried). */
  name: z.string().nullable(),
  role: z.string().nullable(),
});
export type AuditActor = z.infer<typeof AuditActor>;

/** One state-changing call: who, what, on which resource, when, and how it ended. Never a secret. */
export const AuditEntry = z.strictObject({
  id: Uuid,
  at: Timestamp,
  actor: AuditActor,
  /** The route's operationId, e.g. `deleteBackup`. */
  action: z.string(),
  method: z.string(),
  path: z.string(),
  /** The resource the call named (the path's ids), e.g. `{ "id": "…" }`. */
  resource: z.record(z.string(), z.string()),
  outcome: z.enum(['ok', 'error']),
  status: z.number().int(),
  /** The error's code when the outcome is `error`. */
  error_code: z.string().nullable(),
  /** The source address the request came from. */
  remote: z.string().nullable(),
  /**
   * How many calls the entry stands for: the same refusal (401 without a valid credential, 429 while
   * sign-ins are held) from the same address within a minute of `at` folds into one entry.
   */
  repeats: z.number().int().min(1),
  /** When the last of those calls came; null for an entry of one call. */
  last_at: Timestamp.nullable(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;
export const AuditPage = Page(AuditEntry);

export const AuditListQuery = z.strictObject({
  limit: z.coerce.number<number>().int().min(1).max(500).default(100),
  cursor: z.string().min(1).max(512).optional(),
  /** Only calls of this action (operationId). */
  action: z.string().min(1).max(100).optional(),
  /** Only calls by this user or token name. */
  actor: z.string().min(1).max(100).optional(),
  outcome: z.enum(['ok', 'error']).optional(),
});
export type AuditListQuery = z.infer<typeof AuditListQuery>;
