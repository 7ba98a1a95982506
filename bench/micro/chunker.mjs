// FastCDC 2020 throughput, single thread (run after `npx tsc -b packages/chunker`):
//   node bench/micro/chunker.mjs           (MIB=256 by default: size of each input; RUNS=3 timed runs per case)
// Prints MB/s for @stowage/chunker's StreamingChunker (WebAssembly kernel) with the default volume parameters
// (256 KiB / 1 MiB / 4 MiB, level 1) on two inputs — random bytes, and "half-zero": random stretches and
// zero runs (64 KiB … 8 MiB each, half of the bytes), like a volume image with free space — each held in
// an ArrayBuffer (AB), in a SharedArrayBuffer (SAB) and in a scan buffer (`allocateScanBuffer`: the
// chunker's own shared memory, scanned in place, as the backup engine reads its blocks), and for the
// pure-TypeScript reference used by the tests.
// MB/s counts every input byte, including the first minSize bytes of each chunk that FastCDC skips.
// The machine is shared and noisy: compare ratios within one run, not absolute numbers across runs.
import { createCipheriv } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  allocateScanBuffer,
  DEFAULT_CHUNKER_PARAMS,
  StreamingChunker,
} from '../../packages/chunker/dist/index.js';
import { referenceChunks } from '../../packages/chunker/dist/reference.js';

const MiB = 1 << 20;
const size = Number(process.env.MIB ?? 256) * MiB;
const runs = Number(process.env.RUNS ?? 3);

/** Pseudo-random bytes, the same on every run (AES-128-CTR keystream with a fixed key). */
function randomData(shared) {
  const data = new Uint8Array(shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size));
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16));
  const zeros = new Uint8Array(MiB);
  for (let off = 0; off < size; off += MiB) data.set(cipher.update(zeros).subarray(0, size - off), off);
  return data;
}

/** Random bytes with zero runs: pairs of a random and a zero stretch of one length, 64 KiB … 8 MiB (log-uniform). */
function halfZero(random, shared) {
  const data = new Uint8Array(shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size));
  data.set(random);
  let state = 12345;
  const next = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  let zeros = 0;
  for (let off = 0; off < size; ) {
    const run = Math.round(64 * 1024 * 2 ** (7 * next()));
    off = Math.min(size, off + run);
    const end = Math.min(size, off + run);
    data.fill(0, off, end);
    zeros += end - off;
    off = end;
  }
  return { data, zeros };
}

function streamed(data, pushSize) {
  const chunker = new StreamingChunker(DEFAULT_CHUNKER_PARAMS);
  let chunks = 0;
  for (let off = 0; off < size; off += pushSize)
    chunks += chunker.push(data.subarray(off, off + pushSize)).length;
  return chunks + chunker.finish().length;
}

/** Best of `n` timed runs, as MB/s. */
function measure(name, fn, n) {
  let best = 0;
  let chunks = 0;
  for (let r = 0; r < n; r++) {
    const start = performance.now();
    chunks = fn();
    best = Math.max(best, size / 1e6 / ((performance.now() - start) / 1e3));
  }
  const avg = (size / chunks / MiB).toFixed(2);
  console.log(`${name.padEnd(44)} ${best.toFixed(0).padStart(6)} MB/s  (${chunks} chunks, mean ${avg} MiB)`);
}

const random = randomData(false);
const randomShared = randomData(true);
randomShared.set(random);
const half = halfZero(random, false);
const halfShared = halfZero(random, true);
const inPlace = allocateScanBuffer(size).bytes;
inPlace.set(random);

// Warm-up (untimed): compiles the module and lets V8 optimise both input kinds.
for (const d of [random, randomShared, half.data, halfShared.data, inPlace]) {
  const warm = new StreamingChunker(DEFAULT_CHUNKER_PARAMS);
  warm.push(d.subarray(0, 16 * MiB));
  warm.finish();
}

console.log(
  `node ${process.version}, ${size / MiB} MiB inputs (half-zero: ${((100 * half.zeros) / size).toFixed(0)}% zeros), ` +
    '256 KiB / 1 MiB / 4 MiB, level 1',
);
measure('random, AB, 4 MiB pushes', () => streamed(random, 4 * MiB), runs);
measure('random, AB, 64 KiB pushes', () => streamed(random, 64 * 1024), runs);
measure('random, SAB, 4 MiB pushes', () => streamed(randomShared, 4 * MiB), runs);
measure('random, scan buffer, 4 MiB pushes', () => streamed(inPlace, 4 * MiB), runs);
inPlace.set(half.data);
measure('half-zero, AB, 4 MiB pushes', () => streamed(half.data, 4 * MiB), runs);
measure('half-zero, SAB, 4 MiB pushes', () => streamed(halfShared.data, 4 * MiB), runs);
measure('half-zero, scan buffer, 4 MiB pushes', () => streamed(inPlace, 4 * MiB), runs);
measure(
  'referenceChunks (TypeScript), random',
  () => referenceChunks(random, DEFAULT_CHUNKER_PARAMS).length,
  1,
);
