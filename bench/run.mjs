#!/usr/bin/env node
// `npm run bench`: Stowage against restic (Debian) on the same data in the same run, on local repositories.
//
// Data (built once and cached under $STOWAGE_BENCH_DIR, default /var/tmp/stowage-bench):
//   base.img     ext4 image (2 GiB, ~1.2 GiB of real OS files from /usr, the rest free space), made by
//                `mke2fs -d` without mounting
//   changed.img  base.img after "a day of changes": files deleted, added and rewritten (through debugfs)
//   random.img   1 GiB of random data
//   big.img      4 GiB of random data, to show peak RSS does not grow with size
// Runs: first backup, backup of the changed image, unchanged re-backup, restore; random first/again; big.
// Each figure is wall time and peak RSS of the whole process (GNU time), and repository bytes (du -sb of the
// repository directory: packs, index objects, manifest segments and roots alike). Writes
// bench/results/latest.json and the block between <!-- bench:begin --> and <!-- bench:end --> in
// docs/benchmarks.md.
//
//   npm run bench [-- OPTIONS]    builds the tree first (npm run build), then node bench/run.mjs OPTIONS
//   --quick       skip the 4 GiB image and the random-data restore (a shorter run, still a full local run)
//   --no-big      skip the 4 GiB image only
//   --prepare     only build the data (with --quick or --no-big: without big.img), then stop
//   --s3          after the local runs, the S3 runs of bench/s3.mjs (requests by method and area, stored
//                 bytes, objects and peak RSS against a throwaway Ceph RGW, several chunk sizes; ~15 min more);
//                 STOWAGE_BENCH_S3=1 is the same
//   --s3-only     only the S3 runs
//   --no-manager  skip the manager's runs (bench/manager.mjs: a backup through the API against `agent
//                 backup` on base.img, list latency with 1,000 volumes and 100,000 backups on PGlite and
//                 PostgreSQL; ~3 min; results in bench/results/manager.json)
//   --no-gc       skip the GC run (bench/gc.mjs: one GC of a synthetic target of 1,000,000 chunks on a
//                 filesystem and of 100,000 on Ceph RGW, wall time, store and S3 requests, peak RSS; ~10 min;
//                 results in bench/results/gc.json)
//   --no-console  skip the console's step (bench/console.mjs: first-load JavaScript of the export, gzip and
//                 brotli, and the dashboard's render time in chromium with 1,000 volumes and 100,000 backups on
//                 the embedded default; results in bench/results/console.json)
//   --no-doc      leave docs/benchmarks.md alone (the S3 runs too)
//   --out FILE    where the local results go (default bench/results/latest.json): a smoke run
//                 (`node bench/run.mjs --quick --no-doc --out /tmp/latest-quick.json`, ~5 min) should not
//                 replace the recorded run
//   --chunk-avg LIST
//                 Stowage's average chunk sizes for the local runs (K and M suffixes, e.g. 512K,1M; min = avg/4,
//                 max = avg×4, as the defaults scale): each is run beside the same restic run of a round, in a
//                 repository made with `agent repo init --min --avg --max`; without it, the repository default.
//                 The tables name each one (os-image 512K); a summary per round follows them
//   --rounds N    run the scenarios N times over, each round in fresh repositories (a new random key for
//                 Stowage, so new cut points; a new chunker polynomial for restic) [default: 1]
//   --avg LIST, --repeat N, --no-restic, --tree DIR
//                 passed on to bench/s3.mjs (see `node bench/s3.mjs --help`; its smoke run, --quick, is
//                 bench/s3.mjs's own: `node bench/s3.mjs --quick --avg 1M`)
//   --help        this text
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkArguments } from './args.mjs';
import { buildBig, buildData, need, work } from './data.mjs';
import { render, updateDoc } from './render.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const skipBig = quick || process.argv.includes('--no-big');
const agent = join(root, 'apps/agent/bin/agent.cjs');
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const KiB = 1024;
const passphrase = 'bench passphrase';
const env = { ...process.env, STOWAGE_PASSPHRASE: passphrase, RESTIC_PASSWORD: passphrase };

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env, maxBuffer: 1 << 26, ...opts });
}

/** Runs a command under GNU time; returns wall seconds, peak RSS bytes and stdout. */
function timed(cmd, args, opts = {}) {
  const timeFile = join(work, 'time.out');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, cmd, ...args], {
    env,
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  }
  const [wall, rssKiB] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { seconds: wall, rss: rssKiB * 1024, stdout: r.stdout.toString() };
}

/** The 1-minute load average now: the machine is shared, so every speed figure carries it. */
function loadAverage() {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

function parseSize(text) {
  const m = /^(\d+)([KM]?)$/i.exec(text.trim());
  if (!m) throw new Error(`bench: bad size ${text} (for example 512K or 1M)`);
  return Number(m[1]) * { '': 1, K: KiB, M: MiB }[m[2].toUpperCase()];
}

function sizeLabel(bytes) {
  return bytes % MiB === 0 ? `${bytes / MiB}M` : `${bytes / KiB}K`;
}

function duBytes(path) {
  return Number(sh('du', ['-sb', path]).toString().split('\t')[0]);
}

function sha256File(path) {
  return sh('sha256sum', [path]).toString().split(' ')[0];
}

/** Stowage at the repository default, or (avg given) at min avg/4, avg, max avg×4. */
const stowageAt = (avg) => ({
  name: avg === undefined ? 'stowage' : `stowage-${sizeLabel(avg)}`,
  avg,
  init(repo) {
    rmSync(repo, { recursive: true, force: true });
    const sizes = avg === undefined ? [] : ['--min', `${avg / 4}`, '--avg', `${avg}`, '--max', `${avg * 4}`];
    sh('node', [agent, 'repo', 'init', '--repo', `file://${repo}`, ...sizes]);
  },
  backup(repo, image) {
    // --quiet: no status lines, so stdout is the one summary line.
    return timed('node', [
      agent,
      'backup',
      image,
      '--repo',
      `file://${repo}`,
      '--volume',
      'bench',
      '--json',
      '--quiet',
    ]);
  },
  restore(repo, backupId, out) {
    rmSync(out, { force: true });
    return timed('node', [agent, 'restore', backupId, '--repo', `file://${repo}`, '--to', out]);
  },
  lastId(r) {
    return summaryOf(r).backup_id;
  },
  /** What hiding chunk sizes cost this backup: the padding in the bytes it uploaded (format.md §4.3). */
  padding(r) {
    const s = summaryOf(r);
    return {
      padding: s.bytes_padding,
      uploaded: s.bytes_uploaded,
      chunks: s.chunks,
      chunksNew: s.chunks_new,
    };
  },
});

function summaryOf(r) {
  const line = r.stdout.trim().split('\n').at(-1);
  return JSON.parse(line);
}

const restic = {
  name: 'restic',
  init(repo) {
    rmSync(repo, { recursive: true, force: true });
    sh('restic', ['init', '--quiet', '-r', repo]);
  },
  backup(repo, image) {
    return timed('sh', [
      '-c',
      `restic -r ${repo} backup --quiet --stdin --stdin-filename volume.img < ${image}`,
    ]);
  },
  restore(repo, _id, out) {
    rmSync(out, { force: true });
    return timed('sh', ['-c', `restic -r ${repo} dump --quiet latest volume.img > ${out}`]);
  },
  lastId() {
    return 'latest';
  },
};

function runScenario(tool, label, images, withRestore) {
  const repo = join(work, `repo-${tool.name}-${label}`);
  tool.init(repo);
  const rows = [];
  let before = duBytes(repo);
  let last;
  for (const [step, image] of images) {
    const load = loadAverage();
    const r = tool.backup(repo, image);
    const after = duBytes(repo);
    rows.push({
      step,
      load,
      size: statSync(image).size,
      seconds: r.seconds,
      rss: r.rss,
      repoBytes: after,
      added: after - before,
      ...(tool.padding === undefined ? {} : tool.padding(r)),
    });
    before = after;
    last = { r, image };
  }
  if (withRestore) {
    const out = join(work, `restored-${tool.name}.img`);
    const load = loadAverage();
    const r = tool.restore(repo, tool.lastId(last.r), out);
    const exact = sha256File(out) === sha256File(last.image);
    const size = statSync(last.image).size;
    rows.push({ step: 'restore', load, size, seconds: r.seconds, rss: r.rss, exact });
    rmSync(out, { force: true });
  }
  rmSync(repo, { recursive: true, force: true });
  return rows;
}

function main() {
  checkArguments(process.argv.slice(2), {
    name: 'bench',
    url: import.meta.url,
    flags: [
      '--quick',
      '--no-big',
      '--prepare',
      '--s3',
      '--s3-only',
      '--no-restic',
      '--no-doc',
      '--no-manager',
      '--no-gc',
      '--no-console',
    ],
    options: ['--avg', '--repeat', '--tree', '--out', '--chunk-avg', '--rounds'],
  });
  const chunkAvgIndex = process.argv.indexOf('--chunk-avg');
  const averages =
    chunkAvgIndex < 0 ? [undefined] : process.argv[chunkAvgIndex + 1].split(',').map(parseSize);
  const roundsIndex = process.argv.indexOf('--rounds');
  const rounds = roundsIndex < 0 ? 1 : Number(process.argv[roundsIndex + 1]);
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error('bench: --rounds takes a whole number ≥ 1');
    process.exit(2);
  }
  need('restic', 'restic');
  if (!existsSync(join(root, 'apps/agent/dist/cli/main.js'))) {
    console.error('bench: build first (npm run build)');
    process.exit(2);
  }
  const info = buildData();
  if (process.argv.includes('--prepare')) {
    if (!skipBig) buildBig();
    console.log(`bench: data ready in ${work}`);
    return;
  }
  if (process.argv.includes('--s3-only')) {
    s3Runs();
    return;
  }
  const base = join(work, 'base.img');
  const changed = join(work, 'changed.img');
  const random = join(work, 'random.img');
  const scenarios = [
    {
      name: 'os-image',
      images: [
        ['first backup', base],
        ['changed image', changed],
        ['unchanged again', changed],
      ],
      restore: true,
    },
    {
      name: 'random',
      images: [
        ['first backup', random],
        ['unchanged again', random],
      ],
      restore: !quick,
    },
  ];
  if (!skipBig) scenarios.push({ name: 'big-4GiB', images: [['first backup', buildBig()]], restore: false });

  const results = {
    machine: machine(),
    date: new Date().toISOString(),
    data: info,
    scenarios: [],
    micro: micro(),
  };
  const ours = averages.map(stowageAt);
  for (let round = 1; round <= rounds; round++) {
    for (const s of scenarios) {
      const byTool = {};
      // Alternate the order per scenario so neither tool always gets the warmer page cache.
      const order = results.scenarios.length % 2 === 0 ? [restic, ...ours] : [...ours.toReversed(), restic];
      for (const tool of order) {
        console.log(`bench: ${s.name}${rounds > 1 ? ` (round ${round})` : ''} — ${tool.name}…`);
        byTool[tool.name] = runScenario(tool, s.name, s.images, s.restore);
      }
      results.scenarios.push({ name: s.name, ...(rounds > 1 ? { round } : {}), ...byTool });
    }
  }
  const outIndex = process.argv.indexOf('--out');
  const outFile = resolve(
    outIndex >= 0 ? process.argv[outIndex + 1] : join(root, 'bench/results/latest.json'),
  );
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  const table = render(results);
  console.log(table);
  console.log(`bench: wrote ${outFile}`);
  if (!process.argv.includes('--no-doc')) updateDoc(root, table);
  if (!process.argv.includes('--no-manager')) managerRuns();
  if (!process.argv.includes('--no-gc')) gcRuns();
  if (!process.argv.includes('--no-console')) consoleRuns();
  if (process.argv.includes('--s3') || process.env.STOWAGE_BENCH_S3 === '1') s3Runs();
}

/** The manager's runs (bench/manager.mjs): a backup through the API against `agent backup`, list latency. */
function managerRuns() {
  // A smoke run must not replace the recorded figures.
  const passed = quick ? ['--quick', '--out', '/tmp/stowage-manager-quick.json'] : [];
  const r = spawnSync('node', [join(root, 'bench/manager.mjs'), ...passed], {
    stdio: 'inherit',
    env: process.env,
  });
  if (r.status !== 0) {
    console.error(`bench: the manager runs failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}

/** The GC run (bench/gc.mjs): one GC of a synthetic million-chunk target; a smoke run's figures go to /tmp. */
function gcRuns() {
  const r = spawnSync('node', [join(root, 'bench/gc.mjs'), ...(quick ? ['--quick'] : [])], {
    stdio: 'inherit',
    env: process.env,
  });
  if (r.status !== 0) {
    console.error(`bench: the GC run failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}

/** The console's step (bench/console.mjs); a smoke run's figures go to /tmp. */
function consoleRuns() {
  const passed = quick
    ? ['--volumes', '100', '--backups', '10', '--out', '/tmp/stowage-console-quick.json']
    : [];
  const r = spawnSync('node', [join(root, 'bench/console.mjs'), ...passed], {
    stdio: 'inherit',
    env: process.env,
  });
  if (r.status !== 0) {
    console.error(`bench: the console step failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}

/** The S3 runs (bench/s3.mjs), in their own process: they need an event loop for the counting proxy. */
function s3Runs() {
  const passed = [];
  for (const name of ['--avg', '--tree', '--repeat']) {
    const i = process.argv.indexOf(name);
    if (i >= 0) passed.push(name, process.argv[i + 1]);
  }
  for (const name of ['--no-restic', '--no-doc']) if (process.argv.includes(name)) passed.push(name);
  const r = spawnSync('node', [join(root, 'bench/s3.mjs'), ...passed], {
    stdio: 'inherit',
    env: process.env,
  });
  if (r.status !== 0) {
    console.error(`bench: the S3 runs failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}

/** The single-thread primitive benchmarks (chunker, BLAKE3, XChaCha20-Poly1305), verbatim. */
function micro() {
  const out = {};
  for (const name of ['chunker', 'blake3', 'format.xchacha']) {
    console.log(`bench: micro ${name}…`);
    out[name] = sh('node', [join(root, `bench/micro/${name}.mjs`)])
      .toString()
      .trim();
  }
  return out;
}

function machine() {
  const node = process.version;
  const resticVersion = sh('restic', ['version']).toString().trim();
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}${cpuGeneration()}, ${(totalmem() / GiB).toFixed(0)} GiB, Node ${node}, ${resticVersion}`;
}

/**
 * The CPU's family and model from /proc/cpuinfo (" (family 25 model 1)"): machines of this kind all say
 * "AMD EPYC", yet their generations differ ~2× in WASM SIMD speed, which moves our ratios to restic.
 */
function cpuGeneration() {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const family = /^cpu family\s*:\s*(\d+)/m.exec(info)?.[1];
    const model = /^model\s*:\s*(\d+)/m.exec(info)?.[1];
    return family === undefined ? '' : ` (family ${family} model ${model})`;
  } catch {
    return '';
  }
}

main();

main();
