import { randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import zstd from 'zstd-napi/binding.js';
import { openChunk, sealChunk } from './chunk.js';
import { decodeConfig, encodeConfig, readConfigUnverified } from './config.js';
import { FormatError, IntegrityError, StowageFormatError } from './errors.js';
import { openKeyFile } from './keyfile.js';
import { deriveTargetKeys } from './keys.js';
import { decodeManifest } from './manifest.js';
import { FORMAT_VERSION } from './version.js';
import { xchachaSeal } from './xchacha.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(5));
const backupId = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const volumeId = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';
const chunker = { minSize: 1, avgSize: 2, maxSize: 4, level: 0, seed: 0 };

function expectOnlyFormatErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(StowageFormatError);
  }
}

/** A correctly encrypted manifest around an arbitrary document: exercises the checks after decryption. */
function craftManifest(doc: Record<string, unknown>): Uint8Array {
  const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false }).encode(doc);
  const frame = new Uint8Array(zstd.compressBound(cbor.length));
  const body = frame.subarray(0, zstd.compress(frame, cbor, 1));
  const header = Uint8Array.of(0x53, 0x54, 0x57, 0x4d, 1, 1);
  const nonce = new Uint8Array(randomBytes(24));
  const aad = new Uint8Array([...header, ...Buffer.from(backupId.replaceAll('-', ''), 'hex')]);
  return new Uint8Array([...header, ...nonce, ...xchachaSeal(keys.manifestKey, nonce, body, aad)]);
}

function record(kind: number, length: number, idByte = 0): number[] {
  const r = new Array(40).fill(0);
  r[0] = kind;
  r[7] = length & 0xff;
  r[6] = (length >> 8) & 0xff;
  for (let i = 8; i < 40; i++) r[i] = idByte;
  return r;
}

const goodDoc = () => ({
  version: 1,
  backupId,
  volumeId,
  volumeName: 'v',
  volumeSize: 300,
  createdAt: 1,
  chunker,
  entries: new Uint8Array([...record(0, 100, 7), ...record(1, 200)]),
});

describe('robustness', () => {
  it('random bytes never escape as anything but format errors', async () => {
    const id = new Uint8Array(32).fill(1);
    for (let i = 0; i < 300; i++) {
      const junk = new Uint8Array(randomBytes(i % 3 === 0 ? 46 + (i % 40) : i));
      // Give some of them a valid magic and version so the deeper checks run.
      if (i % 2 === 0 && junk.length >= 6) junk.set([0x53, 0x54, 0x57, 0x43, FORMAT_VERSION, i % 4], 0);
      expect(() => openChunk(keys, id, junk)).toThrow(IntegrityError);
      expectOnlyFormatErrors(() => decodeManifest(keys, junk, { backupId }));
      expectOnlyFormatErrors(() => decodeConfig(keys, junk));
      expectOnlyFormatErrors(() => readConfigUnverified(junk));
    }
    for (const junk of ['', '{', '[]', 'null', '{"version":2}', '\u00ff']) {
      await expect(openKeyFile(new TextEncoder().encode(junk), 'pw')).rejects.toBeInstanceOf(FormatError);
    }
  });

  it('accepts a well-formed crafted manifest (the crafting helper is sound)', () => {
    const m = decodeManifest(keys, craftManifest(goodDoc()), { backupId });
    expect([...m.entries].map((e) => [e.kind, e.length])).toEqual([
      ['chunk', 100],
      ['hole', 200],
    ]);
  });

  it('accepts unmerged adjacent holes and ignores unknown keys', () => {
    const doc = {
      ...goodDoc(),
      future: 'x',
      entries: new Uint8Array([...record(1, 150), ...record(1, 150)]),
    };
    expect(decodeManifest(keys, craftManifest(doc), { backupId }).entries.count).toBe(2);
  });

  const bad: [string, Record<string, unknown>][] = [
    ['entries not a multiple of 40', { entries: new Uint8Array(41) }],
    ['a zero-length entry', { entries: new Uint8Array(record(0, 0)) }],
    ['an unknown entry kind', { volumeSize: 100, entries: new Uint8Array(record(2, 100)) }],
    ['a hole with an id', { volumeSize: 100, entries: new Uint8Array(record(1, 100, 9)) }],
    ['sizes that do not add up', { volumeSize: 301 }],
    ['a version field unlike the header', { version: 2 }],
    ['another backup id inside', { backupId: '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4c' }],
    ['an upper-case volume id', { volumeId: volumeId.toUpperCase() }],
    ['entries as an array', { entries: [1, 2, 3] }],
    ['a float size', { volumeSize: 300.5 }],
    ['a negative createdAt', { createdAt: -1 }],
    ['bad chunker parameters', { chunker: { ...chunker, minSize: 3, avgSize: 2 } }],
  ];
  for (const [what, change] of bad) {
    it(`rejects a manifest with ${what} as a format error naming the object`, () => {
      const bytes = craftManifest({ ...goodDoc(), ...change });
      expect(() => decodeManifest(keys, bytes, { backupId, objectKey: 'manifests/x/y' })).toThrow(
        FormatError,
      );
      expect(() => decodeManifest(keys, bytes, { backupId, objectKey: 'manifests/x/y' })).toThrow(
        /manifests\/x\/y/,
      );
    });
  }

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
