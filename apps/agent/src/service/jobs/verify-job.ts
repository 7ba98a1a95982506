import type { VerifyRequest } from '@stowage/api';
import { checkRepository, verifyBackup } from '@stowage/engine';
import type { JobContext, JobEntry } from './job-context.js';
import { verifyResultOf } from './verify-result.js';

/**
 * Verifies one backup (`verifyBackup`: all its chunks or a sample, its damage record kept). When that finds
 * damage, a repository check follows (`checkRepository` without reading data: it lists the packs, reads
 * every manifest, and reads the chunks damage records list — the ones just recorded among them), which
 * names every backup whose manifest names a damaged chunk object and writes their damage records too.
 * Both only read the bucket and write `damage/`; nothing on the host is touched.
 */
export async function runVerify(ctx: JobContext, entry: JobEntry, request: VerifyRequest): Promise<void> {
  const signal = entry.controller.signal;
  // Journaled again as running, though it leaves nothing behind: a verify cut short by a crash is reported
  // failed "while running" at the next start, like any job.
  await ctx.journal(entry, ctx.journalEntry(entry, undefined));
  const workers = ctx.workers();
  try {
    const repository = await ctx.openRepository(request.target, signal);
    await workers.useKey(repository.targetKey);
    signal.throwIfAborted();
    const backup = {
      volumeId: request.backup.volume_id,
      backupId: request.backup.backup_id,
      manifestKey: request.backup.manifest_key,
    };
    const samplePercent = request.sample_percent ?? 100;
    const report = await verifyBackup({
      repository,
      workers,
      backup,
      samplePercent,
      onProgress: ctx.progressListener(entry, 'transfer'),
      signal,
      now: ctx.now,
    });
    // The verify's own findings stand whatever becomes of the check: only a cancel ends the job without them.
    const check =
      report.problems.length > 0
        ? await checkRepository({ repository, workers, readData: 'none', signal, now: ctx.now }).catch(
            (error: unknown) => {
              if (signal.aborted) throw error;
              ctx.logger.error('the repository check after a damaged verify failed', {
                job_id: entry.job.id,
                error,
              });
              return { error: `the repository check failed: ${(error as Error).message}` };
            },
          )
        : undefined;
    const result = verifyResultOf(backup, samplePercent, report, check);
    entry.ending = { result, destination: null };
    ctx.logger[result.damaged ? 'warn' : 'info']('backup verified', {
      job_id: entry.job.id,
      volume_id: backup.volumeId,
      backup_id: backup.backupId,
      sample_percent: samplePercent,
      damaged: result.damaged,
      problems: report.problems.length,
      damaged_backups: result.damaged_backups.length,
    });
  } finally {
    await ctx.closeWorkers(entry, workers);
  }
}
