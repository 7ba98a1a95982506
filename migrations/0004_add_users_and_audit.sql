-- Console users, their sign-in sessions and the audit log (docs/manager.md#users-roles-and-the-audit-log). Forward-only, like every
-- migration.

CREATE TABLE app_user (
  id uuid PRIMARY KEY,
  -- Unix-style sign-in names (packages/api UserName); unique as written, already lower-case.
  name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  role text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
  -- `scrypt$N$r$p$salt$hash` (base64url): the parameters travel with the hash, so they can be raised later.
  password_hash text NOT NULL,
  password_changed_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  last_sign_in_at timestamptz
);
CREATE INDEX app_user_created ON app_user (created_at DESC, id DESC);

-- A session is the SHA-256 of the random cookie value (the cookie itself is never stored) and the CSRF
-- token its state-changing requests must carry. Absolute expiry; removing the user ends them.
CREATE TABLE user_session (
  id uuid PRIMARY KEY,
  token_hash bytea NOT NULL UNIQUE,
  user_id uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
  csrf_token text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  remote text
);
CREATE INDEX user_session_user ON user_session (user_id);
CREATE INDEX user_session_expiry ON user_session (expires_at);

-- Every state-changing call: who, what, on which resource, when, how it ended. Never a body, never a secret.
CREATE TABLE audit_log (
  id uuid PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor_kind text NOT NULL CHECK (actor_kind IN ('user', 'token', 'agent', 'anonymous')),
  actor_id uuid,
  actor_name text,
  actor_role text,
  action text NOT NULL,
  method text NOT NULL,
  path text NOT NULL,
  resource jsonb NOT NULL DEFAULT '{}',
  outcome text NOT NULL CHECK (outcome IN ('ok', 'error')),
  status integer NOT NULL,
  error_code text,
  remote text
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
-- The sign-in rate limit counts recent failures by name and by address (shared by every replica).
CREATE INDEX audit_log_failed_sign_in_name ON audit_log (actor_name, at)
  WHERE action = 'signIn' AND outcome = 'error';
CREATE INDEX audit_log_failed_sign_in_remote ON audit_log (remote, at)
  WHERE action = 'signIn' AND outcome = 'error';
