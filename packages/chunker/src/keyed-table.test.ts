import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GEAR } from './gear-table.js';
import {
  type ChunkerParams,
  ChunkerParamsError,
  chunkBuffer,
  GEAR_TABLE_BYTES,
  type GearTable,
  gearTableFromBytes,
  StreamingChunker,
} from './index.js';
import { referenceChunks } from './reference.js';
import { feedInPieces, prng, randomBytes } from './testdata/helpers.js';

// A keyed gear table (format version 2 derives one per target from its key) changes FastCDC's table and
// nothing else. Checked three ways: a table equal to the crate's seeded one reproduces the crate's seeded
// vectors; the WASM streaming kernel agrees with the pure-TypeScript reference on random tables, data and
// push sizes (zero runs included: the fast path's fixed point depends on GEAR[0]); and pinned vectors of one
// table on the crate's fixture catch any drift.

const sekien = new Uint8Array(readFileSync(new URL('./testdata/SekienAkashita.jpg', import.meta.url)));
const P16K: ChunkerParams = { minSize: 4096, avgSize: 16384, maxSize: 65535, level: 1, seed: 0n };

function tableBytes(entries: readonly bigint[]): Uint8Array {
  const bytes = new Uint8Array(GEAR_TABLE_BYTES);
  const view = new DataView(bytes.buffer);
  for (const [i, entry] of entries.entries()) view.setBigUint64(i * 8, entry, false);
  return bytes;
}

function randomTable(seed: number): GearTable {
  return gearTableFromBytes(randomBytes(GEAR_TABLE_BYTES, seed));
}

describe('keyed gear tables', () => {
  it("reproduce the crate's seed-666 vectors when the table is the crate's seeded table", () => {
    const seeded = gearTableFromBytes(tableBytes(GEAR.map((g) => g ^ 666n)));
    // test_cut_sekien_16k_chunks_seed_666 of the fastcdc crate 3.2 (also in vectors.test.ts, by seed).
    const expected = [
      { hash: 9312357714466240148n, length: 10605 },
      { hash: 226910853333574584n, length: 55745 },
      { hash: 12271755243986371352n, length: 11346 },
      { hash: 14153975939352546047n, length: 5883 },
      { hash: 5890158701071314778n, length: 11586 },
      { hash: 8981594897574481255n, length: 14301 },
    ];
    const fromTable = chunkBuffer(sekien, P16K, { gear: seeded }).map(({ hash, length }) => ({
      hash,
      length,
    }));
    expect(fromTable).toEqual(expected);
    expect(referenceChunks(sekien, P16K, seeded).map(({ hash, length }) => ({ hash, length }))).toEqual(
      expected,
    );
    expect(chunkBuffer(sekien, { ...P16K, seed: 666n }).map((c) => c.length)).toEqual(
      expected.map((c) => c.length),
    );
  });

  it('cut where the table says, not where the published table does', () => {
    const published = chunkBuffer(sekien, P16K).map((c) => c.length);
    const keyed = chunkBuffer(sekien, P16K, { gear: randomTable(1) }).map((c) => c.length);
    expect(keyed).not.toEqual(published);
    expect(keyed.reduce((a, b) => a + b, 0)).toBe(sekien.length);
    // Pinned: this table (randomBytes(2048, 1) of testdata/helpers.ts) on the crate's fixture.
    expect(keyed).toEqual(PINNED_TABLE_1_SEKIEN_16K);
  });

  it('stream exactly as the reference cuts, for random tables, data, zero runs and push sizes', () => {
    const next = prng(7);
    for (let round = 0; round < 12; round++) {
      const table = randomTable(100 + round);
      const data = randomBytes(300_000 + (next() % 200_000), 200 + round);
      // Zero runs of many lengths, where the fast path skips and must land exactly where hashing would.
      for (let z = 0; z < 6; z++) {
        const at = next() % (data.length - 70_000);
        data.fill(0, at, at + 64 + (next() % 65_000));
      }
      const params: ChunkerParams = { ...P16K, level: (round % 4) as 0 | 1 | 2 | 3 };
      const expected = referenceChunks(data, params, table).map((c) => c.length);
      const chunker = new StreamingChunker(params, { gear: table });
      const streamed = [
        ...feedInPieces(
          data,
          () => 1 + (next() % 40_000),
          (piece) => chunker.push(piece),
        ),
        ...chunker.finish(),
      ];
      expect(streamed).toEqual(expected);
    }
    const zeros = new Uint8Array(1 << 20);
    for (const seed of [3, 4, 5]) {
      const table = randomTable(seed);
      expect(chunkBuffer(zeros, P16K, { gear: table }).map((c) => c.length)).toEqual(
        referenceChunks(zeros, P16K, table).map((c) => c.length),
      );
    }
  });

  it('are refused when malformed or mixed with a seed', () => {
    expect(() => gearTableFromBytes(new Uint8Array(2047))).toThrow(ChunkerParamsError);
    expect(() => new StreamingChunker({ ...P16K, seed: 1n }, { gear: randomTable(1) })).toThrow(/seed/);
    expect(() => new StreamingChunker(P16K, { gear: { gear: [], gearLs: [] } as never })).toThrow(
      /gearTableFromBytes/,
    );
  });
});

const PINNED_TABLE_1_SEKIEN_16K = [17616, 19578, 18843, 25296, 25607, 2526];
