// Builds the manifest golden vectors (docs/format.md §5, §6, §11) from fixed inputs: one backup's objects — the
// pack holding its two chunks, its index object, the root and its three segments. The generator script writes
// them to golden-manifest/; manifest-golden.test.ts rebuilds them and compares with the committed files byte
// for byte.
import { createHash } from 'node:crypto';
import { blake3 } from '@stowage/blake3';
import { sealChunk } from '../chunk.js';
import type { CompressionPolicy } from '../compression.js';
import { deriveTargetKeys } from '../keys.js';
import { encodeManifest, ManifestBuilder } from '../manifest.js';
import { newPackId, type PackLocation, packObjectKey } from '../pack.js';
import { encodePackIndex, PackIndexEntries, packIndexObjectKey } from '../pack-index.js';
import { FORMAT_VERSION } from '../version.js';

export const MANIFEST_GOLDEN = {
  targetKey: Uint8Array.from({ length: 32 }, (_, i) => i),
  volumeId: '0f9e8d7c-6b5a-4948-8776-655443322110',
  backupId: '3c2b1a09-f8e7-4d6c-b5a4-938271605f4e',
  // Given to the builder decomposed ("e" U+0065, then U+0301): the root holds its NFC form, U+00E9.
  volumeName: 'golden volume e\u0301',
  createdAt: new Date('2026-12-02T12:34:56.789Z'),
  chunker: { minSize: 262_144, avgSize: 1_048_576, maxSize: 4_194_304, level: 1 as const, seed: 0n },
  segmentEntries: 2,
} as const;

/** Never compresses: the objects' bytes then do not depend on the libzstd version (any body is valid). */
const RAW: CompressionPolicy = { level: 1, sampleSize: 0, sampleMaxRatio: 1, minSavingDivisor: 1 };

/** Deterministic "randomness": BLAKE3 XOF of a label, so the vectors never change by accident. */
function fixedRandom(label: string): (length: number) => Uint8Array {
  let counter = 0;
  return (length) => blake3(new TextEncoder().encode(`${label} ${counter++}`), length);
}

/** The data chunks the entries name: plaintexts given by label, so the document can state them. */
export function goldenChunkPlaintexts(): { a: Uint8Array; b: Uint8Array } {
  return {
    a: blake3(new TextEncoder().encode('stowage golden manifest chunk a'), 6400),
    b: blake3(new TextEncoder().encode('stowage golden manifest chunk b'), 1000),
  };
}

/** The golden volume as a restore writes it: A, 65,536 zeros, B, A, 1,000,000 zeros. */
function goldenVolumeSha256(a: Uint8Array, b: Uint8Array): string {
  const hash = createHash('sha256');
  for (const part of [a, new Uint8Array(65_536), b, a, new Uint8Array(1_000_000)]) hash.update(part);
  return hash.digest('hex');
}

const where = (l: PackLocation) => ({
  pack: Buffer.from(l.pack).toString('hex'),
  offset: l.offset,
  length: l.length,
});

export function buildManifestGoldenVectors(): Record<string, Uint8Array> {
  const g = MANIFEST_GOLDEN;
  const keys = deriveTargetKeys(g.targetKey);
  const { a, b } = goldenChunkPlaintexts();
  // §5.1: the backup's new chunks, A then B, appended into one pack of a fixed id.
  const sealedA = sealChunk(keys, a, { compression: RAW });
  const sealedB = sealChunk(keys, b, { compression: RAW });
  const idA = sealedA.id;
  const idB = sealedB.id;
  const packId = newPackId(fixedRandom('pack id'));
  const pack = new Uint8Array([...sealedA.object, ...sealedB.object]);
  const atA: PackLocation = { pack: packId, offset: 0, length: sealedA.object.length };
  const atB: PackLocation = { pack: packId, offset: sealedA.object.length, length: sealedB.object.length };
  // §5.3: the index object naming them, under a fixed name and nonce.
  const indexName = Buffer.from(fixedRandom('index object name')(8)).toString('hex');
  const indexKey = packIndexObjectKey(g.volumeId, g.backupId, indexName);
  const index = encodePackIndex(
    keys,
    indexKey,
    PackIndexEntries.from([
      { id: idA, location: atA },
      { id: idB, location: atB },
    ]),
    { randomBytes: fixedRandom('index object nonce') },
  );
  const builder = new ManifestBuilder(keys, { segmentEntries: g.segmentEntries });
  const segments: { index: number; id: Uint8Array; records: Uint8Array }[] = [];
  const take = () => {
    const s = builder.takeSegment();
    if (s) segments.push(s);
  };
  builder.addChunk(idA, a.length, atA);
  take();
  builder.addHole(40_000);
  take();
  builder.addHole(25_536); // merged into the hole before: one entry of 65,536 bytes
  take();
  builder.addChunk(idB, b.length, atB);
  take();
  builder.addChunk(idA, a.length, atA); // a repeat: the same location again
  take();
  builder.addHole(1_000_000);
  take();
  const last = builder.finish();
  if (last) segments.push(last);
  const manifest = builder.build({
    backupId: g.backupId,
    volumeId: g.volumeId,
    volumeName: g.volumeName,
    volumeSize: builder.totalLength,
    createdAt: g.createdAt,
    chunker: g.chunker,
  });
  const root = encodeManifest(keys, manifest, { randomBytes: fixedRandom('manifest root nonce') });

  const hex = (x: Uint8Array) => Buffer.from(x).toString('hex');
  const files: Record<string, Uint8Array> = {
    'manifest.object': root,
    'pack.object': pack,
    'index.object': index,
  };
  const segmentVectors = segments.map((s) => {
    const sealed = sealChunk(keys, s.records, { compression: RAW });
    if (hex(sealed.id) !== hex(s.id)) throw new Error('segment id is not the chunk id of its records');
    files[`segment-${s.index}.records`] = s.records;
    files[`segment-${s.index}.object`] = sealed.object;
    return {
      index: s.index,
      id: hex(s.id),
      objectKey: `chunks/${hex(s.id).slice(0, 2)}/${hex(s.id)}`,
      objectFile: `segment-${s.index}.object`,
      recordsFile: `segment-${s.index}.records`,
      entries: s.records.length / 80,
      compressed: sealed.compressed,
    };
  });
  const vectors = {
    formatVersion: FORMAT_VERSION,
    note: 'Generated by packages/format/scripts/generate-golden.ts golden-manifest. Never edit by hand; see docs/format.md §5, §6, §11.',
    targetKey: hex(g.targetKey),
    idKey: hex(keys.idKey),
    chunkKey: hex(keys.chunkKey),
    manifestKey: hex(keys.manifestKey),
    indexKey: hex(keys.indexKey),
    root: {
      objectFile: 'manifest.object',
      objectKey: `manifests/${g.volumeId}/${g.backupId}`,
      nonce: hex(root.subarray(6, 30)),
      version: FORMAT_VERSION,
      backupId: g.backupId,
      volumeId: g.volumeId,
      volumeName: manifest.volumeName,
      volumeSize: manifest.volumeSize,
      createdAtMs: g.createdAt.getTime(),
      chunker: { minSize: g.chunker.minSize, avgSize: g.chunker.avgSize, maxSize: g.chunker.maxSize, level: g.chunker.level },
      entryCount: manifest.entryCount,
      chunkCount: manifest.chunkCount,
      chunkBytes: manifest.chunkBytes,
      holeBytes: manifest.holeBytes,
      segmentEntries: manifest.segmentEntries,
    },
    segments: segmentVectors,
    chunks: {
      a: {
        plaintext: "BLAKE3 (unkeyed) of 'stowage golden manifest chunk a', 6400 bytes of XOF output",
        id: hex(idA),
        compressed: sealedA.compressed,
        location: where(atA),
      },
      b: {
        plaintext: "BLAKE3 (unkeyed) of 'stowage golden manifest chunk b', 1000 bytes of XOF output",
        id: hex(idB),
        compressed: sealedB.compressed,
        location: where(atB),
      },
    },
    pack: {
      objectFile: 'pack.object',
      id: hex(packId),
      idFrom: "BLAKE3 (unkeyed) of 'pack id 0', 32 bytes of XOF output",
      objectKey: packObjectKey(packId),
      length: pack.length,
    },
    index: {
      objectFile: 'index.object',
      objectKey: indexKey,
      name: indexName,
      nameFrom: "BLAKE3 (unkeyed) of 'index object name 0', 8 bytes of XOF output, hex",
      nonce: hex(index.subarray(6, 30)),
      nonceFrom: "BLAKE3 (unkeyed) of 'index object nonce 0', 24 bytes of XOF output",
      entries: [
        { id: hex(idA), location: where(atA) },
        { id: hex(idB), location: where(atB) },
      ],
    },
    entries: [
      { kind: 'chunk', id: hex(idA), length: a.length, offset: 0, location: where(atA) },
      { kind: 'hole', length: 65_536, offset: a.length },
      { kind: 'chunk', id: hex(idB), length: b.length, offset: a.length + 65_536, location: where(atB) },
      {
        kind: 'chunk',
        id: hex(idA),
        length: a.length,
        offset: a.length + 65_536 + b.length,
        location: where(atA),
      },
      { kind: 'hole', length: 1_000_000, offset: 2 * a.length + 65_536 + b.length },
    ],
    // The volume the manifest describes, restored: its length and SHA-256.
    volume: { length: manifest.volumeSize, sha256: goldenVolumeSha256(a, b) },
  };
  files['vectors.json'] = new TextEncoder().encode(`${JSON.stringify(vectors, null, 2)}\n`);
  return files;
}
