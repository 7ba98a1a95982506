import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type ChunkerParams, chunkBuffer, type NormalizationLevel, StreamingChunker } from './index.js';
import { referenceChunks } from './reference.js';
import { feedInPieces, prng } from './testdata/helpers.js';

// The published unit-test vectors of the fastcdc crate 3.2, src/v2020/mod.rs (tests `test_cut_sekien_*`,
// `test_iter_sekien_16k_chunks`, `test_stream_sekien_16k_chunks*`, `test_cut_all_zeros`), on the crate's
// test/fixtures/SekienAkashita.jpg. Hashes are the crate's `Chunk::hash`; digests are MD5 of the chunk bytes.
// The crate publishes no vector for normalization level 2; it is covered by the cross-checks in
// streaming.test.ts.

const sekien = new Uint8Array(readFileSync(new URL('./testdata/SekienAkashita.jpg', import.meta.url)));

interface Vector {
  name: string;
  sizes: [number, number, number];
  level: NormalizationLevel;
  seed: bigint;
  chunks: Array<{ hash: bigint; length: number; md5?: string }>;
}

const vectors: Vector[] = [
  {
    name: '16k chunks (test_cut_sekien_16k_chunks, test_iter/stream_sekien_16k_chunks)',
    sizes: [4096, 16384, 65535],
    level: 1,
    seed: 0n,
    chunks: [
      { hash: 17968276318003433923n, length: 21325, md5: '2bb52734718194617c957f5e07ee6054' },
      { hash: 8197189939299398838n, length: 17140, md5: 'badfb0757fe081c20336902e7131f768' },
      { hash: 13019990849178155730n, length: 28084, md5: '18412d7414de6eb42f638351711f729d' },
      { hash: 4509236223063678303n, length: 18217, md5: '04fe1405fc5f960363bfcd834c056407' },
      { hash: 2504464741100432583n, length: 24700, md5: '1aa7ad95f274d6ba34a983946ebc5af3' },
    ],
  },
  {
    name: '16k chunks, seed 666 (test_cut_sekien_16k_chunks_seed_666, test_stream_sekien_16k_chunks_seed_666)',
    sizes: [4096, 16384, 65535],
    level: 1,
    seed: 666n,
    chunks: [
      { hash: 9312357714466240148n, length: 10605, md5: '09734863c8022bb0314f3de8c87a6d00' },
      { hash: 226910853333574584n, length: 55745, md5: '4e49a6aa921341881f47ec0bbcdba6a9' },
      { hash: 12271755243986371352n, length: 11346, md5: 'f4b0cf33b1521be2a6af69df9bf90455' },
      { hash: 14153975939352546047n, length: 5883, md5: 'f392b5df328ce6c43de7e19464a455b4' },
      { hash: 5890158701071314778n, length: 11586, md5: 'a6053ce5cd98e6b717e7f97e71d743ba' },
      { hash: 8981594897574481255n, length: 14301, md5: '0db10fbf2685498e16e5440f5e697e2f' },
    ],
  },
  {
    name: '32k chunks (test_cut_sekien_32k_chunks)',
    sizes: [8192, 32768, 131072],
    level: 1,
    seed: 0n,
    chunks: [
      { hash: 15733367461443853673n, length: 66549 },
      { hash: 6321136627705800457n, length: 42917 },
    ],
  },
  {
    name: '64k chunks (test_cut_sekien_64k_chunks)',
    sizes: [16384, 65536, 262144],
    level: 1,
    seed: 0n,
    chunks: [{ hash: 2504464741100432583n, length: 109466 }],
  },
  {
    name: '16k chunks, level 0 (test_cut_sekien_16k_nc_0)',
    sizes: [4096, 16384, 65535],
    level: 0,
    seed: 0n,
    chunks: [
      { hash: 443122261039895162n, length: 6634 },
      { hash: 15733367461443853673n, length: 59915 },
      { hash: 10460176299449652894n, length: 25597 },
      { hash: 6197802202431009942n, length: 5237 },
      { hash: 6321136627705800457n, length: 12083 },
    ],
  },
  {
    name: '16k chunks, level 3 (test_cut_sekien_16k_nc_3)',
    sizes: [8192, 16384, 32768],
    level: 3,
    seed: 0n,
    chunks: [
      { hash: 10718006254707412376n, length: 17350 },
      { hash: 13104072099671895560n, length: 19911 },
      { hash: 12322483109039221194n, length: 17426 },
      { hash: 16009206469796846404n, length: 17519 },
      { hash: 2473608525189754172n, length: 19940 },
      { hash: 2504464741100432583n, length: 17320 },
    ],
  },
];

function paramsOf(v: Vector): ChunkerParams {
  const [minSize, avgSize, maxSize] = v.sizes;
  return { minSize, avgSize, maxSize, level: v.level, seed: v.seed };
}

function expected(v: Vector) {
  let offset = 0;
  return v.chunks.map(({ hash, length }) => {
    const c = { offset, length, hash };
    offset += length;
    return c;
  });
}

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

describe('fastcdc crate v2020 vectors on SekienAkashita.jpg', () => {
  it('uses the crate fixture', () => {
    expect(sekien.length).toBe(109466);
    expect(md5(sekien)).toBe('d8e98fb5f0ee8a4af37b14a0c605f17c');
  });

  for (const v of vectors) {
    describe(v.name, () => {
      it('reference implementation', () => {
        expect(referenceChunks(sekien, paramsOf(v))).toEqual(expected(v));
      });

      it('chunkBuffer (WebAssembly kernel)', () => {
        const chunks = chunkBuffer(sekien, paramsOf(v));
        expect(chunks).toEqual(expected(v));
        for (const [i, c] of chunks.entries()) {
          const digest = v.chunks[i]!.md5;
          if (digest) expect(md5(sekien.subarray(c.offset, c.offset + c.length))).toBe(digest);
        }
      });

      it('StreamingChunker, whatever the push sizes', () => {
        const pieceSizes: Array<[string, () => number]> = [
          ['1 byte', () => 1],
          ['2 bytes', () => 2],
          ['4095 bytes', () => 4095],
          ['whole file', () => sekien.length],
        ];
        const rnd = prng(0x5e41e4);
        pieceSizes.push(['random 0..9999 bytes', () => rnd() % 10000]);
        for (const [label, sizeOf] of pieceSizes) {
          const chunker = new StreamingChunker(paramsOf(v));
          const cuts = feedInPieces(sekien, sizeOf, (piece) => chunker.pushCuts(piece));
          cuts.push(...chunker.finishCuts());
          expect(cuts, label).toEqual(v.chunks.map(({ hash, length }) => ({ hash, length })));
        }
      });
    });
  }

  it('all zeros give maximum-size chunks with a fixed hash (test_cut_all_zeros)', () => {
    const zeros = new Uint8Array(10240);
    const params: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024, level: 1, seed: 0n };
    const want = Array.from({ length: 10 }, (_, i) => ({
      offset: i * 1024,
      length: 1024,
      hash: 14169102344523991076n,
    }));
    expect(referenceChunks(zeros, params)).toEqual(want);
    expect(chunkBuffer(zeros, params)).toEqual(want);
    const chunker = new StreamingChunker(params);
    const lengths = feedInPieces(
      zeros,
      () => 333,
      (p) => chunker.push(p),
    );
    expect([...lengths, ...chunker.finish()]).toEqual(want.map((c) => c.length));
  });
});
