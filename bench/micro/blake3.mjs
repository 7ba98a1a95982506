// BLAKE3 throughput, single thread (run after `npx tsc -b packages/blake3`):
//   node bench/micro/blake3.mjs            (SECONDS=0.5 by default per measurement)
// Prints MB/s for @stowage/blake3 (WASM SIMD), @noble/hashes blake3 (pure JS) and node:crypto sha256 (native)
// on 1 MiB and 4 MiB inputs, plus small inputs for @stowage/blake3. The machine is shared and noisy:
// compare ratios within one run, not absolute numbers across runs.
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { blake3 as nobleBlake3 } from '@noble/hashes/blake3.js';
import { blake3, blake3Keyed } from '../../packages/blake3/dist/index.js';

const SECONDS = Number(process.env.SECONDS ?? 0.5);
const key = randomBytes(32);

/** Runs fn on `data` for about SECONDS (after a short warm-up) and returns MB/s. */
function measure(fn, data, seconds = SECONDS) {
  const warmUntil = performance.now() + 100;
  while (performance.now() < warmUntil) fn(data);
  let bytes = 0;
  const start = performance.now();
  const until = start + seconds * 1000;
  let now = start;
  while (now < until) {
    fn(data);
    bytes += data.length;
    now = performance.now();
  }
  return bytes / 1e6 / ((now - start) / 1e3);
}

const impls = [
  ['@stowage/blake3 blake3', (d) => blake3(d)],
  ['@stowage/blake3 blake3Keyed', (d) => blake3Keyed(key, d)],
  ['@noble/hashes blake3', (d) => nobleBlake3(d), 0.2],
  ['node:crypto sha256', (d) => createHash('sha256').update(d).digest()],
];

console.log(`node ${process.version}, ${SECONDS}s per measurement`);
for (const size of [1 << 20, 4 << 20]) {
  const data = randomBytes(size);
  for (const [name, fn, seconds] of impls) {
    console.log(
      `${String(size >> 20).padStart(2)} MiB  ${name.padEnd(30)} ${measure(fn, data, seconds).toFixed(0).padStart(6)} MB/s`,
    );
  }
}
for (const size of [32, 200, 64 << 10]) {
  const data = randomBytes(size);
  const mbs = measure((d) => blake3Keyed(key, d), data);
  const perCall = (size / (mbs * 1e6)) * 1e9;
  console.log(
    `${`${size} B`.padStart(7)}  @stowage/blake3 blake3Keyed ${mbs.toFixed(0).padStart(6)} MB/s  (${perCall.toFixed(0)} ns/call)`,
  );
}
