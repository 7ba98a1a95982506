// The benchmark's data (docs/benchmarks.md): an ext4 image of real files from /usr, the same image after "a
// day of changes" made inside it with debugfs, 1 GiB of random data and a 4 GiB image of it; built once
// into the bench directory and kept there.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** Where the data and the runs' repositories live (STOWAGE_BENCH_DIR). */
export const work = process.env.STOWAGE_BENCH_DIR ?? '/var/tmp/stowage-bench';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
/** Bumped when the data changes, so a cached copy of the old data is rebuilt. */
const DATA_VERSION = 'v1';

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26, ...opts });
}

export function need(cmd, pkg) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`]);
  if (r.status !== 0) {
    console.error(`bench: ${cmd} not found (apt-get install ${pkg})`);
    process.exit(2);
  }
}

/** Deterministic pseudo-random bytes (seeded), so every run sees the same data. */
function seededBytes(seed, n) {
  const out = Buffer.allocUnsafe(n);
  let counter = 0;
  for (let at = 0; at < n; at += 32) {
    createHash('sha256')
      .update(`${seed}:${counter++}`)
      .digest()
      .copy(out, at, 0, Math.min(32, n - at));
  }
  return out;
}

function writeRandomFile(path, size) {
  const fd = openSync(path, 'w');
  const block = 16 * MiB;
  for (let at = 0; at < size; at += block) writeSync(fd, randomBytes(Math.min(block, size - at)));
  closeSync(fd);
}

/** Picks real files under /usr, sorted, until `budget` bytes; copies them into `dir`. */
function stageTree(dir, budget) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const list = sh('sh', [
    '-c',
    'find /usr/lib /usr/share /usr/bin -xdev -type f -size +0 -printf "%s %p\\n" | sort -k2',
  ])
    .toString()
    .trim()
    .split('\n');
  const chosen = [];
  let total = 0;
  for (const l of list) {
    const space = l.indexOf(' ');
    const size = Number(l.slice(0, space));
    const path = l.slice(space + 1);
    if (size > 64 * MiB || path.includes('\n')) continue;
    if (total + size > budget) break;
    chosen.push(path);
    total += size;
  }
  const listFile = join(work, 'files.txt');
  writeFileSync(listFile, `${chosen.join('\n')}\n`);
  sh('sh', ['-c', `sed 's#^/##' ${listFile} | tar -C / -cf - -T - | tar -C ${dir} -xf -`]);
  return { files: chosen.length, bytes: total };
}

/** base.img, changed.img and random.img, built unless already there; what was staged and changed. */
export function buildData() {
  mkdirSync(work, { recursive: true });
  const stamp = join(work, `data-${DATA_VERSION}.done`);
  if (existsSync(stamp)) return JSON.parse(readFileSync(stamp, 'utf8'));
  console.log(`bench: building data in ${work} (once)…`);
  need('mke2fs', 'e2fsprogs');
  need('debugfs', 'e2fsprogs');
  const tree = join(work, 'tree');
  const staged = stageTree(tree, 1.2 * GiB);
  const base = join(work, 'base.img');
  rmSync(base, { force: true });
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, base, '2G']);

  // A day of changes, applied inside the filesystem image with debugfs (no mount needed).
  const changed = join(work, 'changed.img');
  sh('cp', ['--sparse=always', base, changed]);
  const files = readFileSync(join(work, 'files.txt'), 'utf8').trim().split('\n');
  const cmds = [];
  const pick = (i) => files[(i * 7919) % files.length];
  let deleted = 0;
  let rewritten = 0;
  for (let i = 0; i < files.length / 50; i++) {
    cmds.push(`rm ${pick(i)}`); // ~2% deleted
    deleted++;
  }
  const fresh = join(work, 'fresh');
  mkdirSync(fresh, { recursive: true });
  for (let i = 0; i < files.length / 50; i++) {
    const victim = pick(i + 100_000);
    const local = join(fresh, `rw-${i}`);
    const original = readFileSync(victim);
    const edit = seededBytes(`rw${i}`, Math.min(4096, original.length));
    edit.copy(original, Math.floor(original.length / 2) - Math.floor(edit.length / 2));
    writeFileSync(local, original);
    cmds.push(`rm ${victim}`, `write ${local} ${victim}`); // ~2% rewritten in place
    rewritten++;
  }
  cmds.push('mkdir /added');
  let added = 0;
  for (let i = 0; i < 40; i++) {
    const local = join(fresh, `new-${i}`);
    writeFileSync(local, seededBytes(`new${i}`, 1 * MiB));
    cmds.push(`write ${local} /added/new-${i}`); // 40 MiB added
    added++;
  }
  writeFileSync(join(work, 'debugfs.cmds'), `${cmds.join('\n')}\n`);
  sh('debugfs', ['-w', '-f', join(work, 'debugfs.cmds'), changed], { stdio: ['ignore', 'ignore', 'ignore'] });
  rmSync(fresh, { recursive: true, force: true });
  rmSync(tree, { recursive: true, force: true });

  writeRandomFile(join(work, 'random.img'), 1 * GiB);
  const info = { staged, changes: { deleted, rewritten, added } };
  writeFileSync(stamp, JSON.stringify(info));
  return info;
}

/** big.img (4 GiB of random data), made unless already there. */
export function buildBig() {
  const big = join(work, 'big.img');
  if (existsSync(big) && statSync(big).size === 4 * GiB) return big;
  writeRandomFile(big, 4 * GiB);
  return big;
}
