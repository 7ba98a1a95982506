import { describe, expect, it } from 'vitest';
import {
  CONFIG_HEADER_LENGTH,
  CONFIG_MAC_LENGTH,
  decodeConfig,
  encodeConfig,
  readConfigUnverified,
  readConfigVersion,
} from './config.js';
import { FormatError, IntegrityError, UnsupportedFormatVersionError } from './errors.js';
import { deriveTargetKeys } from './keys.js';
import type { ChunkerParams } from './params.js';
import { strictCborDecode } from './testdata/strict-cbor.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(3));
const init: { repositoryId: string; createdAt: Date; chunker: ChunkerParams } = {
  repositoryId: '11111111-2222-4333-8444-555555555555',
  createdAt: new Date('2026-11-22T00:00:00Z'),
  chunker: {
    minSize: 262_144,
    avgSize: 1_048_576,
    maxSize: 4_194_304,
    level: 1,
    seed: 0n,
  },
};

describe('repository config', () => {
  it('round-trips and is verified by MAC', () => {
    const bytes = encodeConfig(keys, init);
    expect(readConfigVersion(bytes)).toBe(2);
    const config = decodeConfig(keys, bytes);
    expect(config).toEqual({ version: 2, ...init });
    expect(readConfigUnverified(bytes)).toEqual(config);
  });

  it('is readable as plain CBOR without the key', () => {
    const bytes = encodeConfig(keys, init);
    const doc = strictCborDecode(bytes.subarray(CONFIG_HEADER_LENGTH, bytes.length - CONFIG_MAC_LENGTH));
    // No seed: nothing in the bucket tells where content is cut (the gear table is derived from the key).
    expect(doc).toEqual({
      version: 2n,
      repositoryId: init.repositoryId,
      createdAt: BigInt(init.createdAt.getTime()),
      chunker: {
        minSize: 262_144n,
        avgSize: 1_048_576n,
        maxSize: 4_194_304n,
        level: 1n,
      },
    });
  });

  it('detects tampering and a foreign key', () => {
    const bytes = encodeConfig(keys, init);
    expect(() => decodeConfig(deriveTargetKeys(new Uint8Array(32)), bytes)).toThrow(IntegrityError);
    for (let i = CONFIG_HEADER_LENGTH; i < bytes.length; i++) {
      const bad = bytes.slice();
      bad[i]! ^= 0x01;
      // A flip may make the CBOR unreadable (FormatError) or stay readable: the MAC still catches it.
      expect(() => decodeConfig(keys, bad)).toThrow(/config/);
    }
    expect(() => decodeConfig(keys, bytes.subarray(0, bytes.length - 1))).toThrow();
  });

  it('reports a newer version before any key is needed', () => {
    const bytes = encodeConfig(keys, init);
    bytes[4] = 3;
    expect(() => readConfigVersion(bytes)).toThrow(UnsupportedFormatVersionError);
    expect(() => readConfigVersion(bytes)).toThrow('unsupported format version 3 in config');
    bytes[4] = 1;
    expect(() => readConfigVersion(bytes)).toThrow(/format version 1 .*no longer reads/);
  });

  it('validates', () => {
    expect(() => encodeConfig(keys, { ...init, repositoryId: 'x' })).toThrow(FormatError);
    expect(() => encodeConfig(keys, { ...init, chunker: { ...init.chunker, level: 4 as 3 } })).toThrow(
      FormatError,
    );
    expect(() => encodeConfig(keys, { ...init, chunker: { ...init.chunker, seed: -1n } })).toThrow(
      FormatError,
    );
    expect(() => encodeConfig(keys, { ...init, chunker: { ...init.chunker, seed: 666n } })).toThrow(
      /seed is not part of version 2/,
    );
    expect(() =>
      readConfigVersion(new TextEncoder().encode('{"version":1, "hello": "world", "x": 1}')),
    ).toThrow(FormatError);
  });
});
