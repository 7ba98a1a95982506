export { type BackupOptions, type BackupSummary, backupVolume } from './backup.js';
export {
  type CheckOptions,
  type CheckProgress,
  type CheckReadData,
  type CheckReport,
  type CopiedChunkReport,
  checkRepository,
  type DamagedChunkReport,
  MAX_REPORTED_CHUNKS,
  type MissingPackReport,
} from './check.js';
export {
  type DamageRecordInfo,
  type DamageRecordUpdate,
  MAX_INDEXED_DAMAGED_CHUNKS,
  RepositoryDamage,
} from './damage.js';
export { ENGINE_ERROR_CODES, EngineError, type EngineErrorCode } from './errors.js';
export { Limiter } from './limiter.js';
export type { Progress, ProgressListener } from './progress.js';
export { type BackupInfo, type BackupListing, type BackupRef, Repository } from './repository.js';
export type { IndexLoad } from './repository-index.js';
export { type RestoreOptions, type RestoreSummary, restoreBackup } from './restore.js';
export { findStoredCopies, MAX_COPIES_SOUGHT } from './stored-copies.js';
export {
  type VerifyCopy,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyReport,
  verifyBackup,
} from './verify.js';
export {
  openVolumeSource,
  openVolumeTarget,
  removeStalePartialFiles,
  type VolumeSource,
  type VolumeTarget,
} from './volume-io.js';
export { ChunkWorkers } from './workers/chunk-workers.js';
