#!/usr/bin/env node
// The S3 runs of the bench: what a backup costs in S3 requests, stored bytes, objects and memory, for Stowage
// (at several average chunk sizes) and restic (Debian's package), each against its own throwaway Ceph RGW.
//
//   node bench/s3.mjs                      all configurations: restic, Stowage avg 1 MiB, 2 MiB, 4 MiB
//   node bench/s3.mjs --avg 1M             only the listed Stowage average sizes (comma-separated)
//   node bench/s3.mjs --no-restic          without restic (the ratios to restic are then left empty)
//   node bench/s3.mjs --no-doc             do not rewrite the S3 section of docs/benchmarks.md
//   node bench/s3.mjs --repeat 3           each configuration in 3 fresh repositories: cut points depend on the
//                                          repository's key (Stowage) or random polynomial (restic), so counts
//                                          and bytes vary by a few per cent from one repository to the next
//   node bench/s3.mjs --render             only re-render bench/results/s3-latest.json (and the doc section)
//   node bench/s3.mjs --tree DIR           run the agent built in DIR (bench/export-tree.sh COMMIT DIR makes
//                                          one), to measure a commit while this working tree is being edited
//   npm run bench -- --s3                  the local runs, then these
//   npm run bench -- --s3-only             only these (STOWAGE_BENCH_S3=1 is the same as --s3)
//
// Needs the bench data (built by `node bench/run.mjs --prepare`, done here when missing), a built tree
// (`npm run build`), restic, and Ceph's radosgw/ceph-mon/ceph-osd (apt-get install radosgw ceph-mon ceph-osd).
//
// Each configuration gets a fresh Ceph (monitor, in-memory OSD, RADOS Gateway: the harness the object-store
// tests use) and one bucket; both tools talk to it through bench/s3-proxy.mjs, which counts every request on
// the wire by method and operation. Steps, into the same bucket: first backup of the OS image; the changed
// image; the changed image again; the OS image again as a second volume (Stowage: another --volume, so no
// manifest to trust and every chunk is looked up; restic: another --stdin-filename). After each step the
// bucket is listed directly (not through the proxy) for its objects and bytes. Peak RSS is GNU time's, of
// the whole command, as in the local runs. Request, object and byte counts are deterministic for a given
// commit and data; times are not (shared machine), so the tables leave speed to the local runs.
//
// Writes bench/results/s3-latest.json and the block between <!-- bench-s3:begin --> and <!-- bench-s3:end -->
// in docs/benchmarks.md.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCountingProxy } from './s3-proxy.mjs';

// The AWS SDK's notice that its 2027 releases need Node 22, once per process, would only clutter the output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = process.env.STOWAGE_BENCH_DIR ?? '/var/tmp/stowage-bench';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const KiB = 1024;
const passphrase = 'bench passphrase';
const argv = process.argv.slice(2);
const option = (name) => {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
};
const averages = (option('--avg') ?? '1M,2M,4M').split(',').map(parseSize);
const withRestic = !argv.includes('--no-restic');
const writeDoc = !argv.includes('--no-doc');
const repeat = Number(option('--repeat') ?? 1);
/** The built tree whose agent and Ceph harness run: this checkout, or an export of one commit. */
const tree = resolve(option('--tree') ?? root);
const agent = join(tree, 'apps/agent/bin/agent.cjs');
/** AWS S3 Standard request prices (us-east-1, per 1,000), to put request counts into money. */
const PRICE = { PUT: 0.005, POST: 0.005, LIST: 0.005, GET: 0.0004, HEAD: 0.0004, DELETE: 0 };

function parseSize(text) {
  const m = /^(\d+)([KMG]?)(i?B)?$/i.exec(text.trim());
  if (!m) throw new Error(`bad size ${text}`);
  return Number(m[1]) * { '': 1, K: KiB, M: MiB, G: GiB }[m[2].toUpperCase()];
}

/** Runs a command under GNU time (stdin from a file when given); wall seconds, peak RSS and output. */
function timed(cmd, args, { env, stdinFile } = {}) {
  const timeFile = join(work, `time-s3-${process.pid}.out`);
  const stdin = stdinFile === undefined ? 'ignore' : openSync(stdinFile, 'r');
  return new Promise((resolvePromise, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, cmd, ...args], {
      env,
      stdio: [stdin, 'pipe', 'pipe'],
    });
    if (typeof stdin === 'number') closeSync(stdin);
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString();
      if (code !== 0) {
        reject(new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${Buffer.concat(err)}`));
        return;
      }
      const [seconds, rssKiB] = readFileSync(timeFile, 'utf8')
        .trim()
        .split('\n')
        .pop()
        .split(' ')
        .map(Number);
      resolvePromise({ seconds, rss: rssKiB * KiB, stdout });
    });
  });
}

/**
 * Tool-independent sizes of the data: bytes of base.img in non-zero 4 KiB blocks (what a first backup has to
 * store), and bytes of changed.img in non-zero 4 KiB blocks that differ from base.img's at the same offset
 * (what the day of changes wrote). Cached beside the images.
 */
function dataSizes() {
  const base = join(work, 'base.img');
  const changed = join(work, 'changed.img');
  const stamp = `${statSync(base).size}:${statSync(base).mtimeMs}:${statSync(changed).mtimeMs}`;
  const cache = join(work, 's3-data-sizes.json');
  if (existsSync(cache)) {
    const cached = JSON.parse(readFileSync(cache, 'utf8'));
    if (cached.stamp === stamp) return cached;
  }
  console.log('bench s3: measuring the images (non-zero and changed 4 KiB blocks)…');
  const a = openSync(base, 'r');
  const b = openSync(changed, 'r');
  const step = 4 * MiB;
  const bufA = Buffer.alloc(step);
  const bufB = Buffer.alloc(step);
  const zero = Buffer.alloc(4 * KiB);
  let baseData = 0;
  let changedData = 0;
  const size = statSync(base).size;
  for (let at = 0; at < size; at += step) {
    const n = readSync(a, bufA, 0, step, at);
    readSync(b, bufB, 0, step, at);
    for (let o = 0; o < n; o += 4 * KiB) {
      const blockA = bufA.subarray(o, o + 4 * KiB);
      const blockB = bufB.subarray(o, o + 4 * KiB);
      if (!blockA.equals(zero)) baseData += blockA.length;
      if (!blockB.equals(zero) && !blockB.equals(blockA)) changedData += blockB.length;
    }
  }
  closeSync(a);
  closeSync(b);
  const sizes = { stamp, imageBytes: size, baseData, changedData };
  writeFileSync(cache, JSON.stringify(sizes));
  return sizes;
}

function stowage(avg) {
  const params = { min: avg / 4, avg, max: avg * 4 };
  return {
    name: `stowage-${avg / MiB}M`,
    label: `Stowage ${fmtSize(params.min)} / ${fmtSize(avg)} / ${fmtSize(params.max)}`,
    kind: 'stowage',
    params,
    url: (endpoint, bucket) => `s3://${bucket}?endpoint=${encodeURIComponent(endpoint)}&path_style=true`,
    init(url, env) {
      return timed(
        'node',
        [
          agent,
          'repo',
          'init',
          '--repo',
          url,
          '--min',
          `${params.min}`,
          '--avg',
          `${avg}`,
          '--max',
          `${params.max}`,
        ],
        { env },
      );
    },
    async backup(url, env, image, volume) {
      const r = await timed(
        'node',
        [agent, 'backup', image, '--repo', url, '--volume', volume, '--json', '--quiet'],
        { env },
      );
      const summary = JSON.parse(r.stdout.trim().split('\n').pop());
      return { ...r, summary };
    },
  };
}

const restic = {
  name: 'restic',
  label: 'restic 0.14 (compression auto, 16 MiB packs)',
  kind: 'restic',
  url: (endpoint, bucket) => `s3:${endpoint}/${bucket}`,
  init(url, env) {
    return timed('restic', ['-r', url, '-o', 's3.bucket-lookup=path', 'init', '--quiet'], { env });
  },
  backup(url, env, image, volume) {
    return timed(
      'restic',
      [
        '-r',
        url,
        '-o',
        's3.bucket-lookup=path',
        'backup',
        '--quiet',
        '--stdin',
        '--stdin-filename',
        `${volume}.img`,
      ],
      { env, stdinFile: image },
    );
  },
};

function fmtSize(bytes) {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  return `${bytes / KiB} KiB`;
}

/** Objects and bytes in the bucket, listed straight from the server (these requests are not counted). */
async function bucketContents(client, sdk, bucket) {
  let objects = 0;
  let bytes = 0;
  const byArea = {};
  let token;
  do {
    const page = await client.send(
      new sdk.ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token, MaxKeys: 1000 }),
    );
    for (const o of page.Contents ?? []) {
      objects++;
      bytes += o.Size;
      const area = o.Key.split('/')[0];
      byArea[area] ??= { objects: 0, bytes: 0 };
      byArea[area].objects++;
      byArea[area].bytes += o.Size;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return { objects, bytes, byArea };
}

/**
 * Checks on this server what the proposals rely on: a PUT with `If-None-Match: *` onto an existing key
 * answers 412 and leaves the object as it was. Also measures a listing's cost per key through the proxy.
 */
async function probeConditionalPut(client, sdk, bucket) {
  const Key = 'probe/conditional';
  await client.send(new sdk.PutObjectCommand({ Bucket: bucket, Key, Body: 'first', IfNoneMatch: '*' }));
  let status = 200;
  try {
    await client.send(new sdk.PutObjectCommand({ Bucket: bucket, Key, Body: 'second', IfNoneMatch: '*' }));
  } catch (error) {
    status = error.$metadata?.httpStatusCode ?? -1;
  }
  const body = await (
    await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key }))
  ).Body.transformToString();
  await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key }));
  return { secondPutStatus: status, kept: body === 'first' };
}

async function listThroughProxy(client, sdk, bucket, prefix) {
  let keys = 0;
  let token;
  do {
    const page = await client.send(
      new sdk.ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    keys += page.KeyCount ?? 0;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

async function runConfiguration(tool, images, sdk, startCeph) {
  const bucket = 'bench';
  const ceph = await startCeph({ buckets: [bucket] });
  const proxy = await startCountingProxy(ceph.endpoint);
  const credentials = { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey };
  const clientOptions = {
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  const direct = new sdk.S3Client({ ...clientOptions, endpoint: ceph.endpoint });
  const proxied = new sdk.S3Client({ ...clientOptions, endpoint: proxy.endpoint });
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: ceph.accessKeyId,
    AWS_SECRET_ACCESS_KEY: ceph.secretAccessKey,
    STOWAGE_PASSPHRASE: passphrase,
    RESTIC_PASSWORD: passphrase,
    // The AWS SDK's Node-version notice, once per process, would only clutter the log.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const url = tool.url(proxy.endpoint, bucket);
  const result = { tool: tool.name, label: tool.label, params: tool.params, steps: [] };
  try {
    await tool.init(url, env);
    result.init = proxy.take();
    let before = await bucketContents(direct, sdk, bucket);
    for (const [step, image, volume] of images) {
      console.log(`bench s3: ${tool.name} — ${step}…`);
      const r = await tool.backup(url, env, image, volume);
      const requests = proxy.take();
      const after = await bucketContents(direct, sdk, bucket);
      result.steps.push({
        step,
        image: image.split('/').pop(),
        seconds: r.seconds,
        rss: r.rss,
        volume,
        requests,
        bucket: after,
        addedBytes: after.bytes - before.bytes,
        addedObjects: after.objects - before.objects,
        summary: r.summary,
      });
      before = after;
    }
    // What a full listing of the repository's data objects would cost (the list-instead-of-HEAD option).
    const area = tool.kind === 'stowage' ? 'chunks/' : 'data/';
    const keys = await listThroughProxy(proxied, sdk, bucket, area);
    const listing = proxy.take();
    result.listing = { prefix: area, keys, requests: listing.byMethod.LIST, bytesDown: listing.bytesDown };
    if (tool.kind === 'stowage') result.conditionalPut = await probeConditionalPut(direct, sdk, bucket);
  } finally {
    direct.destroy();
    proxied.destroy();
    await proxy.close();
    await ceph.stop();
  }
  return result;
}

function gitState() {
  if (tree !== root) {
    const commit = readFileSync(join(tree, '.commit'), 'utf8').trim();
    return { head: commit.slice(0, 7), commit, dirty: [], tree };
  }
  const commit = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root }).stdout.toString().trim();
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).stdout.toString().trim();
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'packages', 'apps'], { cwd: root })
    .stdout.toString()
    .trim()
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('??'))
    .map((l) => l.slice(3));
  return { head, commit, dirty };
}

async function main() {
  if (argv.includes('--render')) {
    const saved = JSON.parse(readFileSync(join(root, 'bench/results/s3-latest.json'), 'utf8'));
    const text = render(saved);
    console.log(text);
    if (writeDoc) updateDoc(text);
    return;
  }
  if (!existsSync(join(tree, 'apps/agent/dist/cli/main.js'))) {
    console.error(`bench s3: build first (npm run build${tree === root ? '' : ` in ${tree}`})`);
    process.exit(2);
  }
  const testing = await import(join(tree, 'packages/object-store/dist/testing/index.js'));
  const missing = await testing.cephUnavailableReason();
  if (missing !== undefined) {
    console.error(`bench s3: ${missing}`);
    process.exit(2);
  }
  if (withRestic && spawnSync('sh', ['-c', 'command -v restic']).status !== 0) {
    console.error('bench s3: restic not found (apt-get install restic), or pass --no-restic');
    process.exit(2);
  }
  if (!existsSync(join(work, 'data-v1.done'))) {
    spawnSync('node', [join(root, 'bench/run.mjs'), '--prepare', '--no-big'], { stdio: 'inherit' });
  }
  const { FORMAT_VERSION } = await import(join(tree, 'packages/format/dist/index.js'));
  const sdk = await import('@aws-sdk/client-s3');
  const sizes = dataSizes();
  const base = join(work, 'base.img');
  const changed = join(work, 'changed.img');
  const images = [
    ['first backup', base, 'bench'],
    ['changed image', changed, 'bench'],
    ['unchanged again', changed, 'bench'],
    ['OS image as a 2nd volume', base, 'bench-2'],
  ];
  const tools = [...(withRestic ? [restic] : []), ...averages.map(stowage)];
  const results = {
    date: new Date().toISOString(),
    git: gitState(),
    formatVersion: FORMAT_VERSION,
    restic: withRestic ? spawnSync('restic', ['version']).stdout.toString().trim() : undefined,
    ceph: spawnSync('radosgw', ['--version']).stdout.toString().trim(),
    sizes,
    configurations: [],
  };
  results.repeat = repeat;
  for (let round = 1; round <= repeat; round++) {
    for (const tool of tools) {
      const run = await runConfiguration(tool, images, sdk, testing.startCeph);
      results.configurations.push({ ...run, round });
    }
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/s3-latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  const text = render(results);
  console.log(text);
  if (writeDoc) updateDoc(text);
}

// ---- analysis -------------------------------------------------------------------------------------------

const areaOf = (op) => op.split(' ')[1];
const statusOf = (op) => op.split(' ').pop();

/** Request counts of one step split the way the estimates need them. */
function split(step, kind) {
  const byOp = step.requests.byOp;
  const dataArea = kind === 'stowage' ? 'chunks' : 'data';
  let lookups = 0;
  let hits = 0;
  let hitBytes = 0;
  let dataPuts = 0;
  for (const [op, n] of Object.entries(byOp)) {
    if (areaOf(op) !== dataArea) continue;
    if (op.startsWith('HEAD ')) {
      lookups += n;
      if (statusOf(op) === '200') {
        hits += n;
        hitBytes += step.requests.contentLength[op] ?? 0;
      }
    }
    if (op.startsWith('PUT ') && statusOf(op) === '200') dataPuts += n;
  }
  const total = step.requests.requests;
  return {
    total,
    lookups,
    hits,
    misses: lookups - hits,
    hitBytes,
    dataPuts,
    other: total - lookups - dataPuts,
  };
}

/** The new data a step brings, for "requests per GiB of new data". */
function newData(stepIndex, sizes) {
  return [sizes.baseData, sizes.changedData, 0, 0][stepIndex];
}

/** Hits among the last lookups that make the adaptive strategy switch from conditional PUTs to HEADs. */
const SWITCH_HITS = 16;
/** Pack size of the pack estimate (chunks appended into objects of about this size). */
const PACK = 8 * MiB;

/**
 * Estimated requests and bytes uploaded for nothing, per lookup strategy, for one step of Stowage, from its
 * measured counts (`lookups` = chunk HEADs, `hits` = those answered 200, `other` = every request that is not
 * a chunk HEAD or chunk PUT: config, keys, manifests, listings).
 * - today: HEAD each chunk the volume's latest manifest does not name; PUT on a 404 (measured).
 * - conditional: each lookup is a PUT with `If-None-Match: *` instead; a hit is answered 412 after its sealed
 *   body went up (our S3 client uses its own socket agent, so the SDK does not wait for 100-continue).
 * - adaptive: conditional PUTs until SWITCH_HITS of the last 64 lookups hit, HEAD-then-PUT from then on (and
 *   back under 1 in 16): a run of hits wastes at most SWITCH_HITS uploads.
 * - listing: list `chunks/` at the start (1,000 keys a page), then PUT only what is missing: no lookups.
 * - proposed: listing for a volume without a committed manifest (its first backup), adaptive otherwise.
 * - packs: proposed, with new chunks appended into ~8 MiB pack objects (a format change): one PUT per pack
 *   and one index object per backup, read back by later backups (a LIST and a GET per earlier backup).
 */
function estimates(step, { newVolume, keysBefore, backupsBefore, meanHit }) {
  const s = split(step, 'stowage');
  const today = { requests: s.total, wasted: 0 };
  const conditional = { requests: s.other + s.lookups, wasted: s.hitBytes };
  const rate = s.lookups === 0 ? 0 : s.hits / s.lookups;
  const adaptive =
    s.hits < SWITCH_HITS || rate < 1 / 16
      ? conditional
      : {
          requests: s.other + s.lookups + Math.max(0, s.misses - SWITCH_HITS),
          wasted: SWITCH_HITS * meanHit,
        };
  const listing = { requests: s.other + Math.max(1, Math.ceil(keysBefore / 1000)) + s.dataPuts, wasted: 0 };
  const proposed = newVolume ? listing : adaptive;
  const chunkBytes = s.dataPuts === 0 ? 0 : step.requests.bytesUp;
  const packs = {
    requests: s.other + Math.ceil(chunkBytes / PACK) + 1 + (backupsBefore > 0 ? 1 + backupsBefore : 0),
    wasted: 0,
  };
  return { s, rate, today, conditional, adaptive, listing, proposed, packs };
}

/** `a` when all values agree to the shown precision, else `min–max`. */
function span(values, format) {
  const shown = values.filter((v) => v !== undefined && Number.isFinite(v));
  if (shown.length === 0) return '';
  const lo = format(Math.min(...shown));
  const hi = format(Math.max(...shown));
  return lo === hi ? lo : `${lo}–${hi}`;
}

/** The estimates of every step of one Stowage run, in step order. */
function estimateRun(c) {
  let keysBefore = 0;
  const volumes = new Set();
  const first = split(c.steps[0], 'stowage');
  return c.steps.map((st, i) => {
    const sp = split(st, 'stowage');
    // A hit's object size, from the HEAD answers; without hits, the mean chunk object of the first backup.
    const meanHit =
      sp.hits > 0 ? sp.hitBytes / sp.hits : c.steps[0].requests.bytesUp / Math.max(1, first.dataPuts);
    const volume = st.volume ?? (st.step.includes('2nd volume') ? 'bench-2' : 'bench');
    const e = estimates(st, { newVolume: !volumes.has(volume), keysBefore, backupsBefore: i, meanHit });
    volumes.add(volume);
    keysBefore = st.bucket.byArea.chunks?.objects ?? 0;
    return e;
  });
}

function render(all) {
  const { sizes } = all;
  const rounds = all.repeat ?? 1;
  // The detailed tables show the first round; the trade-off table spans every round.
  const results = { ...all, configurations: all.configurations.filter((c) => (c.round ?? 1) === 1) };
  const mib = (b) => (b / MiB).toFixed(1);
  const perGiB = (n, bytes) => (bytes > 0 ? (n / (bytes / GiB)).toFixed(0) : '');
  const lines = [
    `Measured ${results.date.slice(0, 16).replace('T', ' ')} UTC at commit ${results.git.head}` +
      (results.git.dirty.length > 0 ? ` (uncommitted changes in ${results.git.dirty.join(', ')})` : '') +
      `, format version ${results.formatVersion}; ${results.restic ?? 'no restic'}; ${results.ceph.split(' (')[0]}` +
      ' (memstore OSD).',
    '',
    `Data: base.img ${mib(sizes.imageBytes)} MiB with ${mib(sizes.baseData)} MiB in non-zero 4 KiB blocks (the ` +
      `new data of the first backup); changed.img differs from it in ${mib(sizes.changedData)} MiB of non-zero ` +
      'blocks (the new data of the changed image).',
    '',
    'Requests per step, counted at the proxy (init not included), and the bucket afterwards:',
    '',
    '| configuration | step | requests | HEAD | PUT | GET | LIST | DELETE | POST | per GiB new | sent MiB | objects | bucket MiB (added) | peak RSS |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of results.configurations) {
    c.steps.forEach((st, i) => {
      const m = st.requests.byMethod;
      lines.push(
        `| ${c.tool} | ${st.step} | ${st.requests.requests} | ${m.HEAD} | ${m.PUT} | ${m.GET} | ${m.LIST} | ` +
          `${m.DELETE} | ${m.POST} | ${perGiB(st.requests.requests, newData(i, sizes))} | ` +
          `${mib(st.requests.bytesUp)} | ${st.bucket.objects} | ${mib(st.bucket.bytes)} (+${mib(st.addedBytes)}) | ` +
          `${(st.rss / MiB).toFixed(0)} MiB |`,
      );
    });
  }
  lines.push(
    '',
    'Init requests: ' +
      results.configurations.map((c) => `${c.tool} ${c.init.requests}`).join(', ') +
      '. Peak RSS is the whole command (GNU time); wall times are in bench/results/s3-latest.json but were ' +
      'taken on a shared machine.',
    '',
    `Chunk size trade-off (Stowage against restic in the same round; ${rounds === 1 ? 'one repository each' : `range over ${rounds} fresh repositories each`}; ` +
      '"first" = first backup, "changed" = the changed image; the other tables show the first round):',
    '',
    '| configuration | mean chunk | requests / GiB new, first | requests / GiB new, changed | repository vs restic | changed adds vs restic | changed adds | peak RSS (max of steps) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const tools = [...new Set(all.configurations.map((c) => c.tool))];
  for (const tool of tools) {
    const runs = all.configurations.filter((c) => c.tool === tool);
    const pair = (c) =>
      all.configurations.find((r) => r.tool === 'restic' && (r.round ?? 1) === (c.round ?? 1));
    const meanChunk = (c) =>
      c.steps[0].summary === undefined
        ? undefined
        : (c.steps[0].summary.size - c.steps[0].summary.hole_bytes) / c.steps[0].summary.chunks / MiB;
    const ratio = (c, f) => (tool === 'restic' || pair(c) === undefined ? undefined : f(c) / f(pair(c)));
    const cells = [
      span(runs.map(meanChunk), (v) => `${v.toFixed(2)} MiB`),
      span(
        runs.map((c) => c.steps[0].requests.requests / (sizes.baseData / GiB)),
        (v) => v.toFixed(0),
      ),
      span(
        runs.map((c) => c.steps[1].requests.requests / (sizes.changedData / GiB)),
        (v) => v.toFixed(0),
      ),
      span(
        runs.map((c) => ratio(c, (x) => x.steps[0].bucket.bytes)),
        (v) => `${v.toFixed(3)}×`,
      ),
      span(
        runs.map((c) => ratio(c, (x) => x.steps[1].addedBytes)),
        (v) => `${v.toFixed(3)}×`,
      ),
      span(
        runs.map((c) => c.steps[1].addedBytes / MiB),
        (v) => `${v.toFixed(1)} MiB`,
      ),
      span(
        runs.map((c) => Math.max(...c.steps.map((st) => st.rss)) / MiB),
        (v) => `${v.toFixed(0)} MiB`,
      ),
    ];
    lines.push(`| ${tool} | ${cells.join(' | ')} |`);
  }
  lines.push(
    '',
    'Dedup per step (Stowage): data chunks in the volume; HEADs and PUTs of `chunks/` keys, which also hold the ' +
      "manifest's segments (one per backup here); hits = HEADs answered 200. Chunks without a HEAD were repeats " +
      'within the backup or named by the latest manifest:',
    '',
    '| configuration | step | data chunks | HEAD chunks/ | hits | hit rate | PUT chunks/ | other requests |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const c of results.configurations) {
    if (c.tool === 'restic') continue;
    for (const st of c.steps) {
      const s = split(st, 'stowage');
      lines.push(
        `| ${c.tool} | ${st.step} | ${st.summary.chunks} | ${s.lookups} | ${s.hits} | ` +
          `${s.lookups === 0 ? '' : `${((100 * s.hits) / s.lookups).toFixed(1)} %`} | ${s.dataPuts} | ${s.other} |`,
      );
    }
  }
  lines.push(
    '',
    'Estimated requests per step (and MiB uploaded for nothing) per lookup strategy, from the counts above ' +
      '(bench/s3.mjs `estimates` says how each is computed): today = HEAD, then PUT on a 404 (measured); ' +
      `conditional = \`If-None-Match: *\` PUT for every lookup, 412 on a hit; adaptive = conditional until ${SWITCH_HITS} ` +
      'of the last 64 lookups hit, HEAD from then on; listing = list `chunks/` once, then PUT only the missing; ' +
      'proposed = listing for a new volume, adaptive otherwise; packs = proposed with new chunks in ' +
      `${PACK / MiB} MiB pack objects (a format change):`,
    '',
    '| configuration | step | today | conditional | adaptive | listing | proposed | packs |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const strategies = ['today', 'conditional', 'adaptive', 'listing', 'proposed', 'packs'];
  for (const c of results.configurations) {
    if (c.tool === 'restic') continue;
    estimateRun(c).forEach((e, i) => {
      const cell = (x) => `${x.requests}${x.wasted > 0 ? ` (+${mib(x.wasted)})` : ''}`;
      lines.push(`| ${c.tool} | ${c.steps[i].step} | ${strategies.map((k) => cell(e[k])).join(' | ')} |`);
    });
  }
  lines.push(
    '',
    `The same per GiB of new data${rounds > 1 ? ` (range over the ${rounds} rounds)` : ''}:`,
    '',
    '| configuration | step | today | conditional | adaptive | listing | proposed | packs |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const tool of [...new Set(all.configurations.map((c) => c.tool))]) {
    if (tool === 'restic') continue;
    const runs = all.configurations.filter((c) => c.tool === tool).map(estimateRun);
    for (const i of [0, 1]) {
      const nd = newData(i, sizes);
      const cells = strategies.map((k) =>
        span(
          runs.map((r) => r[i][k].requests / (nd / GiB)),
          (v) => v.toFixed(0),
        ),
      );
      lines.push(`| ${tool} | ${results.configurations[0].steps[i].step} | ${cells.join(' | ')} |`);
    }
  }
  const probe = results.configurations.find((c) => c.conditionalPut)?.conditionalPut;
  const listings = results.configurations
    .map(
      (c) =>
        `${c.tool} ${c.listing.keys} keys in ${c.listing.requests} LIST, ${mib(c.listing.bytesDown)} MiB`,
    )
    .join('; ');
  lines.push(
    '',
    `Checked on this server: a second PUT with \`If-None-Match: *\` answered ${probe?.secondPutStatus ?? '—'}` +
      ` and the first object ${probe?.kept ? 'was kept' : 'was NOT kept'}. A full listing of the data objects ` +
      `after the last step: ${listings}.`,
    '',
    'In AWS S3 Standard prices (PUT/POST/LIST $0.005, GET/HEAD $0.0004 per 1,000) the first backup costs: ' +
      results.configurations
        .map((c) => {
          const m = c.steps[0].requests.byMethod;
          const usd = Object.entries(m).reduce((sum, [k, n]) => sum + ((PRICE[k] ?? 0) * n) / 1000, 0);
          return `${c.tool} $${((usd / sizes.baseData) * GiB).toFixed(4)} per GiB`;
        })
        .join(', ') +
      '.',
  );
  return lines.join('\n');
}

function updateDoc(text) {
  const doc = join(root, 'docs/benchmarks.md');
  const begin = '<!-- bench-s3:begin -->';
  const end = '<!-- bench-s3:end -->';
  let body = readFileSync(doc, 'utf8');
  if (!body.includes(begin)) {
    console.error(`bench s3: ${doc} has no ${begin} … ${end} block; not written (the tables are above)`);
    return;
  }
  // Read again right before writing: others may be editing their own sections of the file.
  body = readFileSync(doc, 'utf8');
  body = body.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), `${begin}\n${text}\n${end}`);
  writeFileSync(doc, body);
  // The house formatter aligns tables; without it `npm test`'s lint refuses the generated block.
  spawnSync(join(root, 'node_modules/.bin/biome'), ['format', '--write', doc], {
    cwd: root,
    stdio: 'ignore',
  });
  console.log(`bench s3: wrote ${doc} and bench/results/s3-latest.json`);
}

await main();
