-- Repeated refusals in the audit log (docs/manager.md#users-roles-and-the-audit-log): a caller refused again
-- and again (401 without a valid credential, 429 while its sign-ins are held) adds to one row a minute rather
-- than a row a request, so a flood cannot fill the database. `repeats` counts the calls a row stands for,
-- `last_at` is when the last of them came (null for a row of one call). Rows older than
-- MANAGER_AUDIT_RETENTION_DAYS are deleted by the manager's audit loop.
ALTER TABLE audit_log ADD COLUMN repeats integer NOT NULL DEFAULT 1 CHECK (repeats >= 1);
ALTER TABLE audit_log ADD COLUMN last_at timestamptz;
-- The fold looks for the newest refusal of the same kind from the same address in the last minute.
CREATE INDEX audit_log_refusals ON audit_log (remote, action, at)
  WHERE outcome = 'error' AND status IN (401, 429);
