import { z } from 'zod';
import { ManagedBackup } from './backups.js';
import { ManagedJob } from './jobs.js';
import { Uuid } from './primitives.js';

/**
 * Verify jobs (docs/operations.md#verify): `POST /v1/backups/{id}/verify` starts one on an agent, which reads
 * the backup's chunks from the bucket and checks them; the manager records the outcome on the backup
 * (`ManagedBackup.verification`) and on every other backup found naming a damaged chunk. A target's
 * `verify_every_days` re-verifies each of its completed backups within that many days, reading
 * `verify_sample_percent` of the chunks.
 */

/** `?sample=P&host_id=`: read P % of the chunks (default 100: all); run on that host (default: the backup's
 * volume's). Query values arrive as strings, hence the coercion. */
export const VerifyBackupQuery = z.strictObject({
  sample: z.coerce
    .number<number>()
    .refine((p) => p > 0 && p <= 100, 'must be a percentage in (0, 100]')
    .optional(),
  host_id: Uuid.optional(),
});
export type VerifyBackupQuery = z.infer<typeof VerifyBackupQuery>;

/** The verify job, and the backup as it is now (its `verification` is updated when the job ends). */
export const VerifyStarted = z.strictObject({ job: ManagedJob, backup: ManagedBackup });
export type VerifyStarted = z.infer<typeof VerifyStarted>;
