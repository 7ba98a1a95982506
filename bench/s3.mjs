#!/usr/bin/env node
// The S3 runs of the bench: what a backup costs in S3 requests, stored bytes, objects and memory, for Stowage
// (at several average chunk sizes) and restic (Debian's package), each against its own throwaway Ceph RGW.
//
//   node bench/s3.mjs                      all configurations: restic, Stowage avg 1 MiB, 2 MiB, 4 MiB
//   --avg 1M[,2M…]      only the listed Stowage average chunk sizes (K, M, G suffixes; min = avg/4,
//                       max = avg×4, as the defaults)
//   --no-restic         without restic (the ratios to restic are then left empty)
//   --no-doc            do not rewrite the S3 block of docs/benchmarks.md
//   --repeat N          each configuration in N fresh repositories (default 1): cut points depend on the
//                       repository's key (Stowage) or random polynomial (restic), so counts and bytes vary by a
//                       few per cent from one repository to the next; the trade-off table gives the range
//   --tree DIR          run the agent built in DIR (bench/export-tree.sh COMMIT DIR makes one), to measure a
//                       commit while this working tree is being edited
//   --quick             a smoke run, not a benchmark: only the first 256 MiB of each image (copies in the
//                       bench directory); implies --no-doc and writes $STOWAGE_BENCH_DIR/s3-quick.json
//                       unless --out says otherwise. With --avg 1M --no-restic: about a minute
//   --out FILE          where the results go (default bench/results/s3-latest.json; --quick: see above)
//   --render            no run: re-render the results file (--out, default bench/results/s3-latest.json)
//                       and, unless --no-doc, the doc block
//   --help              this text
//   npm run bench -- --s3                  the local runs, then these
//   npm run bench -- --s3-only             only these (STOWAGE_BENCH_S3=1 is the same as --s3); --avg,
//                                          --repeat, --no-restic, --no-doc and --tree are passed on
//
// Needs the bench data (built by `node bench/run.mjs --prepare`, done here when missing), a built tree
// (`npm run build`), restic, and Ceph's radosgw/ceph-mon/ceph-osd (apt-get install radosgw ceph-mon ceph-osd).
// STOWAGE_BENCH_DIR is the data directory (default /var/tmp/stowage-bench).
//
// Each configuration gets a fresh Ceph (monitor, in-memory OSD, RADOS Gateway: the harness the object-store
// tests use) and one bucket; both tools talk to it through bench/s3-proxy.mjs, which counts every request on
// the wire by method, operation, key area and status. Steps, into the same bucket: first backup of the OS
// image; the changed image; the changed image again; the OS image again as a second volume (Stowage: another
// --volume, so no manifest to trust: its chunks are found through the repository's index objects; restic:
// another --stdin-filename). After each step the bucket is listed directly (not through the proxy) for its
// objects and bytes per area (packs/, index/, chunks/ = manifest segments, manifests/…). Peak RSS is GNU
// time's, of the whole command, as in the local runs. Request, object and byte counts repeat for a given
// commit, data and repository; times do not (shared machine), so the tables leave speed to the local runs.
// The tables are bench/s3-report.mjs's. Writes the results file (--out) and, unless --no-doc or --quick, the
// block between <!-- bench-s3:begin --> and <!-- bench-s3:end --> in docs/benchmarks.md.
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
import { checkArguments } from './args.mjs';
import { startCountingProxy } from './s3-proxy.mjs';
import { render, updateDoc } from './s3-report.mjs';

// The AWS SDK's notice that its 2027 releases need Node 22, once per process, would only clutter the output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = process.env.STOWAGE_BENCH_DIR ?? '/var/tmp/stowage-bench';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const KiB = 1024;
const passphrase = 'bench passphrase';
const argv = process.argv.slice(2);
checkArguments(argv, {
  name: 'bench s3',
  url: import.meta.url,
  flags: ['--no-restic', '--no-doc', '--render', '--quick'],
  options: ['--avg', '--repeat', '--tree', '--out'],
});
const option = (name) => {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
};
const averages = (option('--avg') ?? '1M,2M,4M').split(',').map(parseSize);
const withRestic = !argv.includes('--no-restic');
/** --quick: the first QUICK_MIB MiB of each image, results apart, the doc left alone. */
const QUICK_MIB = 256;
const quick = argv.includes('--quick');
const writeDoc = !argv.includes('--no-doc') && !quick;
const repeat = Number(option('--repeat') ?? 1);
if (!Number.isInteger(repeat) || repeat < 1) {
  console.error(`bench s3: --repeat ${option('--repeat')} is not a positive integer`);
  process.exit(2);
}
const outFile = resolve(
  option('--out') ?? (quick ? join(work, 's3-quick.json') : join(root, 'bench/results/s3-latest.json')),
);
/** The built tree whose agent and Ceph harness run: this checkout, or an export of one commit. */
const tree = resolve(option('--tree') ?? root);
const agent = join(tree, 'apps/agent/bin/agent.cjs');

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
function dataSizes(base, changed) {
  const stamp = `${statSync(base).size}:${statSync(base).mtimeMs}:${statSync(changed).mtimeMs}`;
  const cache = join(work, quick ? 's3-data-sizes-quick.json' : 's3-data-sizes.json');
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
 * Checks on this server what the manifest commit and repository init rely on: a PUT with `If-None-Match: *`
 * onto an existing key answers 412 and leaves the object as it was.
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
    // What a full listing of the repository's data objects costs (what a GC or a check starts from).
    const area = tool.kind === 'stowage' ? 'packs/' : 'data/';
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
  // Not trim(): the first line's leading space is part of its status column.
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'packages', 'apps'], { cwd: root })
    .stdout.toString()
    .trimEnd()
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('??'))
    .map((l) => l.slice(3));
  return { head, commit, dirty };
}

/** The first QUICK_MIB MiB of an image, copied (sparse) beside it once. */
function quickImage(image) {
  const copy = join(work, `quick-${QUICK_MIB}M-${image.split('/').pop()}`);
  if (existsSync(copy) && statSync(copy).mtimeMs >= statSync(image).mtimeMs) return copy;
  const r = spawnSync('dd', [`if=${image}`, `of=${copy}`, 'bs=4M', `count=${QUICK_MIB / 4}`, 'conv=sparse'], {
    stdio: 'ignore',
  });
  if (r.status !== 0) throw new Error(`dd of ${image} failed`);
  return copy;
}

async function main() {
  if (argv.includes('--render')) {
    const saved = JSON.parse(readFileSync(outFile, 'utf8'));
    const text = render(saved);
    console.log(text);
    if (writeDoc) updateDoc(root, text);
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
  const base = quick ? quickImage(join(work, 'base.img')) : join(work, 'base.img');
  const changed = quick ? quickImage(join(work, 'changed.img')) : join(work, 'changed.img');
  const sizes = dataSizes(base, changed);
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
    quick: quick ? QUICK_MIB : undefined,
    configurations: [],
  };
  results.repeat = repeat;
  for (let round = 1; round <= repeat; round++) {
    for (const tool of tools) {
      const run = await runConfiguration(tool, images, sdk, testing.startCeph);
      results.configurations.push({ ...run, round });
    }
  }
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  const text = render(results);
  console.log(text);
  console.log(`bench s3: wrote ${outFile}`);
  if (writeDoc) updateDoc(root, text);
}

await main();
