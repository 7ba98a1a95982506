// XChaCha20-Poly1305 throughput at 1 MiB messages, ours (HChaCha20 in JS + native OpenSSL chacha20-poly1305)
// against @noble/ciphers' pure-JS xchacha20poly1305. Run after `npx tsc -b packages/format`:
//   node bench/micro/format.xchacha.mjs
// Single runs on a shared 2-core machine: compare the ratio within one run, not absolute figures across runs.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { xchachaOpen, xchachaSeal } from '../../packages/format/dist/xchacha.js';

const SIZE = 1 << 20;
const key = new Uint8Array(randomBytes(32));
const nonce = new Uint8Array(randomBytes(24));
const aad = new Uint8Array(38);
const data = new Uint8Array(randomBytes(SIZE));

function rate(label, iterations, fn) {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) fn();
  const ms = performance.now() - t0;
  console.log(`${label.padEnd(44)} ${((iterations * SIZE) / 1e6 / (ms / 1e3)).toFixed(0).padStart(6)} MB/s`);
}

const sealed = xchachaSeal(key, nonce, data, aad);
rate('stowage xchachaSeal (1 MiB)', 200, () => xchachaSeal(key, nonce, data, aad));
rate('stowage xchachaOpen (1 MiB)', 200, () => xchachaOpen(key, nonce, sealed, aad));
rate('@noble/ciphers xchacha20poly1305 seal (1 MiB)', 20, () =>
  xchacha20poly1305(key, nonce, aad).encrypt(data),
);
rate('@noble/ciphers xchacha20poly1305 open (1 MiB)', 20, () =>
  xchacha20poly1305(key, nonce, aad).decrypt(sealed),
);
