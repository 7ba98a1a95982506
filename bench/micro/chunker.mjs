// FastCDC 2020 throughput, single thread (run after `npx tsc -b packages/chunker`):
//   node bench/micro/chunker.mjs           (MIB=256 by default: size of the random input)
// Prints MB/s for @stowage/chunker's StreamingChunker (WebAssembly kernel) with the default volume parameters
// (256 KiB / 1 MiB / 4 MiB, level 1) at two push sizes, and for the pure-TypeScript reference used by the tests.
// MB/s counts every input byte, including the first minSize bytes of each chunk that FastCDC skips.
// The machine is shared and noisy: compare ratios within one run, not absolute numbers across runs.
import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DEFAULT_CHUNKER_PARAMS, StreamingChunker } from '../../packages/chunker/dist/index.js';
import { referenceChunks } from '../../packages/chunker/dist/reference.js';

const MiB = 1 << 20;
const size = Number(process.env.MIB ?? 256) * MiB;
const data = new Uint8Array(size);
for (let off = 0; off < size; off += 65536) randomFillSync(data, off, Math.min(65536, size - off));

function streamed(pushSize) {
  const chunker = new StreamingChunker(DEFAULT_CHUNKER_PARAMS);
  let chunks = 0;
  for (let off = 0; off < size; off += pushSize)
    chunks += chunker.push(data.subarray(off, off + pushSize)).length;
  return chunks + chunker.finish().length;
}

/** Best of `runs` timed runs (after one untimed warm-up on 16 MiB), as MB/s. */
function measure(name, fn, runs) {
  let best = 0;
  let chunks = 0;
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    chunks = fn();
    best = Math.max(best, size / 1e6 / ((performance.now() - start) / 1e3));
  }
  const avg = (size / chunks / MiB).toFixed(2);
  console.log(`${name.padEnd(44)} ${best.toFixed(0).padStart(6)} MB/s  (${chunks} chunks, mean ${avg} MiB)`);
}

const warm = new StreamingChunker(DEFAULT_CHUNKER_PARAMS);
warm.push(data.subarray(0, 16 * MiB));
warm.finish();

console.log(`node ${process.version}, ${size / MiB} MiB of random data, 256 KiB / 1 MiB / 4 MiB, level 1`);
measure('StreamingChunker (wasm), 4 MiB pushes', () => streamed(4 * MiB), 3);
measure('StreamingChunker (wasm), 64 KiB pushes', () => streamed(64 * 1024), 3);
measure(
  'referenceChunks (TypeScript, split 32-bit)',
  () => referenceChunks(data, DEFAULT_CHUNKER_PARAMS).length,
  1,
);
