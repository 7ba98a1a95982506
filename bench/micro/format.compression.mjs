// Compression policy measurement for docs/compression.md (run after `npx tsc -b packages/format`):
//   node bench/micro/format.compression.mjs /tmp/fmtbench/usr.tar /tmp/fmtbench/random.bin
// Splits each file into 1 MiB chunks (the default average chunk size) and reports, per zstd level, the
// single-thread compress MB/s and the stored ratio, with and without the sampling heuristic, plus
// decompression MB/s. Single runs on a shared machine: compare ratios within one run only.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { compressChunkBody } from '../../packages/format/dist/compression.js';

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi/binding.js');

const CHUNK = 1 << 20;
const files = process.argv.slice(2);
const mb = (bytes, ms) => (bytes / 1e6 / (ms / 1e3)).toFixed(0);

function chunksOf(buf) {
  const out = [];
  for (let at = 0; at < buf.length; at += CHUNK) out.push(buf.subarray(at, Math.min(at + CHUNK, buf.length)));
  return out;
}

for (const file of files) {
  const data = readFileSync(file);
  const chunks = chunksOf(data);
  console.log(`\n${file}: ${(data.length / 1048576).toFixed(0)} MiB in ${chunks.length} chunks of 1 MiB`);
  console.log(
    'policy                         | compress MB/s | stored/raw | chunks compressed | decompress MB/s',
  );
  for (const level of (process.env.LEVELS ?? '1,2,3').split(',').map(Number)) {
    for (const [sampleSize, sampleMaxRatio] of [
      [0, 1],
      [64 * 1024, 0.95],
      [64 * 1024, 0.98],
      [64 * 1024, 0.99],
    ]) {
      const policy = { level, sampleSize, sampleMaxRatio, minSavingDivisor: 32 };
      // warm-up
      compressChunkBody(chunks[0], policy);
      let stored = 0;
      let compressedCount = 0;
      const bodies = [];
      const t0 = performance.now();
      for (const c of chunks) {
        const body = compressChunkBody(c, policy);
        if (body === undefined) {
          stored += c.length;
        } else {
          stored += body.length;
          compressedCount++;
          bodies.push([body.slice(), c.length]);
        }
      }
      const ms = performance.now() - t0;
      const d0 = performance.now();
      let dbytes = 0;
      const dctx = new zstd.DCtx();
      for (const [body, length] of bodies) {
        const out = new Uint8Array(length);
        dctx.decompress(out, body);
        dbytes += length;
      }
      const dms = performance.now() - d0;
      const name = `level ${level}, ${sampleSize ? `sample 64 KiB ≤ ${sampleMaxRatio}` : 'no sampling'}`;
      console.log(
        `${name.padEnd(30)} | ${mb(data.length, ms).padStart(13)} | ${(stored / data.length).toFixed(4).padStart(10)} | ${`${compressedCount}/${chunks.length}`.padStart(17)} | ${bodies.length ? mb(dbytes, dms).padStart(15) : '              —'}`,
      );
    }
  }
}
