import { pruneAuditLog } from '../db/audit.js';
import type { ManagerContext } from '../services/context.js';

/** How often the audit loop deletes rows past MANAGER_AUDIT_RETENTION_DAYS. */
export const AUDIT_PRUNE_EVERY_MS = 3_600_000;

/**
 * One pass of the audit loop: deletes the audit rows older than `retentionMs` (in batches; a backlog of
 * more than a pass's million rows goes on in the next pass). Any replica may run it; two at once delete
 * each row once.
 */
export async function pruneAuditOnce(ctx: ManagerContext, retentionMs: number): Promise<{ deleted: number }> {
  const before = new Date(ctx.now().getTime() - retentionMs);
  const deleted = await pruneAuditLog(ctx.db, before);
  if (deleted > 0)
    ctx.logger.info('audit rows past retention deleted', { deleted, before: before.toISOString() });
  return { deleted };
}
