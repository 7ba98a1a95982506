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
  // cbor-x keeps the last of two equal keys and would assign a `__proto__` key to the prototype: both are
  // refused before it sees the bytes (docs/format.md §2), so one document has one meaning for every reader.
  checkMapKeys(bytes, objectKey);
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new FormatError('malformed CBOR', objectKey, { cause });
  }
}

/** Deepest nesting a document may have; ours have two or three levels. */
const MAX_CBOR_DEPTH = 16;

/**
 * Walks the data item's heads (skipping string contents) and refuses a map with a duplicate or a
 * `__proto__` key, anything the format's CBOR subset does not allow (indefinite lengths, tags, floats and
 * simple values), nesting past MAX_CBOR_DEPTH, and trailing bytes.
 */
function checkMapKeys(bytes: Uint8Array, objectKey: string | undefined): void {
  const fail = (why: string): never => {
    throw new FormatError(`malformed CBOR: ${why}`, objectKey);
  };
  let at = 0;
  const head = (): { major: number; length: number } => {
    if (at >= bytes.length) fail('truncated');
    const initial = bytes[at++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (major === 6 || major === 7) fail(`major type ${major} (tags, floats, simple values) is not allowed`);
    if (info < 24) return { major, length: info };
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (size === 0) fail('indefinite lengths are not allowed');
    if (at + size > bytes.length) fail('truncated');
    let value = 0;
    for (let i = 0; i < size; i++) value = value * 256 + bytes[at++]!;
    return { major, length: value };
  };
  const text = (length: number): string => {
    if (at + length > bytes.length) fail('truncated');
    const s = new TextDecoder('utf-8', { fatal: false }).decode(bytes.subarray(at, at + length));
    at += length;
    return s;
  };
  const item = (depth: number): void => {
    if (depth > MAX_CBOR_DEPTH) fail('nested too deeply');
    const { major, length } = head();
    if (major === 0 || major === 1) return;
    if (major === 2 || major === 3) {
      if (at + length > bytes.length) fail('truncated');
      at += length;
      return;
    }
    if (major === 4) {
      for (let i = 0; i < length; i++) item(depth + 1);
      return;
    }
    // major 5: a map with text keys
    const keys = new Set<string>();
    for (let i = 0; i < length; i++) {
      const key = head();
      if (key.major !== 3) fail('map keys must be text strings');
      const name = text(key.length);
      if (keys.has(name)) fail(`duplicate map key ${JSON.stringify(name)}`);
      if (name === '__proto__') fail('map key "__proto__" is not allowed');
      keys.add(name);
      item(depth + 1);
    }
  };
  item(0);
  if (at !== bytes.length) fail('trailing bytes after the data item');
}

/**
 * An unsigned integer in the shape cbor-x encodes as CBOR major type 0 with the shortest length: numbers up
 * to 2^32−1 stay numbers; larger ones become bigints (cbor-x writes numbers ≥ 2^32 as floats).
 */
export function cborUint(value: number | bigint): number | bigint {
  if (typeof value === 'bigint') return value <= 0xffffffffn ? Number(value) : value;
  return value <= 0xffffffff ? value : BigInt(value);
}
