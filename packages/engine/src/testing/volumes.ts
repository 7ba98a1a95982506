import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

/** Deterministic bytes from a seed (SHA-256 in counter mode): random-looking, reproducible test data. */
export function seededBytes(seed: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let counter = 0;
  for (let at = 0; at < length; at += 32) {
    const block = createHash('sha256').update(`${seed}/${counter++}`).digest();
    out.set(block.subarray(0, Math.min(32, length - at)), at);
  }
  return out;
}

/** Compressible, text-like bytes. */
export function textBytes(seed: number, length: number): Uint8Array {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
  let s = '';
  for (let i = 0; s.length < length; i++)
    s += `${words[(i * 7 + seed) % words.length]}${i % 13 === 0 ? '\n' : ' '}`;
  return new TextEncoder().encode(s.slice(0, length));
}

export interface Region {
  offset: number;
  data: Uint8Array;
}

/** Writes a sparse image of `size` bytes with `regions` of data; everything else reads as zeros. */
export async function writeImage(path: string, size: number, regions: Region[]): Promise<void> {
  const f = await open(path, 'w');
  try {
    await f.truncate(size);
    for (const r of regions) await f.write(r.data, 0, r.data.length, r.offset);
  } finally {
    await f.close();
  }
}

/** A volume-like image: random and text regions with zero gaps between them. */
export async function writeTestVolume(path: string, size: number, seed = 'volume'): Promise<void> {
  const regions: Region[] = [];
  const step = Math.max(1, Math.floor(size / 8));
  for (let i = 0, at = 0; at < size; i++, at += step) {
    const len = Math.min(Math.floor(step / 2), size - at);
    regions.push({ offset: at, data: i % 2 === 0 ? seededBytes(`${seed}${i}`, len) : textBytes(i, len) });
  }
  await writeImage(path, size, regions);
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
