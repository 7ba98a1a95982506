export const ENGINE_ERROR_CODES = [
  'io',
  'invalid-source',
  'invalid-target',
  'target-exists',
  'target-too-small',
  'repository-not-found',
  'repository-exists',
  'backup-not-found',
  'ambiguous-backup-id',
  'invalid-argument',
  'aborted',
  /** A backup id already committed: a manifest is written once and never replaced. */
  'backup-exists',
  /** The target key given does not open the repository (it belongs to another one). */
  'wrong-key',
  /** The fence's leave to commit (BackupOptions.beforeCommit) ran out before the manifest was written. */
  'commit-expired',
  /** The fence refused the commit: the backup's lease had ended (its manager's GC may run). */
  'commit-refused',
] as const;
export type EngineErrorCode = (typeof ENGINE_ERROR_CODES)[number];

/** Errors of the engine's own making; format and store errors pass through with their own types. */
export class EngineError extends Error {
  override name = 'EngineError';
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
