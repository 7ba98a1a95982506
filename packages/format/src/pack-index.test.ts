import { randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake3DeriveKey } from '@stowage/blake3';
import { Encoder } from 'cbor-x';
import { describe, expect, it } from 'vitest';
import { cborEncode } from './cbor.js';
import { FormatError, IntegrityError, StowageFormatError, UnsupportedFormatVersionError } from './errors.js';
import { deriveTargetKeys, KDF_CONTEXT } from './keys.js';
import type { PackLocation } from './pack.js';
import {
  decodePackIndex,
  encodePackIndex,
  MAX_PACK_INDEX_LENGTH,
  PACK_INDEX_ENTRY_LENGTH,
  PACK_INDEX_PREFIX,
  PackIndexEntries,
  packIndexObjectKey,
  parsePackIndexObjectKey,
} from './pack-index.js';
import { strictCborDecode } from './testdata/strict-cbor.js';
import { xchachaSeal } from './xchacha.js';

const targetKey = new Uint8Array(32).fill(4);
const keys = deriveTargetKeys(targetKey);
const volumeId = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';
const backupId = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const otherVolume = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3e';
const otherBackup = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4c';
const name = '0123456789abcdef';
const key = packIndexObjectKey(volumeId, backupId, name);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const uuid = (s: string) => Buffer.from(s.replaceAll('-', ''), 'hex');
const id = (n: number) => new Uint8Array(32).fill(n);
const packA = new Uint8Array(32).fill(0xaa);
const packB = new Uint8Array(32).fill(0xbb);

function sample(): PackIndexEntries {
  return PackIndexEntries.from([
    { id: id(1), location: { pack: packA, offset: 0, length: 1088 } },
    { id: id(2), location: { pack: packA, offset: 1088, length: 6656 } },
    { id: id(3), location: { pack: packB, offset: 0, length: 17_301_504 } },
  ]);
}

const plain = (entries: PackIndexEntries) =>
  [...entries].map((e) => [hex(e.id), hex(e.location.pack), e.location.offset, e.location.length]);

/** An index object around any document, correctly encrypted for `at` (default `key`). */
function craft(
  doc: unknown,
  options: { at?: string; header?: number[]; encode?: (doc: unknown) => Uint8Array } = {},
): Uint8Array {
  const parsed = parsePackIndexObjectKey(options.at ?? key)!;
  const body =
    options.encode?.(doc) ??
    new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false }).encode(doc);
  const header = Uint8Array.from(options.header ?? [0x53, 0x54, 0x57, 0x49, 2, 0]);
  const nonce = new Uint8Array(randomBytes(24));
  const aad = new Uint8Array([
    ...header,
    ...uuid(parsed.volumeId),
    ...uuid(parsed.backupId),
    ...Buffer.from(parsed.name, 'hex'),
  ]);
  return new Uint8Array([...header, ...nonce, ...xchachaSeal(keys.indexKey, nonce, body, aad)]);
}

const goodDoc = (entries: Uint8Array = sample().records) => ({ version: 2, volumeId, backupId, entries });

describe('index object keys', () => {
  it('are index/<volume>/<backup>/<16 hex>, the name random unless given', () => {
    expect(PACK_INDEX_PREFIX).toBe('index/');
    expect(key).toBe(`index/${volumeId}/${backupId}/${name}`);
    expect(parsePackIndexObjectKey(key)).toEqual({ volumeId, backupId, name });
    const a = packIndexObjectKey(volumeId, backupId);
    const b = packIndexObjectKey(volumeId, backupId);
    expect(a).toMatch(new RegExp(`^index/${volumeId}/${backupId}/[0-9a-f]{16}$`));
    expect(a).not.toBe(b);
  });

  it('refuse any other shape', () => {
    expect(() => packIndexObjectKey('nope', backupId)).toThrow(FormatError);
    expect(() => packIndexObjectKey(volumeId, backupId.toUpperCase())).toThrow(FormatError);
    expect(() => packIndexObjectKey(volumeId, backupId, 'ABCDEF0123456789')).toThrow(FormatError);
    expect(() => packIndexObjectKey(volumeId, backupId, '0123')).toThrow(FormatError);
    for (const k of [
      `index/${volumeId}/${backupId}`,
      `index/${volumeId}/${backupId}/${name}/x`,
      `index/${volumeId}/${backupId}/${name}0`,
      `index/${volumeId}/${backupId}/0123456789ABCDEF`,
      `indexes/${volumeId}/${backupId}/${name}`,
      `index/${volumeId}/not-a-uuid/${name}`,
      `manifests/${volumeId}/${backupId}`,
    ]) {
      expect(parsePackIndexObjectKey(k), k).toBeUndefined();
    }
    expect(() => encodePackIndex(keys, `index/${volumeId}/${backupId}`, sample())).toThrow(FormatError);
    expect(() => decodePackIndex(keys, `index/${volumeId}/${backupId}`, new Uint8Array(100))).toThrow(
      FormatError,
    );
  });
});

describe('index entries', () => {
  it('are 72-byte records: chunk id ‖ pack id ‖ u32be(offset) ‖ u32be(object length)', () => {
    const entries = sample();
    expect(PACK_INDEX_ENTRY_LENGTH).toBe(72);
    expect(entries.count).toBe(3);
    expect(entries.records.length).toBe(3 * 72);
    const r = entries.records.subarray(72, 144);
    expect(hex(r.subarray(0, 32))).toBe(hex(id(2)));
    expect(hex(r.subarray(32, 64))).toBe(hex(packA));
    expect([...r.subarray(64, 72)]).toEqual([0, 0, 0x04, 0x40, 0, 0, 0x1a, 0x00]);
    expect(hex(entries.idAt(2))).toBe(hex(id(3)));
    expect(entries.locationAt(2).length).toBe(17_301_504);
    expect(() => entries.idAt(3)).toThrow(RangeError);
    expect(() => entries.locationAt(-1)).toThrow(RangeError);
    expect(new PackIndexEntries(new Uint8Array(0)).count).toBe(0);
  });

  it('refuse records of the wrong size or with an invalid location', () => {
    expect(() => new PackIndexEntries(new Uint8Array(71))).toThrow(/not a multiple of 72/);
    const bad = (at: number, bytes: number[]) => {
      const records = sample().records.slice();
      records.set(bytes, at);
      return records;
    };
    // Entry 1's object length (bytes 136..144) set to 49, then past the largest chunk object.
    expect(() => new PackIndexEntries(bad(140, [0, 0, 0, 49]))).toThrow(
      /index entry 1: chunk object length 49 outside/,
    );
    expect(() => new PackIndexEntries(bad(140, [0x01, 0x08, 0, 1]))).toThrow(/index entry 1/);
    // Entry 2's offset such that the range ends past 2^32 − 1.
    expect(() => new PackIndexEntries(bad(208, [0xff, 0, 0, 0]))).toThrow(/index entry 2: range/);
    expect(() =>
      PackIndexEntries.from([{ id: id(1), location: { pack: packA, offset: 0, length: 10 } }]),
    ).toThrow(RangeError);
    expect(() =>
      PackIndexEntries.from([{ id: new Uint8Array(31), location: { pack: packA, offset: 0, length: 50 } }]),
    ).toThrow(TypeError);
    expect(() =>
      PackIndexEntries.from([
        { id: id(1), location: { pack: new Uint8Array(8), offset: 0, length: 50 } as PackLocation },
      ]),
    ).toThrow(TypeError);
  });
});

describe('index objects', () => {
  it('round-trip their entries', () => {
    const object = encodePackIndex(keys, key, sample());
    const back = decodePackIndex(keys, key, object);
    expect(plain(back)).toEqual(plain(sample()));
    const empty = decodePackIndex(
      keys,
      key,
      encodePackIndex(keys, key, new PackIndexEntries(new Uint8Array(0))),
    );
    expect(empty.count).toBe(0);
  });

  it('are XChaCha20-Poly1305 of plain CBOR under indexKey, with the key bound in the AAD', () => {
    expect(hex(keys.indexKey)).toBe(
      hex(blake3DeriveKey('stowage 2026-12-02 pack index encryption', targetKey)),
    );
    expect(KDF_CONTEXT.packIndexEncryption).toBe('stowage 2026-12-02 pack index encryption');
    const nonce = new Uint8Array(24).fill(9);
    const object = encodePackIndex(keys, key, sample(), { randomBytes: () => nonce });
    expect(hex(object.subarray(0, 6))).toBe('535457490200');
    expect(hex(object.subarray(6, 30))).toBe(hex(nonce));
    const aad = new Uint8Array([
      ...object.subarray(0, 6),
      ...uuid(volumeId),
      ...uuid(backupId),
      ...Buffer.from(name, 'hex'),
    ]);
    expect(aad.length).toBe(46);
    const body = xchacha20poly1305(keys.indexKey, nonce, aad).decrypt(object.subarray(30));
    // No padding, no length prefix: the body is the whole plaintext.
    expect(object.length).toBe(6 + 24 + body.length + 16);
    const doc = strictCborDecode(body) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['version', 'volumeId', 'backupId', 'entries']);
    expect(doc.version).toBe(2n);
    expect(doc.volumeId).toBe(volumeId);
    expect(doc.backupId).toBe(backupId);
    expect(hex(doc.entries as Uint8Array)).toBe(hex(sample().records));
    // 158 bytes and 72 per entry (while the entries' byte string head stays 2 bytes long, 4 to 255 bytes).
    expect(object.length).toBe(158 + 2 + 3 * 72);
  });

  it('use a fresh random nonce each time', () => {
    const a = encodePackIndex(keys, key, sample());
    const b = encodePackIndex(keys, key, sample());
    expect(hex(a.subarray(6, 30))).not.toBe(hex(b.subarray(6, 30)));
    expect(() => encodePackIndex(keys, key, sample(), { randomBytes: () => new Uint8Array(12) })).toThrow(
      TypeError,
    );
  });

  it('copied to another key fail authentication, naming the key read', () => {
    const object = encodePackIndex(keys, key, sample());
    for (const moved of [
      packIndexObjectKey(otherVolume, backupId, name),
      packIndexObjectKey(volumeId, otherBackup, name),
      packIndexObjectKey(volumeId, backupId, 'fedcba9876543210'),
    ]) {
      expect(() => decodePackIndex(keys, moved, object)).toThrow(IntegrityError);
      expect(() => decodePackIndex(keys, moved, object)).toThrow(`integrity check failed for ${moved}`);
    }
  });

  it('detect tampering, truncation, bad magic and the wrong key', () => {
    const object = encodePackIndex(keys, key, sample());
    expect(() => decodePackIndex(deriveTargetKeys(id(9)), key, object)).toThrow(IntegrityError);
    for (const i of [6, 29, 30, 60, object.length - 17, object.length - 1]) {
      const bad = object.slice();
      bad[i]! ^= 0x01;
      expect(() => decodePackIndex(keys, key, bad), `byte ${i}`).toThrow(IntegrityError);
    }
    for (const length of [0, 5, 45, 46, object.length - 1]) {
      expect(() => decodePackIndex(keys, key, object.subarray(0, length)), `length ${length}`).toThrow(
        IntegrityError,
      );
      expect(() => decodePackIndex(keys, key, object.subarray(0, length))).toThrow(key);
    }
    expect(() => decodePackIndex(keys, key, object.subarray(0, 10))).toThrow(/truncated/);
    for (const magic of [
      [0x53, 0x54, 0x57, 0x43],
      [0x53, 0x54, 0x57, 0x4d],
      [0, 0, 0, 0],
    ]) {
      const bad = object.slice();
      bad.set(magic, 0);
      expect(() => decodePackIndex(keys, key, bad)).toThrow(/not an index object \(bad magic\)/);
    }
    const flags = object.slice();
    flags[5] = 1;
    expect(() => decodePackIndex(keys, key, flags)).toThrow(/unknown flags 1/);
    expect(() => decodePackIndex(keys, key, new Uint8Array(MAX_PACK_INDEX_LENGTH + 1))).toThrow(
      /larger than 67108864/,
    );
  });

  it('report a newer version clearly, refuse version 1, and take version 0 for damage', () => {
    const object = encodePackIndex(keys, key, sample());
    const v = (n: number) => {
      const bad = object.slice();
      bad[4] = n;
      return () => decodePackIndex(keys, key, bad);
    };
    expect(v(3)).toThrow(UnsupportedFormatVersionError);
    expect(v(3)).toThrow(/unsupported format version 3/);
    expect(v(1)).toThrow(UnsupportedFormatVersionError);
    expect(v(0)).toThrow(IntegrityError);
  });

  it('accept a crafted object (the helper is sound) and ignore unknown keys', () => {
    expect(decodePackIndex(keys, key, craft(goodDoc())).count).toBe(3);
    expect(decodePackIndex(keys, key, craft({ ...goodDoc(), future: 'x' })).count).toBe(3);
  });

  const bad: [string, unknown, RegExp][] = [
    ['a version field unlike the header', { ...goodDoc(), version: 3 }, /version field 3/],
    ['no version field', { ...goodDoc(), version: undefined }, /version field undefined/],
    ['another volume id inside', { ...goodDoc(), volumeId: otherVolume }, /names volume/],
    ['another backup id inside', { ...goodDoc(), backupId: otherBackup }, /names backup/],
    ['entries as an array', { ...goodDoc(), entries: [1, 2] }, /entries must be a byte string/],
    ['no entries', { ...goodDoc(), entries: undefined }, /entries must be a byte string/],
    ['entries not a whole number of records', goodDoc(new Uint8Array(73)), /not a multiple of 72/],
    [
      'an entry with an invalid object length',
      goodDoc(sample().records.map((b, i) => (i >= 68 && i < 72 ? 0 : b))),
      /index entry 0: chunk object length 0/,
    ],
    ['a document that is not a map', [1, 2, 3], /not a CBOR map/],
  ];
  for (const [what, doc, message] of bad) {
    it(`refuse an authentic object with ${what} as a format error naming it`, () => {
      const d =
        doc && typeof doc === 'object' && !Array.isArray(doc)
          ? Object.fromEntries(Object.entries(doc).filter(([, v]) => v !== undefined))
          : doc;
      const object = craft(d);
      expect(() => decodePackIndex(keys, key, object)).toThrow(FormatError);
      expect(() => decodePackIndex(keys, key, object)).toThrow(message);
      expect(() => decodePackIndex(keys, key, object)).toThrow(key);
    });
  }

  it('refuse a body that is not the format’s CBOR (a duplicate key, trailing bytes)', () => {
    const body = cborEncode(goodDoc());
    expect(body[0]).toBe(0xa4); // a map of 4 pairs, the first "version": 2 (9 bytes)
    const trailing = craft(undefined, { encode: () => new Uint8Array([...body, 0]) });
    expect(() => decodePackIndex(keys, key, trailing)).toThrow(/trailing bytes/);
    // {version: 2, version: 2, …}: the map's count raised by one and the first pair repeated.
    const dup = new Uint8Array([0xa5, ...body.subarray(1, 10), ...body.subarray(1)]);
    expect(() => decodePackIndex(keys, key, craft(undefined, { encode: () => dup }))).toThrow(
      /duplicate map key/,
    );
  });

  it('random bytes never escape as anything but format errors', () => {
    for (let i = 0; i < 200; i++) {
      const junk = new Uint8Array(randomBytes(i % 3 === 0 ? 46 + (i % 40) : i));
      if (i % 2 === 0 && junk.length >= 6) junk.set([0x53, 0x54, 0x57, 0x49, 2, i % 4 === 0 ? 0 : 1], 0);
      expect(() => decodePackIndex(keys, key, junk)).toThrow(StowageFormatError);
    }
  });
});
