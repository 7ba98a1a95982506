import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake3Keyed } from '@stowage/blake3';
import { describe, expect, it } from 'vitest';
import { deriveTargetKeys } from './keys.js';
import { decodeManifest } from './manifest.js';
import { readManifestSegments } from './manifest-segments.js';
import { buildManifestGoldenVectors, goldenChunkPlaintexts } from './testdata/golden-manifest-builder.js';
import { strictCborDecode } from './testdata/strict-cbor.js';
import { FORMAT_VERSION } from './version.js';

// SHA-256 over the committed files of golden-manifest/ (docs/format.md §11), per format version. A change to
// the manifest layout bumps FORMAT_VERSION and adds a line; editing a line means the format changed silently.
// (Segments are chunk objects: a change of §4.3 changes them too.)
const GOLDEN_MANIFEST_DIGESTS: Record<number, string> = {
  2: '0e16411302c19fd4d4ab3fba7e852011e1ad81e6adb536ccfa8812d2278653ab',
};

const dir = new URL('./testdata/golden-manifest/', import.meta.url);
const read = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));
const vectors = JSON.parse(new TextDecoder().decode(read('vectors.json')));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const uuid = (s: string) => unhex(s.replaceAll('-', ''));

function digestOfGoldenFiles(): string {
  const hash = createHash('sha256');
  for (const name of readdirSync(dir).sort()) {
    hash.update(`${name}\0`);
    hash.update(read(name));
  }
  return hash.digest('hex');
}

describe('manifest golden vectors', () => {
  const keys = deriveTargetKeys(unhex(vectors.targetKey));

  it('belong to the current format version and are the ones pinned for it', () => {
    expect(vectors.formatVersion).toBe(FORMAT_VERSION);
    expect(digestOfGoldenFiles()).toBe(GOLDEN_MANIFEST_DIGESTS[FORMAT_VERSION]);
  });

  it('are reproduced byte for byte by the current code', () => {
    const built = buildManifestGoldenVectors();
    expect(Object.keys(built).sort()).toEqual(readdirSync(dir).sort());
    for (const [name, bytes] of Object.entries(built)) {
      expect(hex(bytes), `${name} differs: a format change needs a version bump (docs/format.md)`).toBe(
        hex(read(name)),
      );
    }
  });

  it('decode from the document alone: the root with its AAD, the segments as chunk objects', () => {
    expect(hex(keys.manifestKey)).toBe(vectors.manifestKey);
    expect(hex(keys.idKey)).toBe(vectors.idKey);
    const r = vectors.root;
    const root = read(r.objectFile);
    // §6.1, re-derived with @noble/ciphers as the AEAD.
    const header = root.subarray(0, 6);
    expect(hex(header)).toBe('5354574d0200');
    expect(hex(root.subarray(6, 30))).toBe(r.nonce);
    const inner = xchacha20poly1305(
      keys.manifestKey,
      root.subarray(6, 30),
      new Uint8Array([...header, ...uuid(r.volumeId), ...uuid(r.backupId)]),
    ).decrypt(root.subarray(30));
    const n = new DataView(inner.buffer, inner.byteOffset).getUint32(0);
    expect(inner.subarray(4 + n).every((b) => b === 0)).toBe(true);
    const doc = strictCborDecode(inner.subarray(4, 4 + n)) as Record<string, unknown>;
    expect(doc.volumeName).toBe(r.volumeName);
    expect(r.volumeName.normalize('NFC')).toBe(r.volumeName);
    expect(doc.entryCount).toBe(BigInt(r.entryCount));
    const ids = doc.segments as Uint8Array;
    expect(ids.length).toBe(32 * vectors.segments.length);
    // §6.4: each segment is the chunk object of its records, its id their keyed BLAKE3.
    const entries: unknown[] = [];
    let offset = 0;
    vectors.segments.forEach((s: { recordsFile: string; id: string; entries: number }, i: number) => {
      const records = read(s.recordsFile);
      expect(hex(ids.subarray(32 * i, 32 * i + 32))).toBe(s.id);
      expect(hex(blake3Keyed(keys.idKey, records))).toBe(s.id);
      expect(records.length).toBe(40 * s.entries);
      for (let at = 0; at < records.length; at += 40) {
        const length = Number(
          new DataView(records.buffer, records.byteOffset + at).getBigUint64(0) & ((1n << 56n) - 1n),
        );
        entries.push(
          records[at] === 0
            ? { kind: 'chunk', id: hex(records.subarray(at + 8, at + 40)), length, offset }
            : { kind: 'hole', length, offset },
        );
        offset += length;
      }
    });
    expect(entries).toEqual(vectors.entries);
    const { a, b } = goldenChunkPlaintexts();
    expect(hex(blake3Keyed(keys.idKey, a))).toBe(vectors.chunks.a.id);
    expect(hex(blake3Keyed(keys.idKey, b))).toBe(vectors.chunks.b.id);
  });

  it('decode with the reference reader', async () => {
    const r = vectors.root;
    const m = decodeManifest(keys, read(r.objectFile), { volumeId: r.volumeId, backupId: r.backupId });
    expect({
      volumeName: m.volumeName,
      volumeSize: m.volumeSize,
      createdAtMs: m.createdAt.getTime(),
      entryCount: m.entryCount,
      chunkCount: m.chunkCount,
      chunkBytes: m.chunkBytes,
      holeBytes: m.holeBytes,
      segmentEntries: m.segmentEntries,
    }).toEqual({
      volumeName: r.volumeName,
      volumeSize: r.volumeSize,
      createdAtMs: r.createdAtMs,
      entryCount: r.entryCount,
      chunkCount: r.chunkCount,
      chunkBytes: r.chunkBytes,
      holeBytes: r.holeBytes,
      segmentEntries: r.segmentEntries,
    });
    const files = new Map<string, string>(
      vectors.segments.map((s: { objectKey: string; objectFile: string }) => [s.objectKey, s.objectFile]),
    );
    const entries: unknown[] = [];
    for await (const s of readManifestSegments(keys, m, {
      fetch: async (ref) => read(files.get(ref.objectKey)!),
    })) {
      if (s.damaged) throw s.error;
      for (const e of s.entries)
        entries.push(
          e.kind === 'chunk' ? { kind: 'chunk', id: hex(e.id), length: e.length, offset: e.offset } : e,
        );
    }
    expect(entries).toEqual(vectors.entries);
  });
});
