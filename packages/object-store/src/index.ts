export {
  InvalidStoreUrlError,
  isObjectStoreError,
  isTransient,
  OBJECT_STORE_ERROR_KINDS,
  ObjectStoreError,
  type ObjectStoreErrorKind,
  type ObjectStoreErrorOptions,
  type ObjectStoreOp,
} from './errors.js';
export { FS_TEMP_PREFIX, FsObjectStore, type FsObjectStoreOptions } from './fs.js';
export { MemoryObjectStore, type MemoryObjectStoreOptions } from './memory.js';
export {
  type ByteRange,
  compareKeys,
  keyProblem,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  validateKey,
} from './object-store.js';
