export {
  abortedError,
  InvalidStoreUrlError,
  isObjectStoreError,
  isTransient,
  OBJECT_STORE_ERROR_KINDS,
  ObjectStoreError,
  type ObjectStoreErrorKind,
  type ObjectStoreErrorOptions,
  type ObjectStoreOp,
  throwIfAborted,
} from './errors.js';
export { FS_TEMP_PREFIX, FsObjectStore, type FsObjectStoreOptions } from './fs.js';
export { MemoryObjectStore, type MemoryObjectStoreOptions } from './memory.js';
export {
  type ByteRange,
  compareKeys,
  keyProblem,
  type ObjectInfo,
  type ObjectStore,
  type OperationOptions,
  type PutOptions,
  validateKey,
} from './object-store.js';
export { type OpenObjectStoreOptions, openObjectStore } from './open.js';
export { createSeededRandom, type RandomSource } from './random.js';
export { type S3Credentials, S3ObjectStore, type S3ObjectStoreOptions, s3ErrorKind } from './s3.js';
export { withConcurrencyLimit } from './wrappers/concurrency-limit.js';
export {
  FAULT_KINDS,
  type FaultKind,
  type FaultOptions,
  type InjectedFault,
  withFaults,
} from './wrappers/faults.js';
export { type MetricsOptions, type StoreEvent, withMetrics } from './wrappers/metrics.js';
export { type RetryEvent, type RetryOptions, withRetry } from './wrappers/retry.js';
export { createDefaultStoreStack, type DefaultStoreStackOptions } from './wrappers/stack.js';
