#!/usr/bin/env node
// `node bench/gc.mjs`: one garbage-collection run of the manager (issue 10 point 3) on a target holding at
// least 1,000,000 chunks, against dist/ (build first). Part of `npm run bench` (skip it with --no-gc).
//
// The repository is synthetic, built without running a backup, through the format's encoders (each step in
// a process of its own, so the builder's memory is not the GC's):
//   build  a target created by the manager (createTarget: key file, config, the row in its database), then
//          VOLUMES volumes with KEPT committed backups each, PRUNED older ones whose roots were deleted (as
//          retention deletes them) and one backup that never committed (its packs, index objects and segments
//          stored, no root). Every chunk is a real chunk object (sealChunk of a distinct 16-byte plaintext,
//          72 bytes), eight to a pack; the first backup of a volume stores every chunk, each later one stores
//          again the volume's "hot" last 3 % (new chunks, new packs) and takes every other location from the
//          backup before it, as the reference writer does, so the first segment of a volume's manifests is
//          one shared object and the hot part's packs of a pruned or uncommitted backup are garbage. Index
//          objects as the reference writer cuts them (one per 64 packs and one for the rest, per backup),
//          encoded with encodePackIndex; segments with ManifestBuilder (65,536 entries each) and sealChunk;
//          roots with encodeManifest. On a filesystem target the packs are written as files in the store's
//          layout (no fsync per pack: the GC never reads a pack); everything else goes through the store.
//   gc     a fresh process opens the database and the target, and runs one GC (startGc, grace 0, not a dry
//          run; gcRunsSettled; getGcRun): wall time, the run row's counts, each phase's time (from the
//          manager's "GC phase" log lines), the store calls by method (a counting wrapper around the base
//          store's methods), and the process's peak RSS — getrusage's maxRSS for the whole process (database
//          open included) and RSS sampled every 50 ms while the GC runs, with the heap's parts at that peak.
//          Then a check: every pack and segment a committed manifest names is still there, and nothing else.
// On S3 (Ceph RGW, as bench/s3.mjs starts it) a counting proxy in this process counts the HTTP requests by
// method and operation (bench/s3-proxy.mjs), at a smaller size by default.
//
// Writes bench/results/gc.json (machine, date, load, every figure) and prints a table.
//
//   node bench/gc.mjs [--chunks N] [--db pglite|postgres] [--store file|s3]
//   --chunks N        live chunks (chunk locations committed manifests name); default 1,000,000 on a
//                     filesystem target, 100,000 on S3
//   --store KIND      file or s3; default both: file at --chunks (1,000,000), then s3 at --s3-chunks
//   --s3-chunks N     the S3 run's size when both run (default 100,000)
//   --db KIND         pglite (embedded, default) or postgres (a throwaway PostgreSQL 15 server,
//                     bench/manager-postgres.mjs), or both: --db pglite,postgres runs each store on each
//   --volumes N       volumes (default 10)
//   --quick           a smoke run: 20,000 chunks on file, 10,000 on S3, results in /tmp/stowage-gc-quick.json
//   --keep            leave the work directory (default: removed)
//   --out FILE        default bench/results/gc.json
//   STOWAGE_BENCH_GC_NODE_OPTIONS   NODE_OPTIONS for the GC step only (e.g. --max-semi-space-size=1: what V8's
//                     heap sizing adds to the peak)
//   --help            this text
//
// Work directory: $STOWAGE_BENCH_DIR/gc (default /var/tmp/stowage-bench/gc); the 1,000,000-chunk filesystem
// target takes ~0.6 GB (135,000 small files).
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkArguments } from './args.mjs';

// The AWS SDK's Node-version notice (Ceph's helpers load it here too) would only clutter the log.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(process.env.STOWAGE_BENCH_DIR ?? '/var/tmp/stowage-bench', 'gc');
const argv = process.argv.slice(2);
checkArguments(argv, {
  name: 'bench/gc',
  url: import.meta.url,
  flags: ['--quick', '--keep'],
  // --step and --dir are the child steps' own.
  options: ['--chunks', '--store', '--s3-chunks', '--db', '--volumes', '--out', '--step', '--dir'],
});
const option = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
/** Committed backups kept per volume, pruned ones (roots deleted), and the never-committed one. */
const KEPT = 7;
const PRUNED = 3;
/** Share of a volume's chunks each later backup stores again (the "hot" end of the volume). */
const CHURN = 0.03;
const CHUNKS_PER_PACK = 8;
/** The reference writer's index objects: one after every 64 packs (docs/format.md §5.3). */
const PACKS_PER_INDEX = 64;
const PLAINTEXT = 16;
const PUT_CONCURRENCY = 16;
const KDF = { N: 1024, r: 8, p: 1 };

const dist = (path) => import(pathToFileURL(join(root, 'apps/manager/dist', path)).href);
const pkg = (name) => import(pathToFileURL(join(root, `packages/${name}/dist/index.js`)).href);
const maxRss = () => process.resourceUsage().maxRSS * 1024;
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const round = (x, digits = 2) => Number(x.toFixed(digits));

// ------------------------------------------------------------------------------------------- child steps

async function openContext(setup) {
  const { openDatabase } = await dist('db/database.js');
  const { createSecretBox } = await dist('secrets/envelope.js');
  const database = await openDatabase(setup.db.url ? { url: setup.db.url } : { dataDir: setup.db.dataDir });
  const events = [];
  const logged = (level) => (message, fields) => {
    events.push({ at: Date.now(), level, message, fields });
    if (level === 'error' || level === 'warn') console.error(`bench/gc: ${level}: ${message}`, fields ?? '');
    if (message === 'GC phase') console.error(`bench/gc: GC phase ${fields.phase}`);
  };
  const ctx = {
    db: database.db,
    secrets: createSecretBox(Buffer.from(setup.masterKey, 'hex')),
    now: () => new Date(),
    agentFor: () => ({}),
    logger: { debug: () => {}, info: logged('info'), warn: logged('warn'), error: logged('error') },
    jobChanged: () => {},
    kdf: KDF,
  };
  return { database, ctx, events };
}

/** Builds the target: see the header. Prints the dataset's figures as one JSON line. */
async function build(dir) {
  const t0 = process.hrtime.bigint();
  const setup = JSON.parse(readFileSync(join(dir, 'setup.json'), 'utf8'));
  const format = await pkg('format');
  const { migrate } = await dist('db/migrate.js');
  const { createTarget, openTargetRepository } = await dist('targets/targets.js');
  const { database, ctx } = await openContext(setup);
  await migrate(database);
  const location =
    setup.store === 'file'
      ? { kind: 'filesystem', path: join(dir, 'target') }
      : {
          kind: 's3',
          endpoint: setup.s3.endpoint,
          region: 'us-east-1',
          bucket: setup.s3.bucket,
          prefix: '',
          pathStyle: true,
        };
  const { row } = await createTarget(ctx, {
    name: 'gc-bench',
    location,
    credentials:
      setup.store === 's3'
        ? { access_key_id: setup.s3.accessKeyId, secret_access_key: setup.s3.secretAccessKey }
        : undefined,
    passphrase: 'bench passphrase',
    avgChunkSize: undefined,
    settings: { gc_grace_seconds: 0 },
  });
  const { repository, close } = await openTargetRepository(ctx, row);
  const { store, keys } = repository;

  const volumes = setup.volumes;
  const perVolume = Math.round(setup.chunks / volumes);
  // live = (C − H) + KEPT·H with H = CHURN·C: the committed manifests name `perVolume` distinct chunks.
  const C = Math.round(perVolume / (1 + (KEPT - 1) * CHURN));
  const H = Math.round(C * CHURN);
  const stats = {
    volumes,
    chunksPerVolume: C,
    hotChunks: H,
    chunksStored: 0,
    packs: 0,
    packBytes: 0,
    indexObjects: 0,
    indexBytes: 0,
    segments: 0,
    segmentsStored: 0,
    segmentBytes: 0,
    manifests: 0,
    manifestsPruned: 0,
    backupsUncommitted: 0,
    garbage: { packs: 0, chunks: 0, indexObjects: 0, segments: 0 },
  };

  const pending = new Set();
  /** A put, at most PUT_CONCURRENCY at once (the writer does not wait for each). */
  const put = async (key, body) => {
    while (pending.size >= PUT_CONCURRENCY) await Promise.race(pending);
    const p = store.put(key, body, { durability: 'deferred' }).finally(() => pending.delete(p));
    pending.add(p);
  };
  const drain = async () => {
    await Promise.all(pending);
    await store.flush?.();
  };
  const packDirs = new Set();
  const writePack = async (id, body) => {
    const key = format.packObjectKey(id);
    if (setup.store === 'file') {
      // The store's layout, without a put's fsync and temporary name: the GC never reads a pack.
      const path = join(dir, 'target', key);
      const parent = dirname(path);
      if (!packDirs.has(parent)) {
        mkdirSync(parent, { recursive: true });
        packDirs.add(parent);
      }
      writeFileSync(path, body);
    } else await put(key, body);
  };

  const plaintext = new Uint8Array(PLAINTEXT);
  const view = new DataView(plaintext.buffer);
  for (let v = 0; v < volumes; v++) {
    const volumeId = repository.volumeIdFor(`gc-bench-${v}`);
    // Per position: chunk id (32) ‖ location (pack 32, offset 4, length 4), the latest backup's.
    const table = Buffer.alloc(C * 72);
    const backups = PRUNED + KEPT + 1;
    for (let b = 0; b < backups; b++) {
      const backupId = randomUUID();
      const pruned = b < PRUNED;
      const uncommitted = b === backups - 1;
      const from = b === 0 ? 0 : C - H;
      // The new chunks, in volume order, eight to a pack; an index object per 64 packs and one at the end.
      let packId;
      let packFirst = 0;
      let packParts = [];
      let packLength = 0;
      let packsInIndex = 0;
      let indexEntries = [];
      const sealPack = async () => {
        if (packParts.length === 0) return;
        const body = Buffer.concat(packParts);
        await writePack(packId, body);
        stats.packs++;
        stats.packBytes += body.length;
        // Garbage once the GC runs: a pruned or uncommitted backup's pack of hot chunks only.
        if ((pruned || uncommitted) && packFirst >= C - H) stats.garbage.packs++;
        packParts = [];
        packLength = 0;
        if (++packsInIndex === PACKS_PER_INDEX) await writeIndex();
      };
      const writeIndex = async () => {
        if (indexEntries.length === 0) return;
        const key = format.packIndexObjectKey(volumeId, backupId);
        const object = format.encodePackIndex(keys, key, format.PackIndexEntries.from(indexEntries));
        await put(key, object);
        stats.indexObjects++;
        stats.indexBytes += object.length;
        if (pruned || uncommitted) stats.garbage.indexObjects++;
        indexEntries = [];
        packsInIndex = 0;
      };
      for (let p = from; p < C; p++) {
        if (packParts.length === 0) {
          packId = format.newPackId();
          packFirst = p;
        }
        view.setUint32(0, v);
        view.setUint32(4, b);
        view.setUint32(8, p);
        const sealed = format.sealChunk(keys, plaintext);
        const location = { pack: packId, offset: packLength, length: sealed.object.length };
        packParts.push(sealed.object);
        packLength += sealed.object.length;
        table.set(sealed.id, p * 72);
        table.set(packId, p * 72 + 32);
        table.writeUInt32BE(location.offset, p * 72 + 64);
        table.writeUInt32BE(location.length, p * 72 + 68);
        indexEntries.push({ id: sealed.id, location });
        stats.chunksStored++;
        if (packParts.length === CHUNKS_PER_PACK) await sealPack();
      }
      await sealPack();
      await writeIndex();
      // The manifest's segments (HEAD-then-PUT, as a writer stores them), then its root unless it never
      // committed; a pruned backup's root is deleted again, as retention deletes it.
      const builder = new format.ManifestBuilder(keys);
      const storeSegment = async (s) => {
        stats.segments++;
        const key = format.chunkObjectKey(s.id);
        if (await store.head(key)) return;
        const sealed = format.sealChunk(keys, s.records, { id: s.id });
        await put(key, sealed.object);
        stats.segmentsStored++;
        stats.segmentBytes += sealed.object.length;
        // Segments before the hot end are shared by all the volume's backups; the rest are the backup's own.
        if ((pruned || uncommitted) && (s.index + 1) * builder.segmentEntries > C - H)
          stats.garbage.segments++;
      };
      for (let p = 0; p < C; p++) {
        const at = p * 72;
        builder.addChunk(table.subarray(at, at + 32), PLAINTEXT, {
          pack: table.subarray(at + 32, at + 64),
          offset: table.readUInt32BE(at + 64),
          length: table.readUInt32BE(at + 68),
        });
        const s = builder.takeSegment();
        if (s) await storeSegment(s);
      }
      const last = builder.finish();
      if (last) await storeSegment(last);
      await drain();
      if (uncommitted) {
        stats.backupsUncommitted++;
        stats.garbage.chunks += H;
        continue;
      }
      const manifest = builder.build({
        backupId,
        volumeId,
        volumeName: `gc-bench-${v}`,
        volumeSize: builder.totalLength,
        createdAt: new Date(Date.now() - (backups - b) * 86_400_000),
        chunker: repository.config.chunker,
      });
      const key = format.manifestObjectKey(volumeId, backupId);
      await store.put(key, repository.encodeManifest(manifest), { ifNoneMatch: true });
      if (pruned) {
        await store.delete(key);
        stats.manifestsPruned++;
        stats.garbage.chunks += H;
      } else stats.manifests++;
    }
    process.stderr.write(`bench/gc: volume ${v + 1}/${volumes} built (${seconds(t0).toFixed(0)} s)\n`);
  }
  close();
  await database.close();
  stats.chunksLive = stats.chunksStored - stats.garbage.chunks;
  stats.seconds = round(seconds(t0), 1);
  stats.peakRss = maxRss();
  return { targetId: row.id, stats };
}

/** Counts every call of the base store's methods (the filesystem's or S3's), by method. */
function countStoreCalls(prototype, counts) {
  for (const method of ['head', 'get', 'put', 'delete', 'deleteMany']) {
    const original = prototype[method];
    prototype[method] = function (...a) {
      counts[method] = (counts[method] ?? 0) + 1;
      if (method === 'deleteMany') counts.keysDeleted = (counts.keysDeleted ?? 0) + a[0].length;
      return original.apply(this, a);
    };
  }
  const list = prototype.list;
  prototype.list = async function* (...a) {
    counts.list = (counts.list ?? 0) + 1;
    for await (const info of list.apply(this, a)) {
      counts.listed = (counts.listed ?? 0) + 1;
      yield info;
    }
  };
}

/**
 * A memoryUsage() sample in MiB: RSS, the JS heap, the buffers JS holds (arrayBuffers), and the rest of
 * `external` — WebAssembly memories (PGlite's Postgres, the hashing kernels) and other native allocations.
 */
function parts(m) {
  const mib = (x) => round(x / MiB, 1);
  return {
    rss: m.rss,
    rssMiB: mib(m.rss),
    heapUsedMiB: mib(m.heapUsed),
    heapTotalMiB: mib(m.heapTotal),
    arrayBuffersMiB: mib(m.arrayBuffers),
    externalOtherMiB: mib(m.external - m.arrayBuffers),
  };
}

/** One GC run (see the header). Prints its figures as one JSON line. */
async function gc(dir) {
  const setup = JSON.parse(readFileSync(join(dir, 'setup.json'), 'utf8'));
  const { targetId } = JSON.parse(readFileSync(join(dir, 'built.json'), 'utf8'));
  const objectStore = await pkg('object-store');
  const calls = {};
  countStoreCalls(
    (setup.store === 'file' ? objectStore.FsObjectStore : objectStore.S3ObjectStore).prototype,
    calls,
  );
  const { startGc, gcRunsSettled, getGcRun, gcRunJson } = await dist('services/gc.js');
  const { database, ctx, events } = await openContext(setup);
  const before = parts(process.memoryUsage());
  const beforeRss = before.rss;
  const beforeMaxRss = maxRss();
  let sampled = { rss: 0 };
  /** Per phase: the highest RSS sampled, and the memory's parts at that moment. */
  const byPhase = {};
  let phase = 'start';
  const sample = () => {
    const m = process.memoryUsage();
    const last = events.findLast((e) => e.message === 'GC phase');
    if (last) phase = last.fields.phase;
    if (m.rss > sampled.rss) sampled = { ...m, at: Date.now(), phase };
    if (m.rss > (byPhase[phase]?.rss ?? 0)) byPhase[phase] = parts(m);
  };
  const timer = setInterval(sample, 50);
  const t0 = process.hrtime.bigint();
  const started = Date.now();
  const row = await startGc(ctx, targetId, { dryRun: false, trigger: 'api', options: { pollMs: 100 } });
  await gcRunsSettled(ctx, row.id);
  const wall = seconds(t0);
  sample();
  clearInterval(timer);
  const run = gcRunJson(await getGcRun(ctx, targetId, row.id));
  const afterMaxRss = maxRss();
  // Phases from the manager's log lines: each "GC phase" starts one, the run's end ends the last.
  const marks = events.filter((e) => e.message === 'GC phase' && e.fields?.gc_run_id === row.id);
  const ended = events.find((e) => e.message === 'GC run finished' || e.message === 'GC run failed');
  const phases = {};
  for (let i = 0; i < marks.length; i++) {
    const end = marks[i + 1]?.at ?? ended?.at ?? Date.now();
    phases[marks[i].fields.phase] = round((end - marks[i].at) / 1000, 2);
  }
  phases.start = round(((marks[0]?.at ?? started) - started) / 1000, 2);
  const storeCalls = { ...calls };
  // The parent takes the S3 proxy's counts now, before the check's own requests (see `step`).
  process.stdout.write('measured\n');
  await new Promise((resolvePromise) => process.stdin.once('data', resolvePromise));
  process.stdin.pause();
  const check = await checkAfter(ctx, targetId);
  await database.close();
  return {
    run,
    wall: round(wall, 2),
    phases,
    storeCalls,
    rss: {
      beforeGc: beforeRss,
      beforeGcParts: before,
      maxBeforeGc: beforeMaxRss,
      sampledPeak: sampled.rss,
      atPeak: { phase: sampled.phase, ...parts(sampled) },
      byPhase,
      processPeak: afterMaxRss,
    },
    check,
  };
}

/**
 * After the run: every pack and segment a committed manifest names must still be listed, and every listed
 * pack and segment must be named by one (grace 0, nothing else running); index objects only of committed
 * backups remain. Held in Sets: this check is the benchmark's, not the GC's, and runs after its figures.
 */
async function checkAfter(ctx, targetId) {
  const { getTarget } = await dist('db/targets.js');
  const { openTargetRepository } = await dist('targets/targets.js');
  const { repository, close } = await openTargetRepository(ctx, await getTarget(ctx.db, targetId));
  try {
    const namedPacks = new Set();
    const namedSegments = new Set();
    const committed = new Set();
    for await (const ref of repository.backupRefs()) {
      committed.add(ref.backupId);
      const manifest = await repository.loadManifest(ref);
      for await (const segment of repository.readManifestSegments(manifest)) {
        if (segment.damaged) throw segment.error;
        namedSegments.add(Buffer.from(segment.id).toString('hex'));
        const { entries } = segment;
        for (let e = 0; e < entries.count; e++) {
          const pack = entries.locationAt(e).pack;
          namedPacks.add(Buffer.from(pack.buffer, pack.byteOffset, pack.length).toString('hex'));
        }
      }
    }
    let packs = 0;
    let strayPacks = 0;
    for await (const info of repository.store.list('packs/')) {
      packs++;
      if (!namedPacks.delete(info.key.split('/').at(-1))) strayPacks++;
    }
    let segments = 0;
    let straySegments = 0;
    for await (const info of repository.store.list('chunks/')) {
      segments++;
      if (!namedSegments.delete(info.key.split('/').at(-1))) straySegments++;
    }
    let indexObjects = 0;
    let strayIndex = 0;
    for await (const info of repository.store.list('index/')) {
      indexObjects++;
      if (!committed.has(info.key.split('/')[2])) strayIndex++;
    }
    const result = {
      packs,
      segments,
      indexObjects,
      missingPacks: namedPacks.size,
      missingSegments: namedSegments.size,
      strayPacks,
      straySegments,
      strayIndex,
    };
    result.ok =
      result.missingPacks === 0 &&
      result.missingSegments === 0 &&
      strayPacks + straySegments + strayIndex === 0;
    return result;
  } finally {
    close();
  }
}

// ------------------------------------------------------------------------------------------------ parent

/**
 * Runs one step in a child process; resolves to its last stdout line, parsed. A `measured` line from the GC
 * step calls `onMeasured` (the S3 counts are taken there), then lets the step go on to its check.
 */
function step(name, dir, onMeasured = () => {}) {
  return new Promise((resolvePromise, reject) => {
    // STOWAGE_BENCH_GC_NODE_OPTIONS: V8 flags for the GC step alone (what its heap's sizing costs in RSS).
    const gcNodeOptions = name === 'gc' ? process.env.STOWAGE_BENCH_GC_NODE_OPTIONS : undefined;
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--step', name, '--dir', dir], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, ...(gcNodeOptions ? { NODE_OPTIONS: gcNodeOptions } : {}) },
    });
    let out = '';
    let measured = false;
    child.stdout.on('data', (d) => {
      out += d;
      if (!measured && out.includes('measured\n')) {
        measured = true;
        onMeasured();
        child.stdin.end('go\n');
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`bench/gc: step ${name} failed (${code})`));
      else resolvePromise(JSON.parse(out.trim().split('\n').at(-1)));
    });
  });
}

async function runOne(store, chunks, dbKind) {
  const dir = join(work, `${store}-${chunks}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const setup = {
    store,
    chunks,
    volumes: Number(option('--volumes') ?? 10),
    masterKey: randomBytes(32).toString('hex'),
    db: { kind: dbKind },
  };
  const cleanups = [];
  let proxy;
  try {
    if (dbKind === 'postgres') {
      const { startPostgres } = await import('./manager-postgres.mjs');
      const server = await startPostgres({ autovacuum: 'on' });
      cleanups.push(() => server.stop());
      setup.db.url = await server.createDatabase('stowage_gc_bench');
      setup.db.version = server.version;
    } else setup.db.dataDir = join(dir, 'pglite');
    if (store === 's3') {
      const testing = await import(join(root, 'packages/object-store/dist/testing/index.js'));
      const missing = await testing.cephUnavailableReason();
      if (missing !== undefined) throw new Error(`bench/gc: S3 needs Ceph RGW: ${missing}`);
      const ceph = await testing.startCeph({ buckets: ['gc-bench'] });
      cleanups.push(() => ceph.stop());
      const { startCountingProxy } = await import('./s3-proxy.mjs');
      proxy = await startCountingProxy(ceph.endpoint);
      cleanups.push(() => proxy.close());
      setup.s3 = {
        endpoint: proxy.endpoint,
        bucket: 'gc-bench',
        accessKeyId: ceph.accessKeyId,
        secretAccessKey: ceph.secretAccessKey,
      };
    }
    writeFileSync(join(dir, 'setup.json'), JSON.stringify(setup));
    console.log(`bench/gc: building ${chunks.toLocaleString('en')} chunks on ${store} (${dbKind})…`);
    const built = await step('build', dir);
    writeFileSync(join(dir, 'built.json'), JSON.stringify(built));
    proxy?.take();
    const load = loadavg();
    console.log(`bench/gc: the GC run (load ${load.map((l) => l.toFixed(1)).join(' ')})…`);
    let requests;
    const measured = await step('gc', dir, () => {
      requests = proxy?.take();
    });
    const { password: _, ...db } = setup.db;
    return {
      store,
      db: { kind: dbKind, version: db.version },
      dataset: built.stats,
      loadBefore: load.map((l) => round(l, 1)),
      loadAfter: loadavg().map((l) => round(l, 1)),
      ...measured,
      ...(requests === undefined
        ? {}
        : { s3: { requests: requests.requests, byMethod: requests.byMethod, byOp: requests.byOp } }),
    };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    if (!argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  }
}

function machine() {
  let generation = '';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const family = /^cpu family\s*:\s*(\d+)/m.exec(info)?.[1];
    const model = /^model\s*:\s*(\d+)/m.exec(info)?.[1];
    if (family !== undefined) generation = ` (family ${family} model ${model})`;
  } catch {}
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}${generation}, ${(totalmem() / GiB).toFixed(0)} GiB, Node ${process.version}`;
}

function render(results) {
  const lines = [`Measured ${results.date.slice(0, 16).replace('T', ' ')} UTC on ${results.machine}.`, ''];
  for (const r of results.runs) {
    const d = r.dataset;
    const m = (x) => `${(x / MiB).toFixed(0)} MiB`;
    lines.push(
      `${r.store}, ${r.db.kind}: ${d.chunksLive.toLocaleString('en')} live chunks of ${d.chunksStored.toLocaleString('en')}, ` +
        `${d.packs.toLocaleString('en')} packs (${d.garbage.packs} garbage), ${d.manifests} manifests ` +
        `(+${d.manifestsPruned} pruned, ${d.backupsUncommitted} uncommitted), ${d.segmentsStored} segments, ` +
        `${d.indexObjects} index objects; built in ${d.seconds} s`,
      `  GC ${r.run.state} in ${r.wall} s (${Object.entries(r.phases)
        .map(([k, v]) => `${k} ${v} s`)
        .join(', ')}); deleted ${r.run.packs_deleted} packs, ${r.run.segments_deleted} segments, ` +
        `${r.run.index_objects_deleted} index objects`,
      `  store calls ${JSON.stringify(r.storeCalls)}${r.s3 ? `; S3 requests ${JSON.stringify(r.s3.byMethod)}` : ''}`,
      `  RSS before ${m(r.rss.beforeGc)}, sampled peak during the GC ${m(r.rss.sampledPeak)}, process peak ${m(r.rss.processPeak)}; ` +
        `check ${r.check.ok ? 'ok' : `FAILED ${JSON.stringify(r.check)}`}`,
      '',
    );
  }
  return lines.join('\n');
}

async function main() {
  const name = option('--step');
  if (name !== undefined) {
    const dir = option('--dir');
    const result = name === 'build' ? await build(dir) : await gc(dir);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  for (const needed of ['apps/manager/dist/services/gc.js', 'packages/format/dist/index.js']) {
    if (!existsSync(join(root, needed))) {
      console.error(`bench/gc: ${needed} is missing: build first (npm run build)`);
      process.exit(2);
    }
  }
  const dbKinds = (option('--db') ?? 'pglite').split(',');
  if (dbKinds.some((k) => !['pglite', 'postgres'].includes(k))) {
    throw new Error('--db: pglite, postgres or both (pglite,postgres)');
  }
  const store = option('--store');
  if (store !== undefined && !['file', 's3'].includes(store)) throw new Error('--store: file or s3');
  const given = option('--chunks');
  const plan = [];
  if (store !== 's3') plan.push(['file', Number(given ?? (quick ? 20_000 : 1_000_000))]);
  if (store !== 'file') {
    const s3Chunks = store === 's3' ? given : option('--s3-chunks');
    plan.push(['s3', Number(s3Chunks ?? (quick ? 10_000 : 100_000))]);
  }
  const results = { machine: machine(), date: new Date().toISOString(), node: process.version, runs: [] };
  for (const [kind, chunks] of plan) {
    for (const dbKind of dbKinds) results.runs.push(await runOne(kind, chunks, dbKind));
  }
  const outFile = resolve(
    option('--out') ?? (quick ? '/tmp/stowage-gc-quick.json' : join(root, 'bench/results/gc.json')),
  );
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  console.log(render(results));
  console.log(`bench/gc: wrote ${outFile}`);
  if (results.runs.some((r) => r.run.state !== 'succeeded' || !r.check.ok)) process.exitCode = 1;
}

await main();
