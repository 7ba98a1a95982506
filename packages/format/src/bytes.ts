// Small byte helpers shared by the encoders. Internal: not exported from the package index.

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

/** Strict lower-case hex decoding; returns undefined on anything else. */
export function fromHex(hex: string): Uint8Array | undefined {
  if (!HEX_RE.test(hex)) return undefined;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Constant-time comparison (lengths are public). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** True for a lower-case, hyphenated UUID string (any version). */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_RE.test(value);
}

/** The 16 bytes of a lower-case UUID string (caller has validated it). */
export function uuidBytes(uuid: string): Uint8Array {
  return fromHex(uuid.replaceAll('-', ''))!;
}

export const utf8 = new TextEncoder();

/** Writes `value` (< 2^56) as 7 big-endian bytes at `at + 1` (records keep a tag byte at `at`). */
export function writeUint56After(records: Uint8Array, at: number, value: number): void {
  // High 3 bytes from the part above 2^32, low 4 from the rest.
  const high = Math.floor(value / 2 ** 32);
  const low = value >>> 0;
  records[at + 1] = (high >>> 16) & 0xff;
  records[at + 2] = (high >>> 8) & 0xff;
  records[at + 3] = high & 0xff;
  records[at + 4] = (low >>> 24) & 0xff;
  records[at + 5] = (low >>> 16) & 0xff;
  records[at + 6] = (low >>> 8) & 0xff;
  records[at + 7] = low & 0xff;
}

/** Reads what `writeUint56After` wrote. */
export function readUint56After(records: Uint8Array, at: number): number {
  const high = (records[at + 1]! << 16) | (records[at + 2]! << 8) | records[at + 3]!;
  const low =
    ((records[at + 4]! << 24) | (records[at + 5]! << 16) | (records[at + 6]! << 8) | records[at + 7]!) >>> 0;
  return high * 2 ** 32 + low;
}
