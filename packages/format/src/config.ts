import { blake3Keyed } from '@stowage/blake3';
import { bytesEqual, isUuid } from './bytes.js';
import { cborDecode, cborEncode, cborUint } from './cbor.js';
import { FormatError, IntegrityError } from './errors.js';
import type { TargetKeys } from './keys.js';
import { asUint, type ChunkerParams, chunkerParamsDocument, validateChunkerParams } from './params.js';
import { checkObjectVersion, FORMAT_VERSION } from './version.js';

/** Object key of the repository config, relative to the repository root. */
export const CONFIG_OBJECT_KEY = 'config';
/** Config object magic: ASCII "STWG". */
export const CONFIG_MAGIC = Uint8Array.of(0x53, 0x54, 0x57, 0x47);
export const CONFIG_HEADER_LENGTH = 6;
export const CONFIG_MAC_LENGTH = 32;
/** Configs are small; anything bigger is not one. */
export const MAX_CONFIG_LENGTH = 64 * 1024;

export interface RepositoryConfig {
  readonly version: number;
  readonly repositoryId: string;
  readonly createdAt: Date;
  readonly chunker: ChunkerParams;
}

export type RepositoryConfigInit = Omit<RepositoryConfig, 'version'>;

function configMac(keys: TargetKeys, signed: Uint8Array): Uint8Array {
  return blake3Keyed(keys.configKey, signed, CONFIG_MAC_LENGTH);
}

/**
 * The config object: header ‖ CBOR body ‖ BLAKE3-keyed MAC. Readable without the key (so the format version
 * and chunker parameters are visible before a passphrase is asked for), tamper-evident with it.
 */
export function encodeConfig(keys: TargetKeys, init: RepositoryConfigInit): Uint8Array {
  const config = validateConfig({ version: FORMAT_VERSION, ...init });
  const c = config.chunker;
  const body = cborEncode({
    version: FORMAT_VERSION,
    repositoryId: config.repositoryId,
    createdAt: cborUint(config.createdAt.getTime()),
    chunker: chunkerParamsDocument(c),
  });
  const out = new Uint8Array(CONFIG_HEADER_LENGTH + body.length + CONFIG_MAC_LENGTH);
  out.set(CONFIG_MAGIC, 0);
  out[4] = FORMAT_VERSION;
  out[5] = 0;
  out.set(body, CONFIG_HEADER_LENGTH);
  out.set(
    configMac(keys, out.subarray(0, CONFIG_HEADER_LENGTH + body.length)),
    CONFIG_HEADER_LENGTH + body.length,
  );
  return out;
}

/**
 * The format version a config object declares, checked against what this code reads. Needs no key: call it
 * first to refuse a newer repository with a clear `UnsupportedFormatVersionError`.
 */
export function readConfigVersion(bytes: Uint8Array): number {
  if (bytes.length < CONFIG_HEADER_LENGTH + CONFIG_MAC_LENGTH || bytes.length > MAX_CONFIG_LENGTH) {
    throw new FormatError(`not a repository config (${bytes.length} bytes)`, CONFIG_OBJECT_KEY);
  }
  for (let i = 0; i < CONFIG_MAGIC.length; i++) {
    if (bytes[i] !== CONFIG_MAGIC[i])
      throw new FormatError('not a repository config (bad magic)', CONFIG_OBJECT_KEY);
  }
  const version = bytes[4]!;
  checkObjectVersion(version, CONFIG_OBJECT_KEY);
  if (bytes[5] !== 0) throw new FormatError(`unknown config flags ${bytes[5]}`, CONFIG_OBJECT_KEY);
  return version;
}

/** Parses a config WITHOUT checking its MAC: for display before the key is open. Never trust it for writes. */
export function readConfigUnverified(bytes: Uint8Array): RepositoryConfig {
  const version = readConfigVersion(bytes);
  const doc = cborDecode(
    bytes.subarray(CONFIG_HEADER_LENGTH, bytes.length - CONFIG_MAC_LENGTH),
    CONFIG_OBJECT_KEY,
  );
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new FormatError('config body is not a CBOR map', CONFIG_OBJECT_KEY);
  }
  const d = doc as Record<string, unknown>;
  if (asUint(d.version) !== version) {
    throw new FormatError(
      `config version field ${String(d.version)} differs from its header's ${version}`,
      CONFIG_OBJECT_KEY,
    );
  }
  const createdAt = asUint(d.createdAt);
  if (createdAt === undefined)
    throw new FormatError('config createdAt must be an unsigned integer', CONFIG_OBJECT_KEY);
  return validateConfig({
    version,
    repositoryId: d.repositoryId as string,
    createdAt: new Date(createdAt),
    chunker: d.chunker as ChunkerParams,
  });
}

/** Parses a config and verifies its MAC under the target's keys (`IntegrityError` if it was altered). */
export function decodeConfig(keys: TargetKeys, bytes: Uint8Array): RepositoryConfig {
  const config = readConfigUnverified(bytes);
  const signedLength = bytes.length - CONFIG_MAC_LENGTH;
  if (!bytesEqual(configMac(keys, bytes.subarray(0, signedLength)), bytes.subarray(signedLength))) {
    throw new IntegrityError(
      CONFIG_OBJECT_KEY,
      'MAC mismatch: the config was altered or belongs to another key',
    );
  }
  return config;
}

function validateConfig(config: RepositoryConfig): RepositoryConfig {
  if (!isUuid(config.repositoryId)) {
    throw new FormatError('config repositoryId must be a lower-case UUID', CONFIG_OBJECT_KEY);
  }
  const ms = config.createdAt instanceof Date ? config.createdAt.getTime() : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new FormatError('config createdAt must be a valid date after 1970', CONFIG_OBJECT_KEY);
  }
  const chunker = validateChunkerParams(config.chunker, CONFIG_OBJECT_KEY);
  return Object.freeze({
    version: config.version,
    repositoryId: config.repositoryId,
    createdAt: config.createdAt,
    chunker,
  });
}
