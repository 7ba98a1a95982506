import { Decoder, Encoder } from 'cbor-x';
import { FormatError } from './errors.js';

// Plain RFC 8949 CBOR only: no record/structure extensions, no tag 64 on byte strings, minimal map headers,
// so any CBOR library decodes what we write. Created on first use: nothing happens at import.
let encoder: Encoder | undefined;
let decoder: Decoder | undefined;

export function cborEncode(value: unknown): Uint8Array {
  encoder ??= new Encoder({
    useRecords: false,
    mapsAsObjects: true,
    tagUint8Array: false,
    variableMapSize: true,
    useFloat32: 0,
  });
  return encoder.encode(value);
}

export function cborDecode(bytes: Uint8Array, objectKey?: string): unknown {
  decoder ??= new Decoder({ useRecords: false, mapsAsObjects: true });
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new FormatError('malformed CBOR', objectKey, { cause });
  }
}

/**
 * An unsigned integer in the shape cbor-x encodes as CBOR major type 0 with the shortest length: numbers up
 * to 2^32−1 stay numbers; larger ones become bigints (cbor-x writes numbers ≥ 2^32 as floats).
 */
export function cborUint(value: number | bigint): number | bigint {
  if (typeof value === 'bigint') return value <= 0xffffffffn ? Number(value) : value;
  return value <= 0xffffffff ? value : BigInt(value);
}
