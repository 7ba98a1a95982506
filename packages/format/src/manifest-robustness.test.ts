// Roots crafted around arbitrary documents, correctly encrypted: the checks a reader makes after decryption.
import { randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { FormatError, IntegrityError, StowageFormatError } from './errors.js';
import { deriveTargetKeys } from './keys.js';
import { decodeManifest, manifestObjectLength } from './manifest.js';
import { padmeLength } from './padding.js';
import { xchachaSeal } from './xchacha.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(5));
const backupId = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const volumeId = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';
const objectKey = `manifests/${volumeId}/${backupId}`;
const chunker = { minSize: 1, avgSize: 2, maxSize: 4, level: 0 };
const uuid = (s: string) => Buffer.from(s.replaceAll('-', ''), 'hex');

/** An encrypted root around `doc`; `inner` lets a test replace length ‖ body ‖ padding, `length` the size. */
function craftRoot(
  doc: Record<string, unknown>,
  options: { inner?: (body: Uint8Array, length: number) => Uint8Array; length?: number } = {},
): Uint8Array {
  const body = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false }).encode(doc);
  const length = options.length ?? manifestObjectLength(body.length);
  const inner =
    options.inner?.(body, length) ??
    (() => {
      const x = new Uint8Array(length - 46);
      new DataView(x.buffer).setUint32(0, body.length);
      x.set(body, 4);
      return x;
    })();
  const header = Uint8Array.of(0x53, 0x54, 0x57, 0x4d, 2, 0);
  const nonce = new Uint8Array(randomBytes(24));
  const aad = new Uint8Array([...header, ...uuid(volumeId), ...uuid(backupId)]);
  return new Uint8Array([...header, ...nonce, ...xchachaSeal(keys.manifestKey, nonce, inner, aad)]);
}

const goodDoc = () => ({
  version: 2,
  backupId,
  volumeId,
  volumeName: 'v',
  volumeSize: 300,
  createdAt: 1,
  chunker,
  entryCount: 3,
  chunkCount: 1,
  chunkBytes: 100,
  holeBytes: 200,
  segmentEntries: 2,
  segments: new Uint8Array(64).fill(7),
});

const decode = (bytes: Uint8Array) => decodeManifest(keys, bytes, { volumeId, backupId });

describe('manifest root robustness', () => {
  it('random bytes never escape as anything but format errors', () => {
    for (let i = 0; i < 300; i++) {
      const junk = new Uint8Array(randomBytes(i % 3 === 0 ? 50 + (i % 40) : i));
      if (i % 2 === 0 && junk.length >= 6) junk.set([0x53, 0x54, 0x57, 0x4d, 2, i % 2], 0);
      try {
        decode(junk);
      } catch (error) {
        expect(error).toBeInstanceOf(StowageFormatError);
      }
    }
  });

  it('accepts a well-formed crafted root (the helper is sound) and ignores unknown keys', () => {
    expect(decode(craftRoot(goodDoc())).entryCount).toBe(3);
    expect(decode(craftRoot({ ...goodDoc(), future: 'x', seed: 0 })).segmentEntries).toBe(2);
    // The largest segmentEntries: 131,072 records of 80 bytes, 10 MiB.
    const largest = { ...goodDoc(), segmentEntries: 131_072, segments: new Uint8Array(32) };
    expect(decode(craftRoot(largest)).segmentEntries).toBe(131_072);
    // A reader takes the name as it comes: NFC is the writers' rule.
    expect(decode(craftRoot({ ...goodDoc(), volumeName: 'e\u0301' })).volumeName).toBe('e\u0301');
  });

  const bad: [string, Record<string, unknown>][] = [
    ['a version field unlike the header', { version: 3 }],
    ['another backup id inside', { backupId: '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4c' }],
    ['another volume id inside', { volumeId: '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3e' }],
    ['sizes that do not add up', { volumeSize: 301 }],
    ['more chunks than entries', { chunkCount: 4 }],
    ['segment ids for another entry count', { entryCount: 5 }],
    ['segments not a whole number of ids', { segments: new Uint8Array(63) }],
    ['segments as an array', { segments: [1, 2] }],
    ['segmentEntries 0', { segmentEntries: 0 }],
    [
      'segmentEntries above the maximum',
      { segmentEntries: 131_073, entryCount: 3, segments: new Uint8Array(32) },
    ],
    ['a float size', { volumeSize: 300.5 }],
    ['a negative createdAt', { createdAt: -1 }],
    ['a missing total', { holeBytes: undefined }],
    ['a name too long', { volumeName: 'x'.repeat(1025) }],
    ['a seed in the chunker map', { chunker: { ...chunker, seed: 666 } }],
    ['bad chunker parameters', { chunker: { ...chunker, minSize: 3 } }],
  ];
  for (const [what, change] of bad) {
    it(`rejects a root with ${what} as a format error naming the object`, () => {
      const doc: Record<string, unknown> = { ...goodDoc(), ...change };
      for (const k of Object.keys(doc)) if (doc[k] === undefined) delete doc[k];
      const bytes = craftRoot(doc);
      expect(() => decode(bytes)).toThrow(FormatError);
      expect(() => decode(bytes)).toThrow(objectKey);
    });
  }

  it('rejects padding that is not zero, a body length past the object and an unpadded length', () => {
    const nonZero = craftRoot(goodDoc(), {
      inner: (body, length) => {
        const x = new Uint8Array(length - 46).fill(1);
        new DataView(x.buffer).setUint32(0, body.length);
        x.set(body, 4);
        return x;
      },
    });
    expect(() => decode(nonZero)).toThrow(/padding is not zero/);
    const past = craftRoot(goodDoc(), {
      inner: (body, length) => {
        const x = new Uint8Array(length - 46);
        new DataView(x.buffer).setUint32(0, length);
        x.set(body, 4);
        return x;
      },
    });
    expect(() => decode(past)).toThrow(/exceeds the object/);
    const body = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false }).encode(
      goodDoc(),
    );
    expect(padmeLength(50 + body.length + 64)).not.toBe(manifestObjectLength(body.length));
    const unpadded = craftRoot(goodDoc(), { length: padmeLength(50 + body.length + 64) });
    expect(() => decode(unpadded)).toThrow(IntegrityError);
    expect(() => decode(unpadded)).toThrow(/padded length/);
  });
});
