export {
  describeHostBackendConformance,
  expectBytes,
  type HostBackendConformanceFactory,
  type HostBackendConformanceOptions,
  type HostBackendConformanceSubject,
  pattern,
  readAll,
} from './conformance.js';
export {
  createLoopDevice,
  LOOP_FILESYSTEMS,
  type LoopDevice,
  type LoopFilesystem,
  type LoopMount,
  loopUnavailableReason,
  mountLoopFilesystem,
} from './loop.js';
