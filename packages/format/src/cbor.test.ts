import { describe, expect, it } from 'vitest';
import { cborDecode, cborEncode } from './cbor.js';
import { FormatError } from './errors.js';

const text = (s: string) => [0x60 + s.length, ...new TextEncoder().encode(s)];

describe('CBOR reading (docs/format.md §2)', () => {
  it('reads what it writes', () => {
    const doc = { version: 2, name: 'x', nested: { bytes: new Uint8Array([1, 2, 3]), list: [1, 2] } };
    const back = cborDecode(cborEncode(doc)) as typeof doc;
    expect({ ...back, nested: { ...back.nested, bytes: [...back.nested.bytes] } }).toEqual({
      ...doc,
      nested: { ...doc.nested, bytes: [1, 2, 3] },
    });
  });

  it('refuses a map with a duplicate key (cbor-x alone keeps the last)', () => {
    const twice = new Uint8Array([0xa2, ...text('a'), 0x01, ...text('a'), 0x02]);
    expect(() => cborDecode(twice, 'config')).toThrow(FormatError);
    expect(() => cborDecode(twice, 'config')).toThrow(/duplicate map key "a"/);
    const nested = new Uint8Array([0xa1, ...text('m'), 0xa2, ...text('k'), 0x01, ...text('k'), 0x01]);
    expect(() => cborDecode(nested)).toThrow(/duplicate/);
  });

  it('refuses __proto__ keys, tags, floats, indefinite lengths, non-text keys and trailing bytes', () => {
    const proto = new Uint8Array([0xa1, ...text('__proto__'), 0xa1, ...text('polluted'), 0x01]);
    expect(() => cborDecode(proto)).toThrow(/__proto__/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(() => cborDecode(new Uint8Array([0xc1, 0x01]))).toThrow(/major type 6/);
    expect(() => cborDecode(new Uint8Array([0xf9, 0x3c, 0x00]))).toThrow(/major type 7/);
    expect(() => cborDecode(new Uint8Array([0x5f, 0x41, 0x00, 0xff]))).toThrow(/indefinite/);
    expect(() => cborDecode(new Uint8Array([0xa1, 0x01, 0x02]))).toThrow(/text strings/);
    expect(() => cborDecode(new Uint8Array([0x01, 0x02]))).toThrow(/trailing/);
    expect(() => cborDecode(new Uint8Array([0x45, 0x00]))).toThrow(/truncated/);
  });
});
