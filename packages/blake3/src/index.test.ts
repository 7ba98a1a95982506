import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Blake3Hasher, blake3, blake3DeriveKey, blake3Keyed } from './index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('API', () => {
  it('hashes 16 MiB and more through the bounded slab', () => {
    const data = new Uint8Array(17 * 1024 * 1024 + 5).map((_, i) => (i * 31) >>> 3);
    const whole = blake3(data);
    const h = Blake3Hasher.create();
    for (let at = 0; at < data.length; at += 3 * 1024 * 1024 + 7)
      h.update(data.subarray(at, at + 3 * 1024 * 1024 + 7));
    expect(hex(h.digest())).toBe(hex(whole));
  });

  it('hashes slices of a SharedArrayBuffer at every alignment the same as plain copies', () => {
    // Unaligned shared slices take the bounce-buffer path; lengths span several 64 KiB input slabs.
    const shared = new Uint8Array(new SharedArrayBuffer(1 << 20));
    for (let i = 0; i < shared.length; i++) shared[i] = (i * 131) >>> 5;
    const key = new Uint8Array(32).fill(3);
    for (const offset of [0, 1, 3, 7, 8, 13]) {
      for (const length of [0, 1, 63, 64 * 1024 - 1, 64 * 1024 + 9, 300_001]) {
        const slice = shared.subarray(offset, offset + length);
        const plain = slice.slice();
        expect(hex(blake3(slice))).toBe(hex(blake3(plain)));
        expect(hex(blake3Keyed(key, [plain.subarray(0, 5), slice.subarray(5)]))).toBe(
          hex(blake3Keyed(key, plain)),
        );
      }
    }
  });

  it('returns fresh arrays of the requested length', () => {
    const a = blake3(new Uint8Array(10));
    const b = blake3(new Uint8Array(10));
    expect(a).toEqual(b);
    expect(a).not.toBe(b);
    a[0]! ^= 1;
    expect(a).not.toEqual(b);
    expect(blake3(new Uint8Array(0), 0)).toHaveLength(0);
    expect(blake3([], 7)).toEqual(blake3(new Uint8Array(0), 7));
  });

  it('digest() does not end the hash', () => {
    const h = Blake3Hasher.create().update(new Uint8Array([1, 2, 3]));
    expect(h.digest()).toEqual(blake3(new Uint8Array([1, 2, 3])));
    h.update(new Uint8Array([4]));
    expect(h.digest(40)).toEqual(blake3(new Uint8Array([1, 2, 3, 4]), 40));
  });

  it('rejects bad keys and output lengths', () => {
    expect(() => blake3Keyed(new Uint8Array(31), new Uint8Array(1))).toThrow(RangeError);
    expect(() => Blake3Hasher.keyed(new Uint8Array(33))).toThrow(RangeError);
    expect(() => blake3(new Uint8Array(1), -1)).toThrow(RangeError);
    expect(() => blake3(new Uint8Array(1), 1.5)).toThrow(RangeError);
    expect(() => blake3DeriveKey('ctx', new Uint8Array(1), Number.NaN)).toThrow(RangeError);
  });

  it('works in worker threads, each with its own instance', async () => {
    const data = new Uint8Array(300_000).map((_, i) => i * 7);
    const key = new Uint8Array(32).fill(9);
    // Node 20 ignores `--import tsx` in a worker's execArgv, so a tiny bootstrap registers tsx first.
    const script = new URL('./testdata/hash-worker.ts', import.meta.url).href;
    const bootstrap = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(script)}); });`;
    const workers = [0, 1].map(
      () => new Worker(bootstrap, { eval: true, execArgv: ['--conditions=source'] }),
    );
    try {
      const results = await Promise.all(
        workers.map(
          (w) =>
            new Promise<{ hash: Uint8Array; keyed: Uint8Array }>((resolve, reject) => {
              w.once('message', resolve);
              w.once('error', reject);
              w.postMessage({ data, key });
            }),
        ),
      );
      for (const r of results) {
        expect(hex(r.hash)).toBe(hex(blake3(data)));
        expect(hex(r.keyed)).toBe(hex(blake3Keyed(key, data, 100)));
      }
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });
});

describe('generated wasm', () => {
  // Rebuilding takes ~3 s; it catches an edited kernel whose src/blake3.wasm.ts was not regenerated.
  it('src/blake3.wasm.ts matches assembly/index.ts', () => {
    const script = new URL('../scripts/build-wasm.mjs', import.meta.url);
    expect(() =>
      execFileSync(process.execPath, [script.pathname, '--check'], { stdio: 'pipe' }),
    ).not.toThrow();
  });
});
