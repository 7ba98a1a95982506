export { cephUnavailableReason, startCeph } from './ceph/ceph.js';
export {
  bytes,
  type ConformanceFactory,
  type ConformanceOptions,
  type ConformanceSubject,
  collect,
  describeObjectStoreConformance,
} from './conformance.js';
export { type StartS3rverOptions, startS3rver, type TestS3Server } from './s3-server.js';
export {
  type StalledConnection,
  type StallingProxy,
  type StallOptions,
  startStallingProxy,
} from './stalling-proxy.js';
