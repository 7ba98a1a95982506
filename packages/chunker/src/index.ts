export { allocateScanBuffer, type ScanBuffer } from './kernel.js';
export {
  CHUNKER_LIMITS,
  type ChunkerParams,
  ChunkerParamsError,
  DEFAULT_CHUNKER_PARAMS,
  GEAR_TABLE_BYTES,
  GearTable,
  gearTableFromBytes,
  type NormalizationLevel,
  validateChunkerParams,
} from './params.js';
export { type Chunk, referenceChunks } from './reference.js';
export { type ChunkCut, chunkBuffer, StreamingChunker } from './streaming.js';
