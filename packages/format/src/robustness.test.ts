import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openChunk, sealChunk } from './chunk.js';
import { decodeConfig, encodeConfig, readConfigUnverified } from './config.js';
import { FormatError, IntegrityError, StowageFormatError } from './errors.js';
import { openKeyFile } from './keyfile.js';
import { deriveTargetKeys } from './keys.js';
import { decodeManifest } from './manifest.js';
import { FORMAT_VERSION } from './version.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(5));
const backupId = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const volumeId = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';

function expectOnlyFormatErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StowageFormatError);
  }
}

// Manifests (roots and segments) have their own crafted-object tests: manifest-robustness.test.ts.

describe('robustness', () => {
  it('random bytes never escape as anything but format errors', async () => {
    const id = new Uint8Array(32).fill(1);
    for (let i = 0; i < 300; i++) {
      const junk = new Uint8Array(randomBytes(i % 3 === 0 ? 46 + (i % 40) : i));
      // Give some of them a valid magic and version so the deeper checks run.
      if (i % 2 === 0 && junk.length >= 6) junk.set([0x53, 0x54, 0x57, 0x43, FORMAT_VERSION, i % 4], 0);
      expect(() => openChunk(keys, id, junk)).toThrow(IntegrityError);
      expectOnlyFormatErrors(() => decodeManifest(keys, junk, { volumeId, backupId }));
      expectOnlyFormatErrors(() => decodeConfig(keys, junk));
      expectOnlyFormatErrors(() => readConfigUnverified(junk));
    }
    for (const junk of ['', '{', '[]', 'null', '{"version":2}', '\u00ff']) {
      await expect(openKeyFile(new TextEncoder().encode(junk), 'pw')).rejects.toBeInstanceOf(FormatError);
    }
  });

  it('rejects a chunk object whose authenticated body is not the declared zstd frame', () => {
    const plaintext = new TextEncoder().encode('a'.repeat(5000));
    const { id, object } = sealChunk(keys, plaintext);
    expect(() => openChunk(keys, id, object, 4999)).toThrow(/expected 4999/);
    expect(openChunk(keys, id, object, 5000).length).toBe(5000);
  });

  it('config MAC binds every body byte even when the CBOR stays readable', () => {
    const bytes = encodeConfig(keys, {
      repositoryId: '11111111-2222-4333-8444-555555555555',
      createdAt: new Date(0),
      chunker: { minSize: 1, avgSize: 2, maxSize: 4, level: 0, seed: 0n },
    });
    // Change repositoryId's last character ('5' → '6'): still valid CBOR and a valid UUID.
    const tampered = bytes.slice();
    const at = Buffer.from(tampered).indexOf('555555555555') + 11;
    tampered[at] = 0x36;
    expect(readConfigUnverified(tampered).repositoryId).toBe('11111111-2222-4333-8444-555555555556');
    expect(() => decodeConfig(keys, tampered)).toThrow(IntegrityError);
  });
});
