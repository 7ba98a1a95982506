import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake3, blake3DeriveKey, blake3Keyed } from '@stowage/blake3';
import { describe, expect, it } from 'vitest';
import { openChunk } from './chunk.js';
import { deriveTargetKeys } from './keys.js';
import { decodeManifest } from './manifest.js';
import { readManifestSegments } from './manifest-segments.js';
import { describeLocation, packObjectKey } from './pack.js';
import { decodePackIndex, parsePackIndexObjectKey } from './pack-index.js';
import { buildManifestGoldenVectors, goldenChunkPlaintexts } from './testdata/golden-manifest-builder.js';
import { strictCborDecode } from './testdata/strict-cbor.js';
import { FORMAT_VERSION } from './version.js';

// SHA-256 over the committed files of golden-manifest/ (docs/format.md §11), per format version. A change to
// the manifest, pack or index object layout bumps FORMAT_VERSION and adds a line; editing a line means the
// format changed silently. (Segments and packed chunks are chunk objects: a change of §4.3 changes them too.)
// Version 2 was regenerated for packs (80-byte records, a pack and an index object) while still unreleased.
const GOLDEN_MANIFEST_DIGESTS: Record<number, string> = {
  2: '6b39afbe740344b45ba61c7bfd8e3a97aa7ffda8f359ebf1d20a17101b948bb6',
};

const dir = new URL('./testdata/golden-manifest/', import.meta.url);
const read = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));
const vectors = JSON.parse(new TextDecoder().decode(read('vectors.json')));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const uuid = (s: string) => unhex(s.replaceAll('-', ''));
const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset + at, 4).getUint32(0, false);
const padme = (x: number) => {
  const e = Math.floor(Math.log2(x));
  const grain = 2 ** (e - (Math.floor(Math.log2(e)) + 1));
  return Math.ceil(x / grain) * grain;
};

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
      expect(records.length).toBe(80 * s.entries);
      // §6.3: kind ‖ length(7) ‖ chunk id ‖ pack id ‖ u32be(offset) ‖ u32be(object length), holes zero after
      // their length.
      for (let at = 0; at < records.length; at += 80) {
        const length = Number(
          new DataView(records.buffer, records.byteOffset + at).getBigUint64(0) & ((1n << 56n) - 1n),
        );
        if (records[at] === 1) expect(records.subarray(at + 8, at + 80).every((x) => x === 0)).toBe(true);
        entries.push(
          records[at] === 0
            ? {
                kind: 'chunk',
                id: hex(records.subarray(at + 8, at + 40)),
                length,
                offset,
                location: {
                  pack: hex(records.subarray(at + 40, at + 72)),
                  offset: u32(records, at + 72),
                  length: u32(records, at + 76),
                },
              }
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
          e.kind === 'chunk'
            ? {
                kind: 'chunk',
                id: hex(e.id),
                length: e.length,
                offset: e.offset,
                location: {
                  pack: hex(e.location.pack),
                  offset: e.location.offset,
                  length: e.location.length,
                },
              }
            : e,
        );
    }
    expect(entries).toEqual(vectors.entries);
  });

  it('restore the volume from the document alone: each chunk read from its range of the pack (§5.2)', () => {
    expect(hex(keys.chunkKey)).toBe(vectors.chunkKey);
    const p = vectors.pack;
    const pack = read(p.objectFile);
    expect(pack.length).toBe(p.length);
    expect(p.objectKey).toBe(`packs/${p.id.slice(0, 2)}/${p.id}`);
    expect(hex(blake3(new TextEncoder().encode('pack id 0'), 32))).toBe(p.id);
    // The pack is the two chunk objects, back to back: no header, no trailer.
    const { a, b } = vectors.chunks;
    expect([a.location.offset, a.location.offset + a.location.length]).toEqual([0, b.location.offset]);
    expect(b.location.offset + b.location.length).toBe(pack.length);
    const volume = new Uint8Array(vectors.volume.length);
    for (const e of vectors.entries as {
      kind: string;
      id: string;
      length: number;
      offset: number;
      location: { pack: string; offset: number; length: number };
    }[]) {
      if (e.kind === 'hole') continue; // already zeros
      expect(e.location.pack).toBe(p.id);
      const object = pack.subarray(e.location.offset, e.location.offset + e.location.length);
      // §4.4 on the range, with @noble/ciphers as the AEAD.
      const header = object.subarray(0, 6);
      expect(hex(header)).toBe('535457430200');
      const inner = xchacha20poly1305(
        keys.chunkKey,
        object.subarray(6, 30),
        new Uint8Array([...header, ...unhex(e.id)]),
      ).decrypt(object.subarray(30));
      const n = u32(inner, 0);
      expect(object.length).toBe(padme(50 + n));
      expect(inner.subarray(4 + n).every((x) => x === 0)).toBe(true);
      const plaintext = inner.subarray(4, 4 + n);
      expect(plaintext.length).toBe(e.length);
      expect(hex(blake3Keyed(keys.idKey, plaintext))).toBe(e.id);
      volume.set(plaintext, e.offset);
    }
    expect(createHash('sha256').update(volume).digest('hex')).toBe(vectors.volume.sha256);
  });

  it('restore with the reference reader, naming each chunk by its pack and range', () => {
    const pack = read(vectors.pack.objectFile);
    const { a, b } = goldenChunkPlaintexts();
    for (const [c, plaintext] of [
      [vectors.chunks.a, a],
      [vectors.chunks.b, b],
    ] as const) {
      const location = { pack: unhex(c.location.pack), offset: c.location.offset, length: c.location.length };
      expect(packObjectKey(location.pack)).toBe(vectors.pack.objectKey);
      const object = pack.subarray(location.offset, location.offset + location.length);
      expect(hex(openChunk(keys, c.id, object, plaintext.length, describeLocation(location)))).toBe(
        hex(plaintext),
      );
      const shifted = pack.subarray(location.offset + 1, location.offset + 1 + location.length);
      expect(() => openChunk(keys, c.id, shifted, plaintext.length, describeLocation(location))).toThrow(
        `${vectors.pack.objectKey}@${location.offset}+${location.length}`,
      );
    }
  });

  it('decode the index object from the document alone (§5.3)', () => {
    const v = vectors.index;
    expect(hex(keys.indexKey)).toBe(vectors.indexKey);
    expect(hex(blake3DeriveKey('stowage 2026-12-02 pack index encryption', unhex(vectors.targetKey)))).toBe(
      vectors.indexKey,
    );
    expect(v.objectKey).toBe(`index/${r().volumeId}/${r().backupId}/${v.name}`);
    expect(v.name).toBe(hex(blake3(new TextEncoder().encode('index object name 0'), 8)));
    const object = read(v.objectFile);
    const header = object.subarray(0, 6);
    expect(hex(header)).toBe('535457490200');
    expect(hex(object.subarray(6, 30))).toBe(v.nonce);
    expect(v.nonce).toBe(hex(blake3(new TextEncoder().encode('index object nonce 0'), 24)));
    const body = xchacha20poly1305(
      keys.indexKey,
      object.subarray(6, 30),
      new Uint8Array([...header, ...uuid(r().volumeId), ...uuid(r().backupId), ...unhex(v.name)]),
    ).decrypt(object.subarray(30));
    const doc = strictCborDecode(body) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['version', 'volumeId', 'backupId', 'entries']);
    expect([doc.version, doc.volumeId, doc.backupId]).toEqual([2n, r().volumeId, r().backupId]);
    const records = doc.entries as Uint8Array;
    expect(records.length).toBe(72 * v.entries.length);
    const entries = [];
    for (let at = 0; at < records.length; at += 72) {
      entries.push({
        id: hex(records.subarray(at, at + 32)),
        location: {
          pack: hex(records.subarray(at + 32, at + 64)),
          offset: u32(records, at + 64),
          length: u32(records, at + 68),
        },
      });
    }
    expect(entries).toEqual(v.entries);
  });

  it('decode the index object with the reference reader, only under its own key', () => {
    const v = vectors.index;
    expect(parsePackIndexObjectKey(v.objectKey)).toEqual({
      volumeId: r().volumeId,
      backupId: r().backupId,
      name: v.name,
    });
    const entries = decodePackIndex(keys, v.objectKey, read(v.objectFile));
    expect(
      [...entries].map((e) => ({
        id: hex(e.id),
        location: { pack: hex(e.location.pack), offset: e.location.offset, length: e.location.length },
      })),
    ).toEqual(v.entries);
    const moved = v.objectKey.replace(v.name, '0000000000000000');
    expect(() => decodePackIndex(keys, moved, read(v.objectFile))).toThrow(
      `integrity check failed for ${moved}`,
    );
  });
});

function r(): { volumeId: string; backupId: string } {
  return vectors.root;
}
