import { describe, expect, it } from 'vitest';
import { CHUNK_OVERHEAD, maxChunkObjectLength, openChunk, sealChunk } from './chunk.js';
import { MAX_CHUNK_LENGTH } from './compression.js';
import { FormatError, IntegrityError } from './errors.js';
import { deriveTargetKeys } from './keys.js';
import {
  checkLocation,
  DEFAULT_PACK_TARGET,
  describeLocation,
  LOCATION_LENGTH,
  locationProblem,
  MAX_PACK_LENGTH,
  MAX_PACKED_OBJECT_LENGTH,
  MIN_PACKED_OBJECT_LENGTH,
  newPackId,
  PACK_ID_LENGTH,
  PACKS_PREFIX,
  type PackLocation,
  packIdFromHex,
  packObjectKey,
  parsePackObjectKey,
  readLocation,
  writeLocation,
} from './pack.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(3));
const pack = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + (i % 16));
const packHex = Buffer.from(pack).toString('hex');

describe('pack ids and keys', () => {
  it('map a pack id to packs/<hh>/<64 hex> and back', () => {
    expect(PACKS_PREFIX).toBe('packs/');
    expect(packObjectKey(pack)).toBe(`packs/a0/${packHex}`);
    expect(packObjectKey(packHex)).toBe(`packs/a0/${packHex}`);
    expect(parsePackObjectKey(`packs/a0/${packHex}`)).toBe(packHex);
    expect(Buffer.from(packIdFromHex(packHex)).equals(Buffer.from(pack))).toBe(true);
  });

  it('refuse ids and keys of any other shape', () => {
    expect(() => packObjectKey(new Uint8Array(31))).toThrow(TypeError);
    expect(() => packObjectKey(packHex.toUpperCase())).toThrow(FormatError);
    expect(() => packIdFromHex(packHex.slice(2))).toThrow(FormatError);
    for (const key of [
      `packs/a1/${packHex}`, // the directory is not the id's first byte
      `packs/A0/${packHex.toUpperCase()}`,
      `packs/a0/${packHex}x`,
      `packs/a0/${packHex.slice(1)}`,
      `chunks/a0/${packHex}`,
      `packs/${packHex}`,
      `x/packs/a0/${packHex}`,
    ]) {
      expect(parsePackObjectKey(key), key).toBeUndefined();
    }
  });

  it('are fresh random 32-byte ids', () => {
    const a = newPackId();
    const b = newPackId();
    expect(a.length).toBe(PACK_ID_LENGTH);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(Buffer.from(newPackId(() => pack)).equals(Buffer.from(pack))).toBe(true);
    expect(() => newPackId(() => new Uint8Array(16))).toThrow(TypeError);
  });
});

describe('locations', () => {
  it('have the bounds the format states', () => {
    expect(DEFAULT_PACK_TARGET).toBe(8 * 1024 * 1024);
    expect(MAX_PACK_LENGTH).toBe(2 ** 32 - 1);
    expect(MIN_PACKED_OBJECT_LENGTH).toBe(CHUNK_OVERHEAD);
    expect(MIN_PACKED_OBJECT_LENGTH).toBe(50);
    expect(MAX_PACKED_OBJECT_LENGTH).toBe(maxChunkObjectLength(MAX_CHUNK_LENGTH));
    expect(MAX_PACKED_OBJECT_LENGTH).toBe(17_301_504); // Padmé(50 + 16 MiB) = 33 × 512 KiB
    expect(LOCATION_LENGTH).toBe(40);
  });

  it('are written as pack id ‖ u32be(offset) ‖ u32be(length) and read back', () => {
    const out = new Uint8Array(4 + LOCATION_LENGTH).fill(0xee);
    const location: PackLocation = { pack, offset: 0x01020304, length: 0x0a0b0c };
    writeLocation(out, 4, location);
    expect(Buffer.from(out.subarray(4, 36)).equals(Buffer.from(pack))).toBe(true);
    expect([...out.subarray(36, 44)]).toEqual([1, 2, 3, 4, 0x00, 0x0a, 0x0b, 0x0c]);
    expect([...out.subarray(0, 4)]).toEqual([0xee, 0xee, 0xee, 0xee]);
    const back = readLocation(out, 4);
    expect({ ...back, pack: Buffer.from(back.pack).toString('hex') }).toEqual({
      pack: packHex,
      offset: 0x01020304,
      length: 0x0a0b0c,
    });
  });

  const cases: [string, number, number, RegExp | undefined][] = [
    ['the smallest object at 0', 0, 50, undefined],
    ['the largest object', 0, 17_301_504, undefined],
    ['a range ending at the last byte a pack may have', 2 ** 32 - 1 - 50, 50, undefined],
    ['an object shorter than any chunk object', 0, 49, /chunk object length 49 outside 50\.\.17301504/],
    ['an object of 0 bytes', 100, 0, /chunk object length 0/],
    ['an object longer than the largest chunk object', 0, 17_301_505, /outside/],
    ['a range past a pack’s maximum', 2 ** 32 - 50, 50, /ends past a pack's maximum/],
    ['a negative offset', -1, 50, /pack offset -1 is invalid/],
    ['a fractional offset', 1.5, 50, /pack offset 1.5/],
    ['a fractional length', 0, 50.5, /chunk object length 50.5/],
  ];
  for (const [what, offset, length, problem] of cases) {
    it(`${problem ? 'refuse' : 'accept'} ${what}`, () => {
      if (problem) {
        expect(locationProblem(offset, length)).toMatch(problem);
        expect(() => checkLocation({ pack, offset, length })).toThrow(RangeError);
        expect(() => writeLocation(new Uint8Array(40), 0, { pack, offset, length })).toThrow(RangeError);
      } else {
        expect(locationProblem(offset, length)).toBeUndefined();
        expect(() => checkLocation({ pack, offset, length })).not.toThrow();
      }
    });
  }

  it('need a 32-byte pack id', () => {
    expect(() => checkLocation({ pack: new Uint8Array(31), offset: 0, length: 50 })).toThrow(TypeError);
    expect(() => checkLocation({ offset: 0, length: 50 } as unknown as PackLocation)).toThrow(TypeError);
    expect(() => checkLocation(undefined as unknown as PackLocation)).toThrow(TypeError);
  });

  it('are named in errors by pack and range', () => {
    expect(describeLocation({ pack, offset: 6656, length: 1088 })).toBe(`packs/a0/${packHex}@6656+1088`);
  });
});

describe('packs', () => {
  it('are chunk objects concatenated: each is read by its range and its id, naming the range', () => {
    const a = sealChunk(keys, new Uint8Array(5000).fill(7));
    const b = sealChunk(keys, new Uint8Array(Buffer.from('not much to compress here')));
    const packBytes = new Uint8Array([...a.object, ...b.object]);
    const la = { pack, offset: 0, length: a.object.length };
    const lb = { pack, offset: a.object.length, length: b.object.length };
    const range = (l: PackLocation) => packBytes.subarray(l.offset, l.offset + l.length);
    expect(openChunk(keys, a.id, range(la), 5000, describeLocation(la))).toEqual(
      new Uint8Array(5000).fill(7),
    );
    expect(Buffer.from(openChunk(keys, b.id, range(lb), undefined, describeLocation(lb))).toString()).toBe(
      'not much to compress here',
    );
    // The wrong range, or the right range under another chunk's id, fails, naming the range read.
    const shifted = { ...lb, offset: lb.offset - 1 };
    expect(() => openChunk(keys, b.id, range(shifted), undefined, describeLocation(shifted))).toThrow(
      IntegrityError,
    );
    expect(() => openChunk(keys, b.id, range(shifted), undefined, describeLocation(shifted))).toThrow(
      describeLocation(shifted),
    );
    expect(() => openChunk(keys, a.id, range(lb), undefined, describeLocation(lb))).toThrow(
      `integrity check failed for ${describeLocation(lb)}`,
    );
    // A range cut short (a pack truncated behind the reader's back) fails too.
    const short = range(lb).subarray(0, lb.length - 1);
    expect(() => openChunk(keys, b.id, short, undefined, describeLocation(lb))).toThrow(IntegrityError);
  });
});
