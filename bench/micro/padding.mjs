// What Padmé padding (docs/format.md §4.3) costs in time: the AEAD of a chunk object runs over the padding too,
// so its cost is the XChaCha20-Poly1305 time of the padding bytes. Seals bodies of the lengths a 1 MiB-average
// FastCDC run produces (256 KiB..4 MiB, most near 1 MiB) at their raw and at their padded length, alternating,
// and reports the difference per GiB of chunks and as a share of the seal alone (zstd and hashing, which
// padding does not touch, come on top). Run after `npx tsc -b packages/format`:
//   node bench/micro/padding.mjs [rounds]
// Single-threaded; on a shared 2-core machine the rounds are what evens out the noise.
import { performance } from 'node:perf_hooks';
import {
  CHUNK_OVERHEAD,
  deriveTargetKeys,
  maxChunkObjectLength,
  xchachaSealInto,
} from '../../packages/format/dist/index.js';

const rounds = Number(process.argv[2] ?? 5);
const keys = deriveTargetKeys(new Uint8Array(32).fill(7));
const nonce = new Uint8Array(24);
const aad = new Uint8Array(38);
// Deterministic lengths around 1 MiB: a triangular spread over [256 KiB, 4 MiB], as normalized chunking gives.
let seed = 1;
const next = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const lengths = Array.from({ length: 256 }, () =>
  Math.round(256 * 1024 + ((next() + next() + next()) / 3) ** 2 * (4 << 20)),
);
const body = new Uint8Array(4 << 20).map((_, i) => (i * 31) & 0xff);
const out = new Uint8Array(maxChunkObjectLength(4 << 20) + 64);
const padded = (n) => maxChunkObjectLength(n) - CHUNK_OVERHEAD + 4; // the sealed inner length with padding
const seal = (n) => xchachaSealInto(keys.chunkKey, nonce, body.subarray(0, n), aad, out, 0);

let raw = 0;
let pad = 0;
let rawBytes = 0;
let padBytes = 0;
for (const n of lengths.slice(0, 8)) seal(n); // warm up
for (let r = 0; r < rounds; r++) {
  for (const n of lengths) {
    const inner = Math.min(n + 4, body.length);
    const withPadding = Math.min(padded(n), body.length);
    let t = performance.now();
    seal(inner);
    raw += performance.now() - t;
    t = performance.now();
    seal(withPadding);
    pad += performance.now() - t;
    rawBytes += inner;
    padBytes += withPadding;
  }
}
const GiB = 1024 ** 3;
const msPerGiB = (ms, bytes) => (ms / bytes) * GiB;
console.log(
  JSON.stringify(
    {
      chunks: lengths.length * rounds,
      meanChunkMiB: Number((rawBytes / lengths.length / rounds / 2 ** 20).toFixed(2)),
      paddingShare: Number(((padBytes - rawBytes) / rawBytes).toFixed(4)),
      aeadMsPerGiBRaw: Number(msPerGiB(raw, rawBytes).toFixed(1)),
      extraMsPerGiBOfChunks: Number((msPerGiB(pad, rawBytes) - msPerGiB(raw, rawBytes)).toFixed(1)),
      extraShareOfAead: Number(((pad - raw) / raw).toFixed(4)),
    },
    null,
    2,
  ),
);
