import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake3, blake3DeriveKey, blake3Keyed } from '@stowage/blake3';
import { chunkBuffer, gearTableFromBytes, referenceChunks } from '@stowage/chunker';
import { describe, expect, it } from 'vitest';
import zstd from 'zstd-napi/binding.js';
import { openChunk } from './chunk.js';
import { decodeConfig, readConfigVersion } from './config.js';
import { openKeyFile } from './keyfile.js';
import { deriveTargetKeys } from './keys.js';
import { buildGoldenVectors, GOLDEN_CUT_INPUT } from './testdata/golden-builder.js';
import { FORMAT_VERSION } from './version.js';

// SHA-256 over the committed golden files of each released format version. Vectors of a released version are
// immutable: a format change bumps FORMAT_VERSION, regenerates the vectors and adds a line here. Editing an
// existing line means the format changed without a version bump — don't. (Version 2's line changed once before
// its release, when packs added `index_key` to the subkeys.)
const GOLDEN_DIGESTS: Record<number, string> = {
  1: 'a3d9fda3c7bdd821ac43006824b0355e1b5db1fd727628b7092dfa9c900e72cc',
  2: '16d5202ddba7c80bc7480a329bb273f2ca60ac271ef8de6731319b0780c75e1e',
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
      damageKey: hex(keys.damageKey),
      indexKey: hex(keys.indexKey),
      gearTable: hex(keys.gearTable),
    }).toEqual(vectors.subkeys);
    // The gear table is the 2,048-byte XOF output of derive_key mode, not a 32-byte key.
    expect(vectors.subkeys.gearTable).toHaveLength(4096);
    expect(vectors.subkeys.gearTable.slice(0, 64)).toBe(
      hex(blake3DeriveKey('stowage 2026-12-01 fastcdc gear table', unhex(vectors.targetKey), 2048)).slice(
        0,
        64,
      ),
    );
  });

  it("cut where the target's gear table says (the crate's FastCDC 2020 with that table)", () => {
    const v = vectors.keyedChunking;
    const input = blake3(new TextEncoder().encode(GOLDEN_CUT_INPUT.label), GOLDEN_CUT_INPUT.length);
    const table = gearTableFromBytes(unhex(vectors.subkeys.gearTable));
    const params = { ...v.params, seed: 0n };
    expect(referenceChunks(input, params, table).map((c) => c.length)).toEqual(v.lengths);
    expect(chunkBuffer(input, params, { gear: table }).map((c) => c.length)).toEqual(v.lengths);
    // And not where the published table would.
    expect(chunkBuffer(input, params).map((c) => c.length)).not.toEqual(v.lengths);
  });

  for (const kind of ['compressible', 'incompressible'] as const) {
    it(`open the ${kind} chunk and follow the nonce and AAD rules`, () => {
      const v = vectors.chunks[kind];
      const object = read(v.objectFile);
      const plaintext = read(v.plaintextFile);
      expect(hex(openChunk(keys, v.id, object, v.length))).toBe(hex(plaintext));
      // Re-derive the layout independently of chunk.ts, with @noble/ciphers as the AEAD.
      const header = object.subarray(0, 6);
      expect(hex(header)).toBe(`5354574302${v.compressed ? '01' : '00'}`);
      const nonce = object.subarray(6, 30);
      const inner = xchacha20poly1305(
        keys.chunkKey,
        nonce,
        new Uint8Array([...header, ...unhex(v.id)]),
      ).decrypt(object.subarray(30));
      // inner = u32be(n) ‖ body ‖ zeros, and the object is Padmé(50 + n) bytes long.
      const n = new DataView(inner.buffer, inner.byteOffset).getUint32(0, false);
      const body = inner.subarray(4, 4 + n);
      expect(inner.subarray(4 + n).every((b) => b === 0)).toBe(true);
      const x = 50 + n;
      const e = Math.floor(Math.log2(x));
      const grain = 2 ** (e - (Math.floor(Math.log2(e)) + 1));
      expect(object.length).toBe(Math.ceil(x / grain) * grain);
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
    expect(readConfigVersion(bytes)).toBe(2);
    expect(decodeConfig(keys, bytes).repositoryId).toBe(vectors.config.repositoryId);
  });

  it('open the key file with the known passphrase', async () => {
    const key = await openKeyFile(read(vectors.keyFile.objectFile), vectors.keyFile.passphrase);
    expect(hex(key)).toBe(vectors.targetKey);
  });
});
