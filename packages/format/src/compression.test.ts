import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compressChunkBody, zstdDecompressExact } from './compression.js';

const MiB = 1024 * 1024;
const text = (seed: number) => new TextEncoder().encode(`log line ${seed} `.repeat(MiB / 12).slice(0, MiB));

describe('compressChunkBody', () => {
  it('compresses compressible chunks and stores incompressible ones raw, whatever came before', () => {
    for (let round = 0; round < 3; round++) {
      // A streak of compressible chunks (sampling is skipped after two of them)…
      for (let i = 0; i < 4; i++) {
        const chunk = text(i);
        const body = compressChunkBody(chunk);
        expect(body).toBeDefined();
        expect(body!.length).toBeLessThan(chunk.length / 4);
        expect(zstdDecompressExact(body!, { maxLength: MiB, expectedLength: chunk.length })).toEqual(chunk);
      }
      // …then random data: still stored raw, by the full attempt when the sample was skipped.
      expect(compressChunkBody(randomBytes(MiB))).toBeUndefined();
      expect(compressChunkBody(randomBytes(MiB))).toBeUndefined();
    }
  });
});
