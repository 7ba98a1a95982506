export {
  CHUNK_FLAG_ZSTD,
  CHUNK_HEADER_LENGTH,
  CHUNK_ID_LENGTH,
  CHUNK_MAGIC,
  CHUNK_OVERHEAD,
  type ChunkHeaderInfo,
  chunkId,
  chunkIdFromHex,
  chunkIdToHex,
  chunkObjectKey,
  openChunk,
  readChunkHeader,
  type SealChunkOptions,
  type SealedChunk,
  sealChunk,
} from './chunk.js';
export {
  type CompressionPolicy,
  compressChunkBody,
  DEFAULT_COMPRESSION_POLICY,
  MAX_CHUNK_LENGTH,
} from './compression.js';
export {
  FormatError,
  type FormatErrorCode,
  IntegrityError,
  StowageFormatError,
  UnsupportedFormatVersionError,
  WrongPassphraseError,
} from './errors.js';
export { deriveTargetKeys, generateTargetKey, KDF_CONTEXT, KEY_LENGTH, type TargetKeys } from './keys.js';
export {
  type DecodeManifestOptions,
  decodeManifest,
  ENTRY_KIND_CHUNK,
  ENTRY_KIND_HOLE,
  ENTRY_RECORD_LENGTH,
  type EncodeManifestOptions,
  encodeManifest,
  MANIFEST_FLAG_ZSTD,
  MANIFEST_HEADER_LENGTH,
  MANIFEST_MAGIC,
  MAX_MANIFEST_LENGTH,
  MAX_VOLUME_NAME_LENGTH,
  type Manifest,
  ManifestBuilder,
  ManifestEntries,
  type ManifestEntry,
  type ManifestMeta,
  manifestObjectKey,
  parseManifestObjectKey,
} from './manifest.js';
export { type ChunkerParams, MAX_UINT64, validateChunkerParams } from './params.js';
export { FORMAT_VERSION } from './version.js';
export {
  XCHACHA_KEY_LENGTH,
  XCHACHA_NONCE_LENGTH,
  XCHACHA_TAG_LENGTH,
  xchachaOpen,
  xchachaSeal,
  xchachaSealInto,
} from './xchacha.js';
