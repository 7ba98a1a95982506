import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CHUNK_HEADER_LENGTH,
  CHUNK_OVERHEAD,
  chunkId,
  chunkIdToHex,
  chunkObjectKey,
  chunkObjectLength,
  maxChunkObjectLength,
  openChunk,
  readChunkHeader,
  sealChunk,
  sealChunkInto,
} from './chunk.js';
import { MAX_CHUNK_LENGTH } from './compression.js';
import { FormatError, IntegrityError, UnsupportedFormatVersionError } from './errors.js';
import { deriveTargetKeys } from './keys.js';
import { padmeLength } from './padding.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(7));
const otherKeys = deriveTargetKeys(new Uint8Array(32).fill(8));

function text(length: number): Uint8Array {
  const words = 'the quick brown fox jumps over the lazy dog; stowage backs up block volumes to buckets. ';
  return new Uint8Array(Buffer.from(words.repeat(Math.ceil(length / words.length)).slice(0, length)));
}

describe('chunk objects', () => {
  it('round-trips compressible and incompressible chunks', () => {
    for (const plaintext of [
      text(100_000),
      new Uint8Array(randomBytes(300_000)),
      text(1),
      new Uint8Array(0),
    ]) {
      const sealed = sealChunk(keys, plaintext);
      expect(sealed.id).toEqual(chunkId(keys, plaintext));
      const opened = openChunk(keys, sealed.id, sealed.object, plaintext.length);
      expect(Buffer.from(opened).equals(Buffer.from(plaintext))).toBe(true);
      expect(openChunk(keys, chunkIdToHex(sealed.id), sealed.object)).toEqual(opened);
    }
  });

  it('compresses text and stores random data raw', () => {
    const t = sealChunk(keys, text(1 << 20));
    expect(t.compressed).toBe(true);
    expect(t.object.length).toBeLessThan(1 << 16);
    expect(t.object[5]).toBe(1);
    const r = sealChunk(keys, new Uint8Array(randomBytes(1 << 20)));
    expect(r.compressed).toBe(false);
    // Padmé of 1 MiB + 50 bytes: 33 grains of 32 KiB.
    expect(r.object.length).toBe(chunkObjectLength(1 << 20));
    expect(r.object.length).toBe(33 * 32 * 1024);
    expect(r.object[5]).toBe(0);
    // Below the sampling threshold the full attempt decides, and still falls back to raw.
    const small = sealChunk(keys, new Uint8Array(randomBytes(1000)));
    expect(small.compressed).toBe(false);
  });

  it('is deterministic and keyed', () => {
    const plaintext = text(50_000);
    const a = sealChunk(keys, plaintext);
    const b = sealChunk(keys, plaintext.slice());
    expect(Buffer.from(a.object).equals(Buffer.from(b.object))).toBe(true);
    const c = sealChunk(otherKeys, plaintext);
    expect(chunkIdToHex(c.id)).not.toBe(chunkIdToHex(a.id));
    expect(() => openChunk(otherKeys, a.id, a.object)).toThrow(IntegrityError);
  });

  it('derives a different nonce for the same plaintext stored raw and compressed', () => {
    const plaintext = text(200_000);
    const compressed = sealChunk(keys, plaintext);
    const raw = sealChunk(keys, plaintext, {
      compression: { level: 3, sampleSize: 0, sampleMaxRatio: 1, minSavingDivisor: 1 },
    });
    expect(compressed.compressed).toBe(true);
    // minSavingDivisor 1 demands saving everything: never met, so raw.
    expect(raw.compressed).toBe(false);
    const nonce = (o: Uint8Array) => Buffer.from(o.subarray(CHUNK_HEADER_LENGTH, CHUNK_HEADER_LENGTH + 24));
    expect(nonce(compressed.object).equals(nonce(raw.object))).toBe(false);
    expect(openChunk(keys, raw.id, raw.object)).toEqual(plaintext);
  });

  it('names the object in every integrity error: any flipped bit, truncation, wrong id, wrong length', () => {
    const plaintext = text(3000);
    const { id, object } = sealChunk(keys, plaintext);
    const key = chunkObjectKey(id);
    const expectIntegrity = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        expect(error).toBeInstanceOf(IntegrityError);
        expect((error as IntegrityError).objectKey).toBe(key);
        expect((error as Error).message).toContain(key);
        return;
      }
      throw new Error('expected an IntegrityError');
    };
    for (let i = 0; i < object.length; i++) {
      if (i === 4) continue; // the version byte: a higher value is "unsupported", tested below
      const bad = object.slice();
      bad[i]! ^= 1 << (i % 8);
      expectIntegrity(() => openChunk(keys, id, bad));
    }
    for (const length of [0, 5, CHUNK_OVERHEAD - 1, CHUNK_OVERHEAD, object.length - 1]) {
      expectIntegrity(() => openChunk(keys, id, object.subarray(0, length)));
    }
    const wrongId = id.slice();
    wrongId[0]! ^= 1;
    expect(() => openChunk(keys, wrongId, object)).toThrow(IntegrityError);
    expectIntegrity(() => openChunk(keys, id, object, plaintext.length + 1));
    expectIntegrity(() => openChunk(keys, id, object, MAX_CHUNK_LENGTH + 1));
    const raw = sealChunk(keys, new Uint8Array(randomBytes(500)));
    expect(() => openChunk(keys, raw.id, raw.object, 499)).toThrow(IntegrityError);
  });

  it('names the object by the name given instead of its chunks/ key (a packed chunk: its pack and range)', () => {
    const { id, object } = sealChunk(keys, text(2000));
    const name = `packs/ab/${'ab'.repeat(32)}@8192+${object.length}`;
    const bad = object.slice();
    bad[40]! ^= 1;
    for (const fn of [
      () => openChunk(keys, id, bad, undefined, name),
      () => openChunk(keys, id, object.subarray(0, 49), undefined, name),
      () => openChunk(keys, id, object, 1999, name),
    ]) {
      expect(fn).toThrow(IntegrityError);
      expect(fn).toThrow(`integrity check failed for ${name}: `);
      try {
        fn();
      } catch (error) {
        expect((error as IntegrityError).objectKey).toBe(name);
      }
    }
    expect(openChunk(keys, id, object, 2000, name)).toEqual(text(2000));
  });

  it('reports a newer format version as unsupported, and version 1 as no longer read', () => {
    const { id, object } = sealChunk(keys, text(100));
    const bad = object.slice();
    bad[4] = 3;
    expect(() => openChunk(keys, id, bad)).toThrow(UnsupportedFormatVersionError);
    expect(() => openChunk(keys, id, bad)).toThrow(/unsupported format version 3/);
    bad[4] = 1;
    expect(() => openChunk(keys, id, bad)).toThrow(/format version 1 .*no longer reads/);
    expect(readChunkHeader(object)).toEqual({ version: 2, compressed: true });
  });

  it('pads every object to its Padmé length, authenticated, and refuses any other padding', () => {
    for (const length of [1, 100, 4095, 65_536, 300_001, 1 << 20, (1 << 22) - 7]) {
      const plaintext = new Uint8Array(randomBytes(length));
      const sealed = sealChunk(keys, plaintext);
      expect(sealed.compressed).toBe(false);
      expect(sealed.object.length).toBe(padmeLength(length + CHUNK_OVERHEAD));
      expect(sealed.padding).toBe(sealed.object.length - CHUNK_OVERHEAD - length);
      expect(sealed.object.length / (length + CHUNK_OVERHEAD)).toBeLessThan(1.12);
      expect(openChunk(keys, sealed.id, sealed.object, length)).toEqual(plaintext);
    }
    const { id, object } = sealChunk(keys, new Uint8Array(randomBytes(300_001)));
    // The padding is inside the ciphertext: flipping a padding byte fails the tag like any other byte.
    const flipped = object.slice();
    flipped[object.length - 20]! ^= 1;
    expect(() => openChunk(keys, id, flipped)).toThrow(IntegrityError);
    // An object cut to its unpadded length (or grown) is not the padded length of its body.
    expect(() => openChunk(keys, id, object.subarray(0, 300_001 + CHUNK_OVERHEAD))).toThrow(IntegrityError);
  });

  it('spells object keys and validates ids', () => {
    const id = new Uint8Array(32).fill(0xab);
    expect(chunkObjectKey(id)).toBe(`chunks/ab/${'ab'.repeat(32)}`);
    expect(chunkObjectKey('ab'.repeat(32))).toBe(`chunks/ab/${'ab'.repeat(32)}`);
    expect(() => chunkObjectKey('AB'.repeat(32))).toThrow(FormatError);
    expect(() => chunkObjectKey('ab'.repeat(31))).toThrow(FormatError);
    expect(() => chunkObjectKey(new Uint8Array(31))).toThrow(FormatError);
  });

  it('refuses chunks above the format maximum', () => {
    expect(() => sealChunk(keys, new Uint8Array(MAX_CHUNK_LENGTH + 1))).toThrow(RangeError);
  });
});

describe('sealChunkInto', () => {
  it('writes the same object as sealChunk into a reused buffer, and refuses a buffer too small', () => {
    const out = new Uint8Array(maxChunkObjectLength(100_000));
    for (const plaintext of [
      new Uint8Array(100_000).fill(65),
      new Uint8Array(100_000).map((_, i) => (i * 7919) % 251),
    ]) {
      const expected = sealChunk(keys, plaintext);
      const r = sealChunkInto(keys, plaintext, out);
      expect(Buffer.from(out.subarray(0, r.length)).equals(Buffer.from(expected.object))).toBe(true);
      expect(r.compressed).toBe(expected.compressed);
    }
    expect(() => sealChunkInto(keys, new Uint8Array(10), new Uint8Array(20))).toThrow(RangeError);
  });
});
