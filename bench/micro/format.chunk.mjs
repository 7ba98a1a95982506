// sealChunk / openChunk throughput on 1 MiB chunks (id hash + sample + zstd + nonce hash + XChaCha20-Poly1305),
// single thread. Run after `npx tsc -b packages/format`:
//   node bench/micro/format.chunk.mjs /tmp/fmtbench/usr.tar /tmp/fmtbench/random.bin
// Single runs on a shared 2-core machine: noisy.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { deriveTargetKeys, openChunk, sealChunk } from '../../packages/format/dist/index.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(1));
const CHUNK = 1 << 20;
for (const file of process.argv.slice(2)) {
  const data = readFileSync(file).subarray(0, 64 * CHUNK);
  const chunks = [];
  for (let at = 0; at + CHUNK <= data.length; at += CHUNK) chunks.push(data.subarray(at, at + CHUNK));
  sealChunk(keys, chunks[0]);
  const t0 = performance.now();
  const sealed = chunks.map((c) => sealChunk(keys, c));
  const sealMs = performance.now() - t0;
  const t1 = performance.now();
  for (const [i, s] of sealed.entries()) openChunk(keys, s.id, s.object, chunks[i].length);
  const openMs = performance.now() - t1;
  const bytes = chunks.length * CHUNK;
  const stored = sealed.reduce((n, s) => n + s.object.length, 0);
  console.log(
    `${file}: seal ${(bytes / 1e6 / (sealMs / 1e3)).toFixed(0)} MB/s, open ${(bytes / 1e6 / (openMs / 1e3)).toFixed(0)} MB/s, stored/raw ${(stored / bytes).toFixed(3)}`,
  );
}
