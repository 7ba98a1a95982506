export {
  bytes,
  type ConformanceFactory,
  type ConformanceOptions,
  type ConformanceSubject,
  collect,
  describeObjectStoreConformance,
} from './conformance.js';
