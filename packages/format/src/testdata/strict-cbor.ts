// A deliberately tiny, independent CBOR reader (RFC 8949 subset: unsigned ints, byte/text strings, arrays,
// maps with text keys; definite lengths, shortest-form heads only; no tags, floats or simple values). Tests
// use it to prove manifests and configs are plain interoperable CBOR, not cbor-x extensions.
export type StrictCbor = bigint | Uint8Array | string | StrictCbor[] | { [key: string]: StrictCbor };

export function strictCborDecode(bytes: Uint8Array): StrictCbor {
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new Error('truncated CBOR');
  };
  const head = (): { major: number; value: bigint } => {
    need(1);
    const initial = bytes[at++]!;
    const major = initial >> 5;
    const info = initial & 0x1f;
    if (info < 24) return { major, value: BigInt(info) };
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (size === 0) throw new Error(`unsupported additional info ${info}`);
    need(size);
    let value = 0n;
    for (let i = 0; i < size; i++) value = (value << 8n) | BigInt(bytes[at++]!);
    const minimum = size === 1 ? 24n : 1n << BigInt((size / 2) * 8);
    if (value < minimum) throw new Error('non-shortest integer head');
    return { major, value };
  };
  const item = (): StrictCbor => {
    const { major, value } = head();
    const n = Number(value);
    switch (major) {
      case 0:
        return value;
      case 2:
      case 3: {
        need(n);
        const slice = bytes.slice(at, at + n);
        at += n;
        return major === 2 ? slice : new TextDecoder('utf-8', { fatal: true }).decode(slice);
      }
      case 4:
        return Array.from({ length: n }, () => item());
      case 5: {
        const map: { [key: string]: StrictCbor } = {};
        for (let i = 0; i < n; i++) {
          const key = item();
          if (typeof key !== 'string') throw new Error('non-text map key');
          if (Object.hasOwn(map, key)) throw new Error(`duplicate key ${key}`);
          map[key] = item();
        }
        return map;
      }
      default:
        throw new Error(`unsupported major type ${major}`);
    }
  };
  const value = item();
  if (at !== bytes.length) throw new Error('trailing bytes after CBOR item');
  return value;
}
