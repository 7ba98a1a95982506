import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake3Keyed } from '@stowage/blake3';
import { describe, expect, it } from 'vitest';
import zstd from 'zstd-napi/binding.js';
import { openChunk } from './chunk.js';
import { decodeConfig, readConfigVersion } from './config.js';
import { openKeyFile } from './keyfile.js';
import { deriveTargetKeys } from './keys.js';
import { buildGoldenVectors } from './testdata/golden-builder.js';
import { FORMAT_VERSION } from './version.js';

// SHA-256 over the committed golden files of each released format version. Vectors of a released version are
// immutable: a format change bumps FORMAT_VERSION, regenerates the vectors and adds a line here. Editing an
// existing line means the format changed without a version bump — don't.
const GOLDEN_DIGESTS: Record<number, string> = {
  1: 'a3d9fda3c7bdd821ac43006824b0355e1b5db1fd727628b7092dfa9c900e72cc',
};

const GOLDEN_LIBZSTD = '1.5.7';

const dir = new URL('./testdata/golden/', import.meta.url);
const read = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));
const vectors = JSON.parse(new TextDecoder().decode(read('vectors.json')));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

function digestOfGoldenFiles(): string {
  const hash = createHash('sha256');
  for (const name of readdirSync(dir).sort()) {
    hash.update(`${name}\0`);
    hash.update(read(name));
  }
  return hash.digest('hex');
}

describe('golden vectors', () => {
  it('belong to the current format version and are the ones pinned for it', () => {
    expect(vectors.formatVersion).toBe(FORMAT_VERSION);
    expect(digestOfGoldenFiles()).toBe(GOLDEN_DIGESTS[FORMAT_VERSION]);
  });

  it('are reproduced byte for byte by the current code', async () => {
    const built = await buildGoldenVectors();
    expect(Object.keys(built).sort()).toEqual(readdirSync(dir).sort());
    for (const [name, bytes] of Object.entries(built)) {
      // Compressed bodies are the one output the format does not pin (any valid zstd frame reads): a libzstd
      // other than the one the vectors were made with may compress differently without a format change.
      if (name === 'chunk-compressible.object' && zstd.versionString() !== GOLDEN_LIBZSTD) continue;
      expect(hex(bytes), `${name} differs: a format change needs a version bump (docs/format.md)`).toBe(
        hex(read(name)),
      );
    }
  });

  const keys = deriveTargetKeys(unhex(vectors.targetKey));

  it('pin the key derivation contexts', () => {
    expect({
      idKey: hex(keys.idKey),
      nonceKey: hex(keys.nonceKey),
      chunkKey: hex(keys.chunkKey),
      manifestKey: hex(keys.manifestKey),
      configKey: hex(keys.configKey),
    }).toEqual(vectors.subkeys);
  });

  for (const kind of ['compressible', 'incompressible'] as const) {
    it(`open the ${kind} chunk and follow the nonce and AAD rules`, () => {
      const v = vectors.chunks[kind];
      const object = read(v.objectFile);
      const plaintext = read(v.plaintextFile);
      expect(hex(openChunk(keys, v.id, object, v.length))).toBe(hex(plaintext));
      // Re-derive the layout independently of chunk.ts, with @noble/ciphers as the AEAD.
      const header = object.subarray(0, 6);
      expect(hex(header)).toBe(`5354574301${v.compressed ? '01' : '00'}`);
      const nonce = object.subarray(6, 30);
      const body = xchacha20poly1305(
        keys.chunkKey,
        nonce,
        new Uint8Array([...header, ...unhex(v.id)]),
      ).decrypt(object.subarray(30));
      expect(hex(blake3Keyed(keys.nonceKey, new Uint8Array([...header, ...body]), 24))).toBe(hex(nonce));
      if (v.compressed) {
        const out = new Uint8Array(v.length);
        expect(zstd.decompress(out, body)).toBe(v.length);
        expect(hex(out)).toBe(hex(plaintext));
      } else {
        expect(hex(body)).toBe(hex(plaintext));
      }
      expect(hex(blake3Keyed(keys.idKey, plaintext))).toBe(v.id);
    });
  }

  it('decode the config', () => {
    const bytes = read(vectors.config.objectFile);
    expect(readConfigVersion(bytes)).toBe(1);
    expect(decodeConfig(keys, bytes).repositoryId).toBe(vectors.config.repositoryId);
  });

  it('open the key file with the known passphrase', async () => {
    const key = await openKeyFile(read(vectors.keyFile.objectFile), vectors.keyFile.passphrase);
    expect(hex(key)).toBe(vectors.targetKey);
  });
});
