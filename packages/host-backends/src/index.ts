export { BlockBackend, type BlockBackendOptions } from './block.js';
export {
  errnoKind,
  HOST_BACKEND_ERROR_KINDS,
  HostBackendError,
  type HostBackendErrorKind,
  type HostBackendErrorOptions,
  type HostBackendOp,
  isHostBackendError,
} from './errors.js';
export {
  type HostBackend,
  type HostBackendCapabilities,
  nameProblem,
  type OpenOptions,
  type ProvisionRequest,
  SNAPSHOT_METHODS,
  type SnapshotInfo,
  type SnapshotMethod,
  type SnapshotOptions,
  type SnapshotResult,
  type VolumeInfo,
  type VolumeReader,
  type VolumeWriter,
  validateName,
  validateSize,
} from './host-backend.js';
export {
  type CommandResult,
  type CommandRunner,
  IscsiBackend,
  type IscsiBackendOptions,
  type IscsiTarget,
  runCommand,
} from './iscsi.js';
export {
  LocalFileBackend,
  type LocalFileBackendOptions,
  type LocalProvisionRequest,
  type LocalSnapshotMode,
  SNAPSHOT_DIRECTORY,
} from './local-file.js';
