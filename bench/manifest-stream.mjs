#!/usr/bin/env node
// Streaming manifests at scale (issue 8 point 4), without 16 TiB of disk:
//
//   synthetic  a manifest of 16 Mi entries (16 TiB of 1 MiB chunks, 1 % of them holes) built with the format's
//              ManifestBuilder — each chunk's record naming a location in a pack (format version 2's 80-byte
//              records: id, length, pack id, offset, object length), packs of ~8 MiB filled in stream order
//              as a backup fills them — its segments (5 MiB of records at the default 65,536 entries) sealed
//              and stored in a filesystem repository under chunks/ as a backup stores them (HEAD, then PUT),
//              the root committed last; then, in another process, the root read and every segment read back
//              in order through the engine (Repository.readManifestSegments: each authenticated, its records
//              and locations validated, the totals checked at the end), every entry iterated as a restore
//              does, and the records' SHA-256 compared with what was written. No pack exists: only the
//              manifest path is measured.
//   image      a real backup, restore and verify through the engine of a sparse image (64 GiB by default) with
//              1 MiB of random data every 64 MiB, each in its own process (the backup's packs, index objects
//              and segments counted); the restored file compared with the image (data and holes, by
//              SEEK_DATA/SEEK_HOLE, then byte for byte where either has data).
//
// Each step runs in a child process and reports its wall time and peak RSS (getrusage's maxrss, what GNU time
// reports as %M). Repositories use scrypt N = 1024 so the 128 MiB of a real key derivation does not hide the
// pipeline's own peak. Needs a built tree (`npm run build`).
//
//   node bench/manifest-stream.mjs                       both parts (about 5 minutes on 2 cores)
//   node bench/manifest-stream.mjs --synthetic-only      only the synthetic manifest
//   node bench/manifest-stream.mjs --image-only          only the sparse image
//   --entries N       synthetic entries (default 16777216; a smoke run: --entries 200000)
//   --image-gib G     size of the sparse image in GiB (default 64; a smoke run: --image-gib 1)
//   --keep            leave the work directory (default: removed)
//   --out FILE        where to write the results (default bench/results/manifest-stream.json; a smoke run
//                     with small options should not replace the recorded run: --out /tmp/ms.json)
//   --help            this text
//
// Work directory: $STOWAGE_BENCH_DIR/manifest-stream (default /var/tmp/stowage-bench/manifest-stream); needs
// ≈ (entries × 80 B) + 3 × (image data) of free space.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkArguments } from './args.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const PASSPHRASE = 'bench passphrase';
const KDF = { N: 1024, r: 8, p: 1 };
const CHUNKER = { minSize: 256 * 1024, avgSize: MiB, maxSize: 4 * MiB, level: 1, seed: 0n };

const args = process.argv.slice(2);
checkArguments(args, {
  name: 'manifest-stream',
  url: import.meta.url,
  flags: ['--synthetic-only', '--image-only', '--keep'],
  // The child steps' own options too (--step, --dir, --ref, --image, --target).
  options: ['--entries', '--image-gib', '--out', '--step', '--dir', '--ref', '--image', '--target'],
});
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};

async function load() {
  const engine = await import(join(root, 'packages/engine/dist/index.js'));
  const format = await import(join(root, 'packages/format/dist/index.js'));
  const store = await import(join(root, 'packages/object-store/dist/index.js'));
  return { engine, format, store };
}

/** Peak RSS so far, in bytes (getrusage: the same figure as GNU time's %M). */
const maxRss = () => process.resourceUsage().maxRSS * 1024;

// ---- child steps: each prints one JSON line ----

async function synthWrite(dir, entries) {
  const { engine, format, store: os } = await load();
  const store = new os.FsObjectStore({ root: join(dir, 'repo') });
  const repository = await engine.Repository.init(store, {
    passphrase: PASSPHRASE,
    chunker: CHUNKER,
    kdf: KDF,
  });
  const volumeId = repository.volumeIdFor('synthetic');
  const backupId = '00000000-0000-4000-8000-000000000016';
  const t0 = performance.now();
  const builder = new format.ManifestBuilder(repository.keys);
  const digest = createHash('sha256');
  // Ids: a counter in a random 4 MiB pool (larger than a segment's 2 MiB of ids, so zstd finds no repeats).
  const pool = randomBytes(4 * MiB);
  const id = new Uint8Array(32);
  const view = new DataView(id.buffer);
  // Locations as a backup writes them: chunk objects appended in stream order into packs with random ids,
  // a pack closed once it reaches the writer's target (8 MiB). Object lengths vary between 256 KiB and 1 MiB
  // (compressed, padded 1 MiB chunks), so offsets and lengths are not a pattern zstd could fold away.
  let pack = format.newPackId();
  let packOffset = 0;
  let packs = 1;
  let segments = 0;
  let segmentBytes = 0;
  let peakRetained = 0;
  let sampledRss = 0;
  const storeSegment = async (s) => {
    digest.update(s.records);
    const key = format.chunkObjectKey(s.id);
    if (!(await store.head(key))) {
      const sealed = format.sealChunk(repository.keys, s.records, { id: s.id });
      await store.put(key, sealed.object, { durability: 'deferred' });
      segmentBytes += sealed.object.length;
    }
    segments++;
  };
  for (let i = 0; i < entries; i++) {
    if (i % 100 === 99) builder.addHole(MiB);
    else {
      const at = (i * 32) % (pool.length - 32);
      id.set(pool.subarray(at, at + 32));
      view.setUint32(0, i);
      if (packOffset >= format.DEFAULT_PACK_TARGET) {
        pack = format.newPackId();
        packOffset = 0;
        packs++;
      }
      const length = 256 * 1024 + ((Math.imul(i, 2654435761) >>> 0) % (768 * 1024));
      builder.addChunk(id, MiB, { pack, offset: packOffset, length });
      packOffset += length;
    }
    peakRetained = Math.max(peakRetained, builder.retainedBytes);
    const s = builder.takeSegment();
    if (s) await storeSegment(s);
    if ((i & 0xfffff) === 0) sampledRss = Math.max(sampledRss, process.memoryUsage.rss());
  }
  const last = builder.finish();
  if (last) await storeSegment(last);
  await store.flush();
  const manifest = builder.build({
    backupId,
    volumeId,
    volumeName: 'synthetic 16 TiB',
    volumeSize: builder.totalLength,
    createdAt: new Date(),
    chunker: CHUNKER,
  });
  const rootObject = repository.encodeManifest(manifest);
  const manifestKey = format.manifestObjectKey(volumeId, backupId);
  await store.put(manifestKey, rootObject, { ifNoneMatch: true });
  return {
    step: 'synthetic build + write',
    seconds: (performance.now() - t0) / 1000,
    peakRss: maxRss(),
    sampledRss,
    entries: manifest.entryCount,
    chunks: manifest.chunkCount,
    volumeSize: manifest.volumeSize,
    segments,
    segmentBytes,
    segmentEntries: builder.segmentEntries,
    packsNamed: packs,
    rootBytes: rootObject.length,
    recordBytes: manifest.entryCount * format.ENTRY_RECORD_LENGTH,
    peakBuilderRetained: peakRetained,
    digest: digest.digest('hex'),
    ref: { volumeId, backupId, manifestKey },
  };
}

async function synthRead(dir, ref) {
  const { engine, store: os } = await load();
  const store = new os.FsObjectStore({ root: join(dir, 'repo') });
  const repository = await engine.Repository.open(store, { passphrase: PASSPHRASE });
  const t0 = performance.now();
  const manifest = await repository.loadManifest(ref);
  const digest = createHash('sha256');
  let entries = 0;
  let chunks = 0;
  let bytes = 0;
  let segments = 0;
  let sampledRss = 0;
  for await (const segment of repository.readManifestSegments(manifest)) {
    if (segment.damaged) throw segment.error;
    digest.update(segment.entries.records);
    segments++;
    for (const entry of segment.entries) {
      entries++;
      if (entry.kind === 'chunk') chunks++;
      bytes += entry.length;
    }
    sampledRss = Math.max(sampledRss, process.memoryUsage.rss());
  }
  return {
    step: 'synthetic read + verify',
    seconds: (performance.now() - t0) / 1000,
    peakRss: maxRss(),
    sampledRss,
    entries,
    chunks,
    segments,
    volumeSize: bytes,
    digest: digest.digest('hex'),
  };
}

async function imageBackup(dir, image) {
  const { engine, store: os } = await load();
  const store = new os.FsObjectStore({ root: join(dir, 'image-repo') });
  const repository = await engine.Repository.init(store, {
    passphrase: PASSPHRASE,
    chunker: CHUNKER,
    kdf: KDF,
  });
  const workers = new engine.ChunkWorkers(repository.targetKey);
  const source = await engine.openVolumeSource(image);
  try {
    const s = await engine.backupVolume({ repository, workers, source, volumeName: 'sparse image' });
    return {
      step: 'image backup',
      seconds: s.seconds,
      peakRss: maxRss(),
      size: s.size,
      chunks: s.chunks,
      holes: s.holes,
      bytesUploaded: s.bytesUploaded,
      chunksNew: s.chunksNew,
      packs: s.packs,
      indexObjects: s.indexObjects,
      manifestSegments: s.manifestSegments,
      ref: { volumeId: s.volumeId, backupId: s.backupId, manifestKey: s.manifestKey },
    };
  } finally {
    await source.close();
    await workers.close();
  }
}

async function imageRestore(dir, ref, out) {
  const { engine, store: os } = await load();
  const store = new os.FsObjectStore({ root: join(dir, 'image-repo') });
  const repository = await engine.Repository.open(store, { passphrase: PASSPHRASE });
  const workers = new engine.ChunkWorkers(repository.targetKey);
  try {
    const s = await engine.restoreBackup({ repository, workers, backup: ref, targetPath: out });
    return {
      step: 'image restore',
      seconds: s.seconds,
      peakRss: maxRss(),
      bytesWritten: s.bytesWritten,
      bytesDownloaded: s.bytesDownloaded,
      chunks: s.chunks,
    };
  } finally {
    await workers.close();
  }
}

async function imageVerify(dir, ref) {
  const { engine, store: os } = await load();
  const store = new os.FsObjectStore({ root: join(dir, 'image-repo') });
  const repository = await engine.Repository.open(store, { passphrase: PASSPHRASE });
  const workers = new engine.ChunkWorkers(repository.targetKey);
  try {
    const r = await engine.verifyBackup({ repository, workers, backup: ref });
    if (r.problems.length > 0) throw new Error(`verify found problems: ${JSON.stringify(r.problems)}`);
    return {
      step: 'image verify',
      seconds: r.seconds,
      peakRss: maxRss(),
      chunksChecked: r.chunksChecked,
      segmentsChecked: r.segmentsChecked,
    };
  } finally {
    await workers.close();
  }
}

// ---- parent ----

function runStep(name, ...stepArgs) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--step', name, ...stepArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`step ${name} failed (${r.status})`);
  const result = JSON.parse(r.stdout.toString().trim().split('\n').pop());
  console.error(
    `  ${result.step}: ${result.seconds.toFixed(1)} s, peak RSS ${(result.peakRss / MiB).toFixed(0)} MiB`,
  );
  return result;
}

/** A sparse image: `gib` GiB, 1 MiB of random data every 64 MiB (at a varying offset inside each 64 MiB). */
function writeSparseImage(path, gib) {
  const fd = openSync(path, 'w');
  try {
    const size = gib * GiB;
    const piece = 64 * MiB;
    for (let at = 0, k = 0; at < size; at += piece, k++) {
      const offset = at + ((k * 7919 * 4096) % (piece - MiB));
      writeSync(fd, randomBytes(MiB), 0, MiB, offset);
    }
    spawnSync('truncate', ['-s', String(size), path]);
  } finally {
    closeSync(fd);
  }
}

/** Compares two (sparse) files exactly: where either has data, byte for byte; elsewhere both are holes. */
function compareSparse(a, b) {
  const py = `
import os, sys
def extents(path):
    fd = os.open(path, os.O_RDONLY); size = os.fstat(fd).st_size; out = []; at = 0
    while at < size:
        try: start = os.lseek(fd, at, os.SEEK_DATA)
        except OSError: break
        end = os.lseek(fd, start, os.SEEK_HOLE); out.append((start, end)); at = end
    os.close(fd); return size, out
(sa, ea), (sb, eb) = extents(sys.argv[1]), extents(sys.argv[2])
if sa != sb: print(f"sizes differ: {sa} {sb}"); sys.exit(1)
spans = sorted(ea + eb); merged = []
for s, e in spans:
    if merged and s <= merged[-1][1]: merged[-1][1] = max(merged[-1][1], e)
    else: merged.append([s, e])
fa, fb = open(sys.argv[1], 'rb'), open(sys.argv[2], 'rb'); compared = 0
for s, e in merged:
    fa.seek(s); fb.seek(s); at = s
    while at < e:
        n = min(1 << 22, e - at); x, y = fa.read(n), fb.read(n)
        if x != y: print(f"differ in [{at}, {at + n})"); sys.exit(1)
        at += n; compared += n
print(f"identical ({compared} bytes compared where either has data, {sa - compared} bytes of holes in both)")
`;
  const r = spawnSync('python3', ['-c', py, a, b], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`restored image differs: ${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/** What a step did, in a few words (the table in docs/benchmarks.md takes them). */
function detail(s) {
  const mib = (b) => `${(b / MiB).toFixed(1)} MiB`;
  switch (s.step) {
    case 'synthetic build + write':
      return (
        `${s.entries} entries, ${s.segments} segments (${mib(s.segmentBytes)} of objects for ${mib(s.recordBytes)} ` +
        `of records), ${s.packsNamed} packs named, root ${s.rootBytes} B, builder held ≤ ${mib(s.peakBuilderRetained)}`
      );
    case 'synthetic read + verify':
      return `${s.entries} entries in ${s.segments} segments read, checked and iterated`;
    case 'image backup':
      return (
        `${s.chunks} chunks, ${s.holes} holes; ${s.packs} packs, ${s.indexObjects} index objects, ` +
        `${s.manifestSegments} segments, ${mib(s.bytesUploaded)} uploaded`
      );
    case 'image restore':
      return `${s.chunks} chunks, ${mib(s.bytesDownloaded)} downloaded; ${s.compared}`;
    case 'image verify':
      return `${s.chunksChecked} chunks, ${s.segmentsChecked} segments checked`;
    default:
      return '';
  }
}

async function main() {
  const step = option('--step');
  if (step !== undefined) {
    const dir = option('--dir');
    const steps = {
      'synth-write': () => synthWrite(dir, Number(option('--entries'))),
      'synth-read': () => synthRead(dir, JSON.parse(option('--ref'))),
      'image-backup': () => imageBackup(dir, option('--image')),
      'image-restore': () => imageRestore(dir, JSON.parse(option('--ref')), option('--target')),
      'image-verify': () => imageVerify(dir, JSON.parse(option('--ref'))),
    };
    const result = await steps[step]();
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const work = join(process.env.STOWAGE_BENCH_DIR ?? '/var/tmp/stowage-bench', 'manifest-stream');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const entries = Number(option('--entries', String(16 * 1024 * 1024)));
  const imageGib = Number(option('--image-gib', '64'));
  const results = {
    measuredAt: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / GiB)} GiB, Node ${process.version}`,
    steps: [],
  };
  try {
    if (!flag('--image-only')) {
      console.error(`synthetic manifest: ${entries} entries`);
      const written = runStep('synth-write', '--dir', work, '--entries', String(entries));
      const read = runStep('synth-read', '--dir', work, '--ref', JSON.stringify(written.ref));
      if (
        read.digest !== written.digest ||
        read.entries !== written.entries ||
        read.segments !== written.segments ||
        read.volumeSize !== written.volumeSize
      )
        throw new Error('the manifest read back differs from the one written');
      results.steps.push(written, read);
    }
    if (!flag('--synthetic-only')) {
      const image = join(work, 'sparse.img');
      console.error(`sparse image: ${imageGib} GiB, 1 MiB of data every 64 MiB`);
      writeSparseImage(image, imageGib);
      const backup = runStep('image-backup', '--dir', work, '--image', image);
      const out = join(work, 'restored.img');
      const restore = runStep(
        'image-restore',
        '--dir',
        work,
        '--ref',
        JSON.stringify(backup.ref),
        '--target',
        out,
      );
      const compared = compareSparse(image, out);
      console.error(`  restored image ${compared}`);
      rmSync(out, { force: true });
      const verify = runStep('image-verify', '--dir', work, '--ref', JSON.stringify(backup.ref));
      results.steps.push(backup, { ...restore, compared }, verify);
    }
  } finally {
    if (!flag('--keep')) rmSync(work, { recursive: true, force: true });
  }
  const outFile = resolve(option('--out', join(root, 'bench/results/manifest-stream.json')));
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  for (const s of results.steps) {
    console.log(
      `${s.step.padEnd(26)} ${s.seconds.toFixed(1).padStart(8)} s  ${(s.peakRss / MiB).toFixed(0).padStart(5)} MiB peak RSS  ${detail(s)}`,
    );
  }
  console.log(`wrote ${outFile}`);
}

await main();
