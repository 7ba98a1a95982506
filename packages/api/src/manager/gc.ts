import { z } from 'zod';
import { ApiErrorBody } from '../errors.js';
import { Bytes, ListQuery, Page, Timestamp, Uuid } from './primitives.js';

/**
 * One garbage collection of a target (docs/operations.md#gc): a mark of everything committed manifests name,
 * then — unless a dry run — a sweep of what nothing names and is older than `cutoff`. Chunks live in packs
 * (docs/format.md §5), so what is counted and deleted are packs, manifest segments and index objects.
 */
export const GC_RUN_STATES = ['running', 'succeeded', 'failed'] as const;
export const GC_RUN_PHASES = ['mark', 'list', 'wait', 'remark', 'sweep', 'done'] as const;

export const GcRun = z.strictObject({
  id: Uuid,
  backup_target_id: Uuid,
  state: z.enum(GC_RUN_STATES),
  /** mark → list → wait (for running backups; new ones wait) → remark (what committed meanwhile) → sweep. */
  phase: z.enum(GC_RUN_PHASES),
  trigger: z.enum(['schedule', 'api']),
  /** Planned only: the counts say what a sweep would delete; nothing was. */
  dry_run: z.boolean(),
  grace_seconds: z.number().int().min(0),
  /** Objects last modified at or after this are kept, whatever names them. */
  cutoff: Timestamp,
  started_at: Timestamp,
  finished_at: Timestamp.nullable(),
  duration_seconds: z.number().min(0).nullable(),
  /** Committed manifests marked. */
  manifests: Bytes,
  packs_listed: Bytes,
  packs_live: Bytes,
  packs_deleted: Bytes,
  segments_listed: Bytes,
  segments_live: Bytes,
  segments_deleted: Bytes,
  index_objects_listed: Bytes,
  index_objects_deleted: Bytes,
  /** Bytes of every pack, segment and index object listed. */
  bytes_listed: Bytes,
  /** Bytes of what was deleted (of a dry run: what would be). */
  bytes_freed: Bytes,
  error: ApiErrorBody.nullable(),
});
export type GcRun = z.infer<typeof GcRun>;
export const GcRunPage = Page(GcRun);

/** `POST /v1/backup_targets/{id}/gc?dry_run=true`: plan only. */
export const StartGcQuery = z.strictObject({
  dry_run: z
    .enum(['true', 'false'])
    .default('false')
    .transform((value) => value === 'true'),
});
export type StartGcQuery = z.infer<typeof StartGcQuery>;

export const GcRunListQuery = ListQuery;
export type GcRunListQuery = z.infer<typeof GcRunListQuery>;

export const GcRunParams = z.strictObject({ id: Uuid, run_id: Uuid });
export type GcRunParams = z.infer<typeof GcRunParams>;
