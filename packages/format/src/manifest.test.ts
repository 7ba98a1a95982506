import { randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { describe, expect, it } from 'vitest';
import { chunkId, sealChunk } from './chunk.js';
import { FormatError, IntegrityError, UnsupportedFormatVersionError } from './errors.js';
import { deriveTargetKeys, type TargetKeys } from './keys.js';
import {
  decodeManifest,
  encodeManifest,
  type Manifest,
  ManifestBuilder,
  type ManifestMeta,
  manifestObjectKey,
  manifestSegmentCount,
  manifestSegmentEntryCount,
  parseManifestObjectKey,
} from './manifest.js';
import { ENTRY_RECORD_LENGTH, type ManifestEntry } from './manifest-entries.js';
import { type ManifestSegment, type ManifestSegmentRef, readManifestSegments } from './manifest-segments.js';
import { MAX_PACKED_OBJECT_LENGTH, type PackLocation, writeLocation } from './pack.js';
import { strictCborDecode } from './testdata/strict-cbor.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(1));
const backupId = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const volumeId = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';
const otherVolume = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3e';
const otherBackup = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4c';
const chunker = { minSize: 262_144, avgSize: 1_048_576, maxSize: 4_194_304, level: 1 as const, seed: 0n };
const id = (n: number) => new Uint8Array(32).fill(n);
/** Where a test's chunk `n` is stored: a pack of its own number, at a range that depends on `n`. */
const locationOf = (chunk: Uint8Array): PackLocation => ({
  pack: new Uint8Array(32).fill(0x80 | (chunk[0]! & 0x7f)),
  offset: chunk[0]! * 4096,
  length: 50 + chunk[0]!,
});
const manifestKey = manifestObjectKey(volumeId, backupId);

function meta(volumeSize: number, overrides: Partial<ManifestMeta> = {}): ManifestMeta {
  return {
    backupId,
    volumeId,
    volumeName: 'db-01 data',
    volumeSize,
    createdAt: new Date('2026-11-22T10:00:00.123Z'),
    chunker,
    ...overrides,
  };
}

type Add = ['chunk', Uint8Array, number] | ['hole', number];

/** The in-memory "store" of a test: segment objects by object key. */
type Objects = Map<string, Uint8Array>;

/** Builds a manifest of `adds`, sealing each segment as it is cut, as a backup does. */
function buildManifest(
  adds: Iterable<Add>,
  options: {
    segmentEntries?: number;
    keys?: TargetKeys;
    objects?: Objects;
    metaOverrides?: Partial<ManifestMeta>;
  } = {},
): { manifest: Manifest; objects: Objects } {
  const k = options.keys ?? keys;
  const objects = options.objects ?? new Map<string, Uint8Array>();
  const b = new ManifestBuilder(k, { segmentEntries: options.segmentEntries ?? 3 });
  const store = (s: { id: Uint8Array; records: Uint8Array } | undefined) => {
    if (!s) return;
    const sealed = sealChunk(k, s.records, { id: s.id });
    objects.set(
      `chunks/${Buffer.from(s.id).toString('hex').slice(0, 2)}/${Buffer.from(s.id).toString('hex')}`,
      sealed.object,
    );
  };
  for (const add of adds) {
    if (add[0] === 'chunk') b.addChunk(add[1], add[2], locationOf(add[1]));
    else b.addHole(add[1]);
    store(b.takeSegment());
  }
  store(b.finish());
  return { manifest: b.build(meta(b.totalLength, options.metaOverrides)), objects };
}

function fetchFrom(objects: Objects) {
  return async (s: ManifestSegmentRef) => {
    const o = objects.get(s.objectKey);
    if (!o) throw Object.assign(new Error(`no object ${s.objectKey}`), { missing: true });
    return o;
  };
}

async function collect(
  manifest: Manifest,
  objects: Objects,
  options: { readAhead?: number; isDamage?: (e: unknown) => boolean; k?: TargetKeys } = {},
): Promise<ManifestSegment[]> {
  const out: ManifestSegment[] = [];
  for await (const s of readManifestSegments(options.k ?? keys, manifest, {
    fetch: fetchFrom(objects),
    manifestKey,
    ...options,
  })) {
    out.push(s);
  }
  return out;
}

const plain = (e: ManifestEntry) =>
  e.kind === 'chunk' ? ['chunk', e.id[0], e.length, e.offset] : ['hole', e.length, e.offset];

async function entriesOf(manifest: Manifest, objects: Objects): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const s of await collect(manifest, objects)) {
    if (s.damaged) throw s.error;
    for (const e of s.entries) out.push(plain(e));
  }
  return out;
}

function sample(): Add[] {
  return [
    ['chunk', id(1), 1000],
    ['hole', 4096],
    ['hole', 4096],
    ['chunk', id(2), 2000],
    ['hole', 2 ** 40],
    ['chunk', id(3), 3000],
    ['chunk', id(4), 4000],
    ['chunk', id(1), 1000],
  ];
}

describe('ManifestBuilder', () => {
  it('merges adjacent holes and cuts segments of segmentEntries records, the last one short', () => {
    const { manifest, objects } = buildManifest(sample(), { segmentEntries: 3 });
    expect(manifest.entryCount).toBe(7);
    expect(manifest.chunkCount).toBe(5);
    expect(manifest.chunkBytes).toBe(11_000);
    expect(manifest.holeBytes).toBe(8192 + 2 ** 40);
    expect(manifest.volumeSize).toBe(11_000 + 8192 + 2 ** 40);
    expect(manifestSegmentCount(manifest)).toBe(3);
    expect([0, 1, 2].map((i) => manifestSegmentEntryCount(manifest, i))).toEqual([3, 3, 1]);
    expect(objects.size).toBe(3);
  });

  it('round-trips a manifest of several segments through its root, with volume offsets', async () => {
    const { manifest, objects } = buildManifest(sample(), { segmentEntries: 3 });
    const back = decodeManifest(keys, encodeManifest(keys, manifest), { volumeId, backupId });
    expect(back).toEqual(manifest);
    expect(await entriesOf(back, objects)).toEqual([
      ['chunk', 1, 1000, 0],
      ['hole', 8192, 1000],
      ['chunk', 2, 2000, 9192],
      ['hole', 2 ** 40, 11_192],
      ['chunk', 3, 3000, 11_192 + 2 ** 40],
      ['chunk', 4, 4000, 14_192 + 2 ** 40],
      ['chunk', 1, 1000, 18_192 + 2 ** 40],
    ]);
    const segments = await collect(back, objects);
    // Every chunk entry carries the location it was added with (a copy, not a view of the records).
    for (const s of segments) {
      if (s.damaged) throw s.error;
      for (const e of s.entries) {
        if (e.kind !== 'chunk') continue;
        const want = locationOf(e.id);
        expect([e.location.pack, e.location.offset, e.location.length]).toEqual([
          want.pack,
          want.offset,
          want.length,
        ]);
        expect(e.location.pack.buffer).not.toBe(s.entries.records.buffer);
      }
    }
    expect(segments.map((s) => [s.index, s.firstEntry, s.entryCount, !s.damaged && s.offset])).toEqual([
      [0, 0, 3, 0],
      [1, 3, 3, 11_192],
      [2, 6, 1, 18_192 + 2 ** 40],
    ]);
  });

  it('merges a hole into a full segment that ends in a hole instead of cutting it', async () => {
    const adds: Add[] = [
      ['chunk', id(1), 10],
      ['hole', 5],
      ['hole', 7],
      ['chunk', id(2), 10],
      ['hole', 1],
    ];
    const { manifest, objects } = buildManifest(adds, { segmentEntries: 2 });
    expect(manifest.entryCount).toBe(4);
    expect(await entriesOf(manifest, objects)).toEqual([
      ['chunk', 1, 10, 0],
      ['hole', 12, 10],
      ['chunk', 2, 10, 22],
      ['hole', 1, 32],
    ]);
  });

  it('segments are the chunk objects of their records: an unchanged volume makes the same segments', () => {
    const a = buildManifest(sample(), { segmentEntries: 3 });
    const b = buildManifest(sample(), { segmentEntries: 3, metaOverrides: { backupId: otherBackup } });
    expect(Buffer.from(a.manifest.segments).equals(Buffer.from(b.manifest.segments))).toBe(true);
    expect([...a.objects.keys()]).toEqual([...b.objects.keys()]);
    const first = a.manifest.segments.subarray(0, 32);
    // kind ‖ length(7) ‖ chunk id ‖ pack id ‖ u32be(offset) ‖ u32be(object length); a hole's last 72 bytes zero.
    const records = new Uint8Array(3 * ENTRY_RECORD_LENGTH);
    expect(ENTRY_RECORD_LENGTH).toBe(80);
    records[0] = 0;
    records[7] = 1000 & 0xff;
    records[6] = 1000 >> 8;
    records.set(id(1), 8);
    records.set(new Uint8Array(32).fill(0x81), 40);
    records.set([0, 0, 0x10, 0x00, 0, 0, 0, 51], 72); // offset 4096, object length 51
    records[80] = 1;
    records[87] = 8192 & 0xff;
    records[86] = 8192 >> 8;
    records[160] = 0;
    records[167] = 2000 & 0xff;
    records[166] = 2000 >> 8;
    records.set(id(2), 168);
    writeLocation(records, 200, locationOf(id(2)));
    expect(Buffer.from(first).equals(Buffer.from(chunkId(keys, records)))).toBe(true);
  });

  it('hands over one segment at a time: a second cannot be cut while one waits', () => {
    const b = new ManifestBuilder(keys, { segmentEntries: 1 });
    const add = (n: number, length: number) => b.addChunk(id(n), length, locationOf(id(n)));
    add(1, 10);
    add(2, 10); // cuts segment 0
    expect(() => add(3, 10)).toThrow(/takeSegment/);
    expect(b.takeSegment()?.index).toBe(0);
    add(3, 10);
    expect(b.takeSegment()?.index).toBe(1);
    expect(b.takeSegment()).toBeUndefined();
    expect(() => b.build(meta(30))).toThrow(/finish/);
    expect(b.finish()?.index).toBe(2);
    expect(() => add(4, 1)).toThrow(/finished/);
    expect(b.build(meta(30)).entryCount).toBe(3);
  });

  it('validates its input', () => {
    const b = new ManifestBuilder(keys);
    const at = locationOf(id(1));
    expect(() => new ManifestBuilder(keys, { segmentEntries: 0 })).toThrow(RangeError);
    expect(() => new ManifestBuilder(keys, { segmentEntries: 131_073 })).toThrow(RangeError);
    expect(new ManifestBuilder(keys, { segmentEntries: 131_072 }).segmentEntries).toBe(131_072);
    expect(() => b.addChunk(new Uint8Array(31), 10, at)).toThrow(TypeError);
    expect(() => b.addChunk(id(1), 0, at)).toThrow(RangeError);
    expect(() => b.addChunk(id(1), 16 * 1024 * 1024 + 1, at)).toThrow(RangeError);
    expect(() => b.addHole(0)).toThrow(RangeError);
    // Locations a record cannot hold, or that no chunk object can fill.
    expect(() => b.addChunk(id(1), 10, undefined as unknown as PackLocation)).toThrow(TypeError);
    expect(() => b.addChunk(id(1), 10, { ...at, pack: new Uint8Array(31) })).toThrow(TypeError);
    expect(() => b.addChunk(id(1), 10, { ...at, length: 49 })).toThrow(/chunk object length 49/);
    expect(() => b.addChunk(id(1), 10, { ...at, length: MAX_PACKED_OBJECT_LENGTH + 1 })).toThrow(RangeError);
    expect(() => b.addChunk(id(1), 10, { ...at, offset: -1 })).toThrow(RangeError);
    expect(() => b.addChunk(id(1), 10, { ...at, offset: 2 ** 32 - 50 })).toThrow(/past a pack's maximum/);
    expect(b.entryCount).toBe(0); // nothing refused was recorded
    b.addChunk(id(1), 10, at);
    b.finish();
    expect(() => b.build(meta(11))).toThrow(/volumeSize is 11/);
    expect(() => b.build(meta(10, { backupId: 'not-a-uuid' }))).toThrow(FormatError);
    expect(() => b.build(meta(10, { volumeId: volumeId.toUpperCase() }))).toThrow(FormatError);
    expect(() => b.build(meta(10, { chunker: { ...chunker, minSize: 5_000_000 } }))).toThrow(FormatError);
    expect(() => b.build(meta(10, { volumeName: 'x'.repeat(1025) }))).toThrow(/1024 code points/);
    expect(b.build(meta(10, { volumeName: '😀'.repeat(1024) })).volumeName.length).toBe(2048);
    expect(() => b.build(meta(10, { volumeName: 'bad \ud800' }))).toThrow(/well-formed/);
  });

  it('keeps its memory bounded by one segment whatever the number of entries (2 M entries)', () => {
    const segmentEntries = 4096;
    const b = new ManifestBuilder(keys, { segmentEntries });
    const chunk = new Uint8Array(randomBytes(32));
    const view = new DataView(chunk.buffer);
    let peak = 0;
    let segments = 0;
    let recordBytes = 0;
    for (let i = 0; i < 2_000_000; i++) {
      view.setUint32(0, i);
      if (i % 100 === 99) b.addHole(1 << 20);
      else b.addChunk(chunk, 1 << 20, { pack: chunk, offset: (i % 8) << 20, length: 1_081_344 });
      const s = b.takeSegment();
      if (s) {
        segments++;
        recordBytes += s.records.length;
      }
      // Measured with the segment just cut still held: the worst moment.
      if (i % 1024 === 0 || s) peak = Math.max(peak, b.retainedBytes + (s?.records.byteLength ?? 0));
    }
    const last = b.finish();
    if (last) recordBytes += last.records.length;
    const m = b.build(meta(b.totalLength));
    expect(m.entryCount).toBe(2_000_000);
    expect(recordBytes).toBe(2_000_000 * ENTRY_RECORD_LENGTH); // 160 MB of records went through…
    expect(segments + 1).toBe(manifestSegmentCount(m));
    // …while the builder held two segments' buffers (the current one and the one just cut) and the ids.
    const idBytes = manifestSegmentCount(m) * 32;
    expect(peak).toBeLessThanOrEqual(2 * segmentEntries * ENTRY_RECORD_LENGTH + 2 * idBytes);
    expect(peak).toBeLessThan(1 << 20);
    expect(b.retainedBytes).toBeLessThanOrEqual(2 * idBytes);
  });
});

describe('manifest roots', () => {
  it('bind the volume id and the backup id: a root copied under another key fails, naming it', () => {
    const { manifest } = buildManifest(sample());
    const bytes = encodeManifest(keys, manifest);
    const moved = manifestObjectKey(otherVolume, backupId);
    expect(() => decodeManifest(keys, bytes, { volumeId: otherVolume, backupId })).toThrow(IntegrityError);
    expect(() => decodeManifest(keys, bytes, { volumeId: otherVolume, backupId })).toThrow(moved);
    expect(() => decodeManifest(keys, bytes, { volumeId, backupId: otherBackup })).toThrow(IntegrityError);
    expect(() => decodeManifest(keys, bytes, { volumeId, backupId: otherBackup })).toThrow(
      manifestObjectKey(volumeId, otherBackup),
    );
    expect(decodeManifest(keys, bytes, { volumeId, backupId }).volumeId).toBe(volumeId);
  });

  it('hold the volume name in NFC, whichever way it was spelled', () => {
    const decomposed = 'caf\u0065\u0301';
    const { manifest } = buildManifest(sample(), { metaOverrides: { volumeName: decomposed } });
    expect(manifest.volumeName).toBe('caf\u00e9');
    const back = decodeManifest(keys, encodeManifest(keys, manifest), { volumeId, backupId });
    expect(back.volumeName).toBe('caf\u00e9');
    expect(() => encodeManifest(keys, { ...manifest, volumeName: decomposed })).toThrow(/NFC/);
  });

  it('are padded to their Padmé length and use a random nonce each time', () => {
    const { manifest } = buildManifest(sample());
    const a = encodeManifest(keys, manifest);
    const b = encodeManifest(keys, manifest);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(a.length).toBe(b.length);
    const named = encodeManifest(keys, { ...manifest, volumeName: 'x'.repeat(40) });
    expect(named.length % 8).toBe(0); // a padded length, not 50 + the CBOR's
  });

  it('round-trip an empty volume (no entries, no segments) and a 2^53 − 1 byte one', async () => {
    const empty = buildManifest([], { metaOverrides: { volumeName: '' } }).manifest;
    expect(manifestSegmentCount(empty)).toBe(0);
    const back = decodeManifest(keys, encodeManifest(keys, empty), { volumeId, backupId });
    expect(back.entryCount).toBe(0);
    expect(await collect(back, new Map())).toEqual([]);
    const huge = buildManifest([['hole', Number.MAX_SAFE_INTEGER]]);
    expect(huge.manifest.volumeSize).toBe(Number.MAX_SAFE_INTEGER);
    expect(await entriesOf(huge.manifest, huge.objects)).toEqual([['hole', Number.MAX_SAFE_INTEGER, 0]]);
  });

  it('are XChaCha20-Poly1305 of length ‖ plain CBOR ‖ zeros, which an independent reader decodes', () => {
    const { manifest } = buildManifest(sample());
    const bytes = encodeManifest(keys, manifest);
    expect([...bytes.subarray(0, 6)]).toEqual([0x53, 0x54, 0x57, 0x4d, 2, 0]);
    const aad = new Uint8Array([
      ...bytes.subarray(0, 6),
      ...Buffer.from(volumeId.replaceAll('-', ''), 'hex'),
      ...Buffer.from(backupId.replaceAll('-', ''), 'hex'),
    ]);
    const inner = xchacha20poly1305(keys.manifestKey, bytes.subarray(6, 30), aad).decrypt(bytes.subarray(30));
    const n = new DataView(inner.buffer, inner.byteOffset).getUint32(0);
    expect(inner.subarray(4 + n).every((x) => x === 0)).toBe(true);
    const doc = strictCborDecode(inner.subarray(4, 4 + n)) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual([
      'version',
      'backupId',
      'volumeId',
      'volumeName',
      'volumeSize',
      'createdAt',
      'chunker',
      'entryCount',
      'chunkCount',
      'chunkBytes',
      'holeBytes',
      'segmentEntries',
      'segments',
    ]);
    expect(doc.version).toBe(2n);
    expect(doc.volumeSize).toBe(BigInt(manifest.volumeSize));
    expect(doc.chunker).toEqual({ minSize: 262_144n, avgSize: 1_048_576n, maxSize: 4_194_304n, level: 1n });
    expect(doc.entryCount).toBe(7n);
    expect(doc.segmentEntries).toBe(3n);
    expect(Buffer.from(doc.segments as Uint8Array).equals(Buffer.from(manifest.segments))).toBe(true);
  });

  it('detect tampering, truncation and wrong keys, naming the object', () => {
    const { manifest } = buildManifest(sample());
    const bytes = encodeManifest(keys, manifest);
    const objectKey = manifestKey;
    expect(() => decodeManifest(deriveTargetKeys(id(9)), bytes, { volumeId, backupId })).toThrow(
      IntegrityError,
    );
    for (const i of [0, 5, 6, 29, 30, 40, bytes.length - 17, bytes.length - 1]) {
      const bad = bytes.slice();
      bad[i]! ^= 0x10;
      expect(() => decodeManifest(keys, bad, { volumeId, backupId })).toThrow(IntegrityError);
    }
    for (const length of [0, 10, 49, bytes.length - 1]) {
      expect(() => decodeManifest(keys, bytes.subarray(0, length), { volumeId, backupId })).toThrow(
        new RegExp(objectKey),
      );
    }
  });

  it('report a newer version clearly and refuse version 1', () => {
    const bytes = encodeManifest(keys, buildManifest(sample()).manifest);
    bytes[4] = 7;
    expect(() => decodeManifest(keys, bytes, { volumeId, backupId })).toThrow(UnsupportedFormatVersionError);
    expect(() => decodeManifest(keys, bytes, { volumeId, backupId })).toThrow(/unsupported format version 7/);
    bytes[4] = 1;
    expect(() => decodeManifest(keys, bytes, { volumeId, backupId })).toThrow(UnsupportedFormatVersionError);
  });

  it('spell and parse object keys', () => {
    expect(manifestObjectKey(volumeId, backupId)).toBe(`manifests/${volumeId}/${backupId}`);
    expect(parseManifestObjectKey(`manifests/${volumeId}/${backupId}`)).toEqual({ volumeId, backupId });
    expect(parseManifestObjectKey(`manifests/${volumeId}/x`)).toBeUndefined();
    expect(() => manifestObjectKey('nope', backupId)).toThrow(FormatError);
  });
});

describe('reading segments', () => {
  const expectNamed = async (p: Promise<unknown>, kind: unknown, ...names: string[]) => {
    const error = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(kind);
    for (const name of names) expect((error as Error).message).toContain(name);
  };

  it('a segment swapped in from another backup, reordered or truncated fails, naming it and the manifest', async () => {
    const adds = sample();
    const a = buildManifest(adds, { segmentEntries: 3 });
    const keysA = [...a.objects.keys()];
    // Another backup of a changed volume: its segment 0 differs.
    const b = buildManifest([['chunk', id(9), 1000], ...adds.slice(1)], { segmentEntries: 3 });
    const bFirst = [...b.objects.values()][0]!;

    const swapped = new Map(a.objects);
    swapped.set(keysA[0]!, bFirst);
    await expectNamed(collect(a.manifest, swapped), IntegrityError, keysA[0]!, `segment 0 of ${manifestKey}`);

    const reordered = new Map(a.objects);
    reordered.set(keysA[0]!, a.objects.get(keysA[1]!)!);
    reordered.set(keysA[1]!, a.objects.get(keysA[0]!)!);
    await expectNamed(collect(a.manifest, reordered), IntegrityError, keysA[0]!, manifestKey);

    const truncated = new Map(a.objects);
    truncated.set(keysA[2]!, a.objects.get(keysA[2]!)!.subarray(0, 60));
    await expectNamed(
      collect(a.manifest, truncated),
      IntegrityError,
      keysA[2]!,
      `segment 2 of ${manifestKey}`,
    );

    const flipped = new Map(a.objects);
    const bad = a.objects.get(keysA[1]!)!.slice();
    bad[40]! ^= 1;
    flipped.set(keysA[1]!, bad);
    await expectNamed(collect(a.manifest, flipped), IntegrityError, keysA[1]!, `segment 1 of ${manifestKey}`);
  });

  it('a missing segment ends the stream, or is handed over as damaged and reading goes on', async () => {
    const a = buildManifest(sample(), { segmentEntries: 3 });
    const keysA = [...a.objects.keys()];
    const missing = new Map(a.objects);
    missing.delete(keysA[1]!);
    await expectNamed(collect(a.manifest, missing), Error, keysA[1]!);
    const isDamage = (e: unknown) =>
      e instanceof IntegrityError || (e as { missing?: boolean }).missing === true;
    const read = await collect(a.manifest, missing, { isDamage });
    expect(read.map((s) => [s.index, s.damaged])).toEqual([
      [0, false],
      [1, true],
      [2, false],
    ]);
    // After the damaged segment, the volume offsets are unknown.
    expect(read[2]!.damaged === false && read[2]!.offset).toBeUndefined();
  });

  it('a root whose segments are listed in another order fails on the short segment out of place', async () => {
    const a = buildManifest(sample(), { segmentEntries: 3 });
    const s = a.manifest.segments;
    const reordered = new Uint8Array([...s.subarray(64, 96), ...s.subarray(32, 64), ...s.subarray(0, 32)]);
    const root = { ...a.manifest, segments: reordered };
    await expectNamed(collect(root, a.objects), IntegrityError, manifestKey, 'expected 240');
  });

  it('checks the totals the root states against the segments once the last one is read', async () => {
    const a = buildManifest(sample(), { segmentEntries: 3 });
    const wrong = { ...a.manifest, chunkCount: a.manifest.chunkCount - 1 };
    const root = decodeManifest(keys, encodeManifest(keys, wrong), { volumeId, backupId });
    const seen: number[] = [];
    const run = (async () => {
      for await (const s of readManifestSegments(keys, root, { fetch: fetchFrom(a.objects), manifestKey })) {
        seen.push(s.index);
      }
    })();
    await expectNamed(run, FormatError, manifestKey, 'chunkCount is 5, the root states 4');
    expect(seen).toEqual([0, 1, 2]);
  });

  it('refuses entries that run past volumeSize before handing them over', async () => {
    const a = buildManifest(sample(), { segmentEntries: 3 });
    const m = a.manifest;
    // Sizes that still add up in the root (volumeSize = chunkBytes + holeBytes), but not to the segments'.
    const root = { ...m, volumeSize: m.volumeSize - 2 ** 40, holeBytes: m.holeBytes - 2 ** 40 };
    const handed: number[] = [];
    const run = (async () => {
      for await (const s of readManifestSegments(keys, root, { fetch: fetchFrom(a.objects), manifestKey })) {
        handed.push(s.index);
      }
    })();
    await expectNamed(run, FormatError, manifestKey, 'more than volumeSize');
    expect(handed).toEqual([0]);
  });

  /** A root of one segment around `records` (two entries, each of 10 bytes), and its segment object. */
  const crafted = (records: Uint8Array) => {
    const segId = chunkId(keys, records);
    const objectKey = `chunks/${Buffer.from(segId).toString('hex').slice(0, 2)}/${Buffer.from(segId).toString('hex')}`;
    const root: Manifest = {
      ...buildManifest([]).manifest,
      volumeSize: 20,
      entryCount: 2,
      chunkCount: 1,
      chunkBytes: 10,
      holeBytes: 10,
      segmentEntries: 2,
      segments: segId,
    };
    return { root, objectKey, objects: new Map([[objectKey, sealChunk(keys, records).object]]) };
  };
  /** A hole of 10 bytes, then a chunk of 10 bytes at a valid location; `change` spoils a byte. */
  const twoRecords = (change: (records: Uint8Array) => void = () => {}) => {
    const records = new Uint8Array(2 * ENTRY_RECORD_LENGTH);
    records[0] = 1;
    records[7] = 10;
    records[80] = 0;
    records[87] = 10;
    records.set(id(5), 88);
    writeLocation(records, 120, { pack: id(0xee), offset: 8192, length: 1088 });
    change(records);
    return records;
  };

  it('reads a crafted segment (the helper is sound), locations included', async () => {
    const { root, objects } = crafted(twoRecords());
    const [segment] = await collect(root, objects);
    if (!segment || segment.damaged) throw new Error('not read');
    const chunk = segment.entries.get(1);
    expect(chunk.kind === 'chunk' && { ...chunk.location, pack: chunk.location.pack[0] }).toEqual({
      pack: 0xee,
      offset: 8192,
      length: 1088,
    });
    expect(segment.entries.locationAt(1).offset).toBe(8192);
    expect(() => segment.entries.locationAt(0)).toThrow(/is a hole/);
  });

  const invalid: [string, (r: Uint8Array) => void, string][] = [
    ['a hole with a non-zero id', (r) => (r[20] = 1), 'entry 0: hole with a non-zero id or location'],
    ['a hole with a non-zero pack id', (r) => (r[40] = 1), 'entry 0: hole with a non-zero id or location'],
    ['a hole with a non-zero offset', (r) => (r[75] = 1), 'entry 0: hole with a non-zero id or location'],
    [
      'a hole with a non-zero object length',
      (r) => (r[79] = 1),
      'entry 0: hole with a non-zero id or location',
    ],
    ['a chunk of object length 0', (r) => r.fill(0, 156, 160), 'entry 1: chunk object length 0 outside 50..'],
    [
      'a chunk of object length 49',
      (r) => r.set([0, 0, 0, 49], 156),
      'entry 1: chunk object length 49 outside 50..17301504',
    ],
    [
      'a chunk object longer than any',
      (r) => r.set([0x01, 0x08, 0x00, 0x01], 156),
      'entry 1: chunk object length 17301505 outside',
    ],
    [
      'a range past a pack’s maximum',
      (r) => r.set([0xff, 0xff, 0xff, 0x00], 152),
      "entry 1: range 4294967040+1088 ends past a pack's maximum",
    ],
    ['an unknown kind', (r) => (r[80] = 2), 'entry 1 has unknown kind 2'],
    ['a chunk of length 0', (r) => (r[87] = 0), 'entry 1 has length 0'],
  ];
  for (const [what, change, message] of invalid) {
    it(`refuses an authentic segment holding ${what}, naming it and the manifest`, async () => {
      const { root, objectKey, objects } = crafted(twoRecords(change));
      await expectNamed(collect(root, objects), FormatError, objectKey, message, manifestKey);
    });
  }

  it('fetches at most readAhead segments ahead of the one being read', async () => {
    const adds: Add[] = Array.from({ length: 40 }, (_, i) => ['chunk', id(i), 100 + i] as Add);
    const { manifest, objects } = buildManifest(adds, { segmentEntries: 2 });
    let fetched = 0;
    let maxAhead = 0;
    let reading = -1;
    for await (const s of readManifestSegments(keys, manifest, {
      readAhead: 3,
      fetch: async (ref) => {
        fetched++;
        maxAhead = Math.max(maxAhead, ref.index - reading);
        return objects.get(ref.objectKey)!;
      },
    })) {
      reading = s.index;
      await new Promise((r) => setImmediate(r));
    }
    expect(fetched).toBe(20);
    expect(maxAhead).toBeLessThanOrEqual(4);
  });
});
