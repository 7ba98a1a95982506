#!/usr/bin/env node
// `node bench/manager.mjs`: the manager's benchmark (issue 9 point 9), against dist/ (build first).
//
// 1. Backup through the manager against `agent backup`, on the same image in the same run: the CLI as
//    bench/run.mjs runs it (`agent backup IMAGE --repo file://… --volume bench --json --quiet`, a fresh
//    repository made by `agent repo init`), and the embedded system (startEmbedded: the manager on PGlite,
//    its supervised `agent serve`, apps/agent/bin/agent.cjs) with the image adopted as a volume under the
//    local agent's volume root (a hard link) with `snapshot: false` — a live read, as `agent backup` reads it;
//    a copy snapshot would add a full read and write of the image — into a fresh filesystem target per run.
//    The manager's figure is the wall time from the POST /v1/volumes/:id/backup to the job's terminal event
//    on its SSE stream (GET /v1/jobs/:id/events); the CLI's is the wall time of the whole process (start,
//    scrypt, worker start-up included, as in bench/run.mjs). Each side's own `seconds` (the engine's backup,
//    from the CLI's summary and from the job's result) is recorded too, so the overhead on either side shows.
//    Then an unchanged re-backup into the same repository, both ways. Runs alternate which side goes first.
//    Goal: manager ≤ 1.05× `agent backup` (medians).
// 2. List latency: a database filled with 1,000 volumes, 100,000 backups and their 100,000 jobs (batched
//    kysely inserts through apps/manager/dist/db; one host, one target, so the target's usage aggregates all
//    100,000 backups), served by startManager (apps/manager/dist/server.js), sequential GETs over real HTTP
//    (fetch, keep-alive) round-robin over the endpoints, following next_cursor for several pages; p50/p99
//    per endpoint, on embedded PGlite and on a throwaway PostgreSQL (bench/manager-postgres.mjs, autovacuum
//    off so that "no statistics yet" is a state the bench controls) — first as loaded (no ANALYZE: PGlite
//    runs no autovacuum, so that is where an embedded database stays), then after ANALYZE. Goal: p99 < 50 ms.
//    EXPLAIN (ANALYZE, BUFFERS) of every list query is kept in the results (and printed for a miss).
//
// Writes bench/results/manager.json (machine, date, node, every figure) and prints a table.
//
//   --quick          a smoke run (< 2 min): a ~300 MiB image with real files (built once), 1 run, 100
//                    volumes and 10,000 backups, 60 requests per endpoint
//   --runs N         backup runs per side (default 3)
//   --requests N     measured requests per endpoint (default 250; 20 warm-up requests are not counted)
//   --image FILE     the image to back up (default $STOWAGE_BENCH_DIR/base.img, built by
//                    `node bench/run.mjs --prepare --no-big` when missing)
//   --no-backup      skip part 1;  --no-lists  skip part 2;  --no-postgres  part 2 on PGlite only
//   --force          run even while another benchmark runs (refused otherwise: they disturb each other)
//   --out FILE       default bench/results/manager.json (a smoke run should not replace the recorded run:
//                    `node bench/manager.mjs --quick --out /tmp/manager-quick.json`)
//   --help           this text
import { execFile, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checkArguments } from './args.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = process.env.STOWAGE_BENCH_DIR ?? '/var/tmp/stowage-bench';
const argv = process.argv.slice(2);
checkArguments(argv, {
  name: 'bench/manager',
  url: import.meta.url,
  flags: ['--quick', '--no-backup', '--no-lists', '--no-postgres', '--force'],
  options: ['--runs', '--requests', '--image', '--out'],
});
const has = (flag) => argv.includes(flag);
const option = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = has('--quick');
const RUNS = Number(option('--runs') ?? (quick ? 1 : 3));
const REQUESTS = Number(option('--requests') ?? (quick ? 60 : 250));
const WARMUP = quick ? 10 : 20;
const VOLUMES = quick ? 100 : 1000;
const BACKUPS_PER_VOLUME = 100;
const GOAL_RATIO = 1.05;
const GOAL_P99_MS = 50;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const agentBin = join(root, 'apps/agent/bin/agent.cjs');
const passphrase = 'bench passphrase';
const dist = (path) => import(pathToFileURL(join(root, 'apps/manager/dist', path)).href);

for (const needed of ['apps/manager/dist/embedded/start.js', 'apps/agent/dist/cli/main.js']) {
  if (!existsSync(join(root, needed))) {
    console.error(`bench/manager: ${needed} is missing: build first (npm run build)`);
    process.exit(2);
  }
}

/**
 * Another benchmark running on this machine (bench/run.mjs, bench/s3.mjs, another bench/manager.mjs): their
 * figures and these would disturb each other on a small machine. Processes this one descends from are not
 * counted (npm run bench may run this script).
 */
function otherBenchmarks() {
  const ancestors = new Set();
  for (let pid = process.pid; pid > 1; ) {
    ancestors.add(pid);
    try {
      pid = Number(
        readFileSync(`/proc/${pid}/stat`, 'utf8')
          .replace(/^.*\) /s, '')
          .split(' ')[1],
      );
    } catch {
      break;
    }
  }
  const r = spawnSync('pgrep', ['-fa', 'bench/(run|s3|manager)\\.mjs'], { encoding: 'utf8' });
  return (r.stdout ?? '')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => !ancestors.has(Number(line.split(' ')[0])));
}

// ---------------------------------------------------------------------------------------------- helpers

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
/** The nearest-rank quantile: p99 of 250 samples is the 248th smallest. */
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
const round = (x, digits = 3) => Number(x.toFixed(digits));
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

/**
 * A command run without blocking: the manager under test lives in this process, and a blocked event loop
 * would stall it (and its keep-alive timers) while the CLI runs.
 */
function run(cmd, args, opts = {}) {
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(' ')} failed (${error.code}):\n${stderr}`));
      else resolvePromise(stdout);
    });
  });
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
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

// ------------------------------------------------------------------------------------------- the image

/** The smoke run's image: ~200 MiB of real files from /usr/lib in a 320 MiB ext4 image, built once. */
function quickImage() {
  const image = join(work, 'manager-quick.img');
  const stamp = `${image}.done`;
  if (existsSync(stamp) && existsSync(image)) return image;
  mkdirSync(work, { recursive: true });
  console.log('bench/manager: building the quick image (once)…');
  const tree = join(work, 'manager-quick-tree');
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  const list = sh('sh', [
    '-c',
    'find /usr/lib -xdev -type f -size +0 -size -16M -printf "%s %p\\n" | sort -k2',
  ])
    .trim()
    .split('\n');
  const chosen = [];
  let total = 0;
  for (const line of list) {
    const space = line.indexOf(' ');
    const size = Number(line.slice(0, space));
    if (total + size > 200 * MiB) break;
    chosen.push(line.slice(space + 1).replace(/^\//, ''));
    total += size;
  }
  const listFile = join(work, 'manager-quick-files.txt');
  writeFileSync(listFile, `${chosen.join('\n')}\n`);
  sh('sh', ['-c', `tar -C / -cf - -T ${listFile} 2>/dev/null | tar -C ${tree} -xf -`]);
  rmSync(image, { force: true });
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', tree, image, '320M']);
  rmSync(tree, { recursive: true, force: true });
  writeFileSync(stamp, JSON.stringify({ files: chosen.length, bytes: total }));
  return image;
}

function benchImage() {
  const given = option('--image');
  if (given !== undefined) return resolve(given);
  if (quick) return quickImage();
  const base = join(work, 'base.img');
  if (!existsSync(base)) {
    console.log('bench/manager: building the benchmark data (node bench/run.mjs --prepare --no-big)…');
    sh('node', [join(root, 'bench/run.mjs'), '--prepare', '--no-big'], { stdio: 'inherit' });
  }
  return base;
}

// ------------------------------------------------------------------------ part 1: backup, both ways

const cliEnv = { ...process.env, STOWAGE_PASSPHRASE: passphrase };

/** `agent backup` into `repo`, timed as a whole process; its summary's `seconds` is the engine's own. */
async function cliBackup(repo, image) {
  const t0 = process.hrtime.bigint();
  const out = await run(
    'node',
    [agentBin, 'backup', image, '--repo', `file://${repo}`, '--volume', 'bench', '--json', '--quiet'],
    { env: cliEnv },
  );
  const wall = seconds(t0);
  const summary = JSON.parse(out.trim().split('\n').at(-1));
  return {
    wall: round(wall),
    engine: summary.seconds,
    bytes_uploaded: summary.bytes_uploaded,
    chunks: summary.chunks,
    chunks_new: summary.chunks_new,
  };
}

async function cliRun(image, n) {
  const repo = join(work, `manager-bench-cli-${n}`);
  rmSync(repo, { recursive: true, force: true });
  await run('node', [agentBin, 'repo', 'init', '--repo', `file://${repo}`], { env: cliEnv });
  const first = await cliBackup(repo, image);
  const again = await cliBackup(repo, image);
  rmSync(repo, { recursive: true, force: true });
  return { first, again };
}

/** One backup now through the API: wall time from the POST to the terminal event of the job's SSE stream. */
async function managerBackup(system, volumeId, targetId) {
  const { client, embedded } = system;
  const t0 = process.hrtime.bigint();
  const { job } = await client.backupNow(volumeId, { backup_target_id: targetId });
  const posted = seconds(t0);
  let last;
  let events = 0;
  for await (const event of client.jobEvents(job.id)) {
    last = event;
    events++;
  }
  const wall = seconds(t0);
  if (last?.state !== 'succeeded') {
    throw new Error(`the manager's backup job ended ${last?.state}: ${JSON.stringify(last?.error)}`);
  }
  const row = await embedded.manager.ctx.db
    .selectFrom('job')
    .select(['result'])
    .where('id', '=', job.id)
    .executeTakeFirstOrThrow();
  const result = typeof row.result === 'string' ? JSON.parse(row.result) : row.result;
  return {
    wall: round(wall),
    engine: result.seconds,
    post: round(posted),
    sse_events: events,
    bytes_uploaded: result.bytes_uploaded,
    chunks: result.chunks,
    chunks_new: result.chunks_new,
    snapshot: result.snapshot,
  };
}

async function managerRun(system, volumeId, run) {
  const path = join(system.home, 'targets', `bench-${run}`);
  const { target } = await system.client.createTarget({
    kind: 'filesystem',
    name: `bench-${run}`,
    filesystem: { path },
    passphrase,
  });
  const first = await managerBackup(system, volumeId, target.id);
  const again = await managerBackup(system, volumeId, target.id);
  rmSync(path, { recursive: true, force: true });
  return { first, again };
}

async function startSystem(home, databaseUrl) {
  const { parseConfig } = await dist('config.js');
  const { startEmbedded } = await dist('embedded/start.js');
  const { jsonLogger } = await dist('log.js');
  const { ManagerClient } = await import('@stowage/api');
  const env = { STOWAGE_HOME: home, PORT: '0', LOG_LEVEL: 'info' };
  if (databaseUrl !== undefined) {
    env.DATABASE_URL = databaseUrl;
    env.MANAGER_MASTER_KEY_FILE = join(home, 'master.key');
  }
  const config = parseConfig(env);
  if (databaseUrl !== undefined) {
    const { loadMasterKey } = await dist('secrets/master-key.js');
    loadMasterKey(config.masterKeyFile, { create: true });
  }
  // The logs are kept (a tail) for a failure's message, not printed: the agent logs every job at info.
  const tail = [];
  const keep = (line) => {
    tail.push(line);
    if (tail.length > 200) tail.shift();
  };
  const embedded = await startEmbedded(config, {
    logger: jsonLogger({ level: 'info', write: keep }),
    agentStderr: keep,
    demo: false,
  });
  const client = new ManagerClient({ baseUrl: embedded.manager.url, token: embedded.adminToken });
  return { home, embedded, client, tail };
}

async function backupPart(results) {
  const image = benchImage();
  const size = statSync(image).size;
  console.log(`bench/manager: backups of ${image} (${(size / MiB).toFixed(0)} MiB), ${RUNS} run(s) per side`);
  const home = mkdtempSync(join(work, 'manager-home-'));
  const volumes = join(home, 'volumes');
  const locator = join(volumes, 'bench.img');
  // The agent refuses a hard link (a volume must be a file of its own): a copy, holes kept, made before the
  // manager starts; both sides back up that same file, its pages cached from the start.
  mkdirSync(volumes, { recursive: true, mode: 0o700 });
  sh('cp', ['--reflink=auto', '--sparse=always', image, locator]);
  sh('sh', ['-c', `cat ${locator} > /dev/null`]);
  const system = await startSystem(home);
  const runs = [];
  try {
    const [host] = (await system.client.listHosts()).items;
    const volume = await system.client.createVolume({
      name: 'bench',
      host_id: host.id,
      backend: 'local-file',
      locator,
      snapshot: false,
    });
    for (let run = 0; run < RUNS; run++) {
      const order = run % 2 === 0 ? ['cli', 'manager'] : ['manager', 'cli'];
      const entry = { run, order, load_average_1m_before: round(loadavg()[0], 2) };
      for (const side of order) {
        console.log(`bench/manager: run ${run + 1}/${RUNS} — ${side}…`);
        entry[side] = side === 'cli' ? await cliRun(locator, run) : await managerRun(system, volume.id, run);
      }
      entry.load_average_1m_after = round(loadavg()[0], 2);
      runs.push(entry);
      console.log(
        `  first: cli ${entry.cli.first.wall} s, manager ${entry.manager.first.wall} s; ` +
          `again: cli ${entry.cli.again.wall} s, manager ${entry.manager.again.wall} s`,
      );
    }
  } catch (error) {
    console.error(system.tail.slice(-20).join(''));
    throw error;
  } finally {
    await system.embedded.stop();
    rmSync(home, { recursive: true, force: true });
  }
  const summary = {};
  for (const step of ['first', 'again']) {
    const pick = (side, key) => runs.map((r) => r[side][step][key]);
    const cli = median(pick('cli', 'wall'));
    const manager = median(pick('manager', 'wall'));
    summary[step] = {
      cli_wall_median: cli,
      manager_wall_median: manager,
      ratio: round(manager / cli),
      cli_engine_median: median(pick('cli', 'engine')),
      manager_engine_median: median(pick('manager', 'engine')),
      cli_overhead_median: round(median(runs.map((r) => r.cli[step].wall - r.cli[step].engine))),
      manager_overhead_median: round(median(runs.map((r) => r.manager[step].wall - r.manager[step].engine))),
      goal_met: manager / cli <= GOAL_RATIO,
    };
  }
  results.backup = {
    image,
    image_bytes: size,
    snapshot: 'false (a live read, as agent backup reads the image)',
    database: 'PGlite (embedded)',
    goal_ratio: GOAL_RATIO,
    runs,
    summary,
  };
}

// ------------------------------------------------------------------------------ part 2: list latency

/** Fills the inventory: one host, one target, VOLUMES volumes with BACKUPS_PER_VOLUME backups and jobs each. */
async function seed(db) {
  const { insertHost } = await dist('db/hosts.js');
  const { insertTarget } = await dist('db/targets.js');
  const t0 = process.hrtime.bigint();
  const day = 86_400_000;
  const start = Date.now() - 400 * day;
  const host = await insertHost(db, {
    id: randomUUID(),
    name: 'bench-host',
    url: 'http://127.0.0.1:1',
    agentToken: new Uint8Array(60),
    backends: [],
    now: new Date(start),
  });
  const target = await insertTarget(db, {
    id: randomUUID(),
    name: 'bench-target',
    kind: 'filesystem',
    path: '/srv/bench',
    target_key: new Uint8Array(60),
    repository_id: randomUUID(),
    chunker: JSON.stringify({ min_size: 262144, avg_size: 1048576, max_size: 4194304 }),
    created_at: new Date(start),
    updated_at: new Date(start),
  });
  const volumes = [];
  for (let v = 0; v < VOLUMES; v++) {
    const at = new Date(start + v * 60_000);
    volumes.push({
      id: randomUUID(),
      name: `vol-${v}`,
      host_id: host.id,
      backend: 'local-file',
      locator: `/srv/volumes/vol-${v}.img`,
      size: 8 * GiB,
      state: 'available',
      backup_target_id: target.id,
      created_at: at,
      updated_at: at,
    });
  }
  for (let i = 0; i < volumes.length; i += 500)
    await db
      .insertInto('volume')
      .values(volumes.slice(i, i + 500))
      .execute();
  // Backups: a daily backup of every volume for 100 days, each with its job; 1 in 50 failed.
  const batch = 1000;
  let jobs = [];
  let backups = [];
  const flush = async () => {
    if (jobs.length === 0) return;
    await db.insertInto('job').values(jobs).execute();
    await db.insertInto('backup').values(backups).execute();
    jobs = [];
    backups = [];
  };
  let n = 0;
  for (let k = 0; k < BACKUPS_PER_VOLUME; k++) {
    for (const [v, volume] of volumes.entries()) {
      const startedAt = new Date(start + 30 * day + k * day + v * 1000 + (n % 997));
      const finishedAt = new Date(startedAt.getTime() + 300_000);
      const failed = n % 50 === 49;
      const jobId = randomUUID();
      const backupId = randomUUID();
      const size = 8 * GiB;
      const uploaded = k === 0 ? 2 * GiB : 20 * MiB + (n % 1000) * 4096;
      const error = failed
        ? JSON.stringify({ code: 'unavailable', message: 'the bucket could not be reached' })
        : null;
      jobs.push({
        id: jobId,
        kind: 'backup',
        state: failed ? 'failed' : 'succeeded',
        host_id: host.id,
        volume_id: volume.id,
        backup_id: backupId,
        progress: JSON.stringify({ bytes_done: size, bytes_total: size, rate: 0, eta_seconds: null }),
        error,
        result: failed
          ? null
          : JSON.stringify({
              backup_id: backupId,
              volume_id: volume.id,
              volume_name: volume.name,
              manifest_key: `manifests/${volume.id}/${backupId}`,
              created_at: startedAt.toISOString(),
              size,
              bytes_read: size,
              bytes_uploaded: uploaded,
              chunks: 6000,
              chunks_new: 20,
              holes: 10,
              hole_bytes: 4 * GiB,
              seconds: 300,
              snapshot: 'reflink',
            }),
        last_event_seq: 40,
        last_event_at: finishedAt,
        created_at: startedAt,
        started_at: startedAt,
        finished_at: finishedAt,
      });
      backups.push({
        id: backupId,
        volume_id: volume.id,
        backup_target_id: target.id,
        job_id: jobId,
        state: failed ? 'failed' : 'completed',
        manifest_key: `manifests/${volume.id}/${backupId}`,
        started_at: startedAt,
        finished_at: finishedAt,
        size: failed ? null : size,
        bytes_read: failed ? null : size,
        bytes_uploaded: failed ? null : uploaded,
        chunks: failed ? null : 6000,
        chunks_new: failed ? null : 20,
        snapshot: failed ? null : 'reflink',
        error,
      });
      n++;
      if (jobs.length >= batch) await flush();
    }
  }
  await flush();
  return {
    seconds: round(seconds(t0), 1),
    volumes: volumes.map((v) => v.id),
    targetId: target.id,
    backups: n,
  };
}

/** One measurement: the client process (bench/manager-client.mjs) against the running manager. */
async function measureLists(url, token, volumeIds) {
  const load = loadavg()[0];
  const out = await new Promise((resolvePromise, reject) => {
    const child = execFile(
      process.execPath,
      [join(root, 'bench/manager-client.mjs')],
      { encoding: 'utf8', maxBuffer: 1 << 28 },
      (error, stdout, stderr) =>
        error ? reject(new Error(`the list client failed: ${stderr}`)) : resolvePromise(stdout),
    );
    child.stdin.end(JSON.stringify({ url, token, volumeIds, requests: REQUESTS, warmup: WARMUP }));
  });
  return JSON.parse(out).map(({ endpoint, samples, bytes, cursor_pages }) => ({
    endpoint,
    requests: samples.length,
    cursor_pages,
    p50_ms: round(quantile(samples, 0.5), 2),
    p99_ms: round(quantile(samples, 0.99), 2),
    max_ms: round(Math.max(...samples), 2),
    mean_ms: round(samples.reduce((a, b) => a + b, 0) / samples.length, 2),
    mean_answer_bytes: Math.round(bytes / samples.length),
    goal_met: quantile(samples, 0.99) < GOAL_P99_MS,
    load_average_1m_before: round(load, 2),
    load_average_1m_after: round(loadavg()[0], 2),
  }));
}

/**
 * EXPLAIN (ANALYZE, BUFFERS) of the queries behind each list, built by the manager's own dist/db functions
 * on the manager's live database: a plugin keeps each query's operation node, the executor compiles it, and
 * it runs again under EXPLAIN.
 */
async function explainAll(db, volumeIds) {
  const { CompiledQuery } = await import('kysely');
  const { listVolumes } = await dist('db/volumes.js');
  const { listBackups } = await dist('db/backups.js');
  const { listJobs } = await dist('db/jobs.js');
  const { listTargets } = await dist('db/targets.js');
  const nodes = [];
  const spy = db.withPlugin({
    transformQuery: ({ node }) => {
      nodes.push(node);
      return node;
    },
    transformResult: async ({ result }) => result,
  });
  const page = { limit: 100 };
  const cursorOf = (rows, key) => ({ at: rows[99][key], id: rows[99].id });
  const queries = {
    'GET /v1/volumes?limit=100': () => listVolumes(spy, {}, page),
    'GET /v1/volumes?limit=100 (page 2)': async () =>
      listVolumes(spy, {}, { limit: 100, cursor: cursorOf(await listVolumes(db, {}, page), 'created_at') }),
    'GET /v1/backups?limit=100': () => listBackups(spy, {}, page),
    'GET /v1/backups?limit=100 (page 2)': async () =>
      listBackups(spy, {}, { limit: 100, cursor: cursorOf(await listBackups(db, {}, page), 'started_at') }),
    'GET /v1/backups?volume_id=…': () => listBackups(spy, { volumeId: volumeIds[17] }, page),
    'GET /v1/jobs': () => listJobs(spy, {}, page),
    'GET /v1/jobs (page 2)': async () =>
      listJobs(spy, {}, { limit: 100, cursor: cursorOf(await listJobs(db, {}, page), 'created_at') }),
    'GET /v1/backup_targets (list)': () => listTargets(spy, page),
  };
  const plans = {};
  for (const [name, run] of Object.entries(queries)) {
    nodes.length = 0;
    await run();
    const query = db.getExecutor().compileQuery(nodes.at(-1), { queryId: randomUUID() });
    const explained = await db.executeQuery(
      CompiledQuery.raw(`EXPLAIN (ANALYZE, BUFFERS) ${query.sql}`, [...query.parameters]),
    );
    const plan = explained.rows.map((r) => r['QUERY PLAN']).join('\n');
    const time = /Execution Time: ([\d.]+) ms/.exec(plan);
    plans[name] = { sql: query.sql, execution_ms: time ? Number(time[1]) : null, plan };
  }
  return plans;
}

async function listsOn(kind, databaseUrl) {
  const { parseConfig } = await dist('config.js');
  const { startManager } = await dist('server.js');
  const { jsonLogger } = await dist('log.js');
  const { insertToken } = await dist('db/tokens.js');
  const { generateToken, hashToken } = await dist('secrets/tokens.js');
  const home = mkdtempSync(join(work, `manager-lists-${kind}-`));
  const env = { STOWAGE_HOME: home, PORT: '0', LOG_LEVEL: 'warn' };
  if (databaseUrl !== undefined) {
    env.DATABASE_URL = databaseUrl;
    env.MANAGER_MASTER_KEY_FILE = join(home, 'master.key');
    const { loadMasterKey } = await dist('secrets/master-key.js');
    loadMasterKey(env.MANAGER_MASTER_KEY_FILE, { create: true });
  }
  const config = parseConfig(env);
  const logger = jsonLogger({ level: 'warn' });
  const manager = await startManager(config, { logger });
  const out = { database: kind };
  try {
    console.log(
      `bench/manager: ${kind}: inserting ${VOLUMES} volumes, ${VOLUMES * BACKUPS_PER_VOLUME} backups and jobs…`,
    );
    const seeded = await seed(manager.ctx.db);
    out.seed_seconds = seeded.seconds;
    out.rows = { volumes: VOLUMES, backups: seeded.backups, jobs: seeded.backups };
    const token = generateToken();
    await insertToken(manager.ctx.db, {
      id: randomUUID(),
      name: 'bench',
      role: 'admin',
      hostId: null,
      hash: hashToken(token),
    });
    console.log(`bench/manager: ${kind}: ${REQUESTS} requests per endpoint, as loaded (no ANALYZE)…`);
    out.as_loaded = await measureLists(manager.url, token, seeded.volumes);
    out.plans_as_loaded = await explainAll(manager.ctx.db, seeded.volumes);
    const { sql } = await import('kysely');
    const t0 = process.hrtime.bigint();
    await sql`ANALYZE`.execute(manager.ctx.db);
    out.analyze_seconds = round(seconds(t0), 2);
    console.log(`bench/manager: ${kind}: ${REQUESTS} requests per endpoint, after ANALYZE…`);
    out.analyzed = await measureLists(manager.url, token, seeded.volumes);
    out.plans_after_analyze = await explainAll(manager.ctx.db, seeded.volumes);
  } finally {
    await manager.stop();
    rmSync(home, { recursive: true, force: true });
  }
  return out;
}

async function listsPart(results) {
  results.lists = { goal_p99_ms: GOAL_P99_MS, warmup_requests: WARMUP, databases: [] };
  results.lists.databases.push(await listsOn('pglite'));
  if (has('--no-postgres')) return;
  const { startPostgres } = await import('./manager-postgres.mjs');
  const server = await startPostgres({ autovacuum: 'off' });
  try {
    results.lists.postgres_version = server.version;
    results.lists.databases.push(await listsOn('postgres', await server.createDatabase('bench')));
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------- output

/** 'GET /v1/jobs (page 2)' → 'GET /v1/jobs': the route a plan belongs to, as the endpoints' names begin. */
const planRoute = (name) => name.split(' (')[0];

/** The database's own time for an endpoint's first page (EXPLAIN ANALYZE's execution times, summed). */
function queryMs(plans, endpoint) {
  let sum = 0;
  for (const [name, p] of Object.entries(plans)) {
    if (name.includes('(page 2)') || !endpoint.startsWith(planRoute(name))) continue;
    sum += p.execution_ms ?? 0;
  }
  return sum;
}

function render(results) {
  const lines = [`Measured ${results.date.slice(0, 16).replace('T', ' ')} UTC on ${results.machine}.`, ''];
  if (results.backup) {
    const b = results.backup;
    lines.push(
      `Backup of ${b.image} (${(b.image_bytes / MiB).toFixed(0)} MiB) through the manager (API → agent serve → ` +
        `filesystem target; volume snapshot: false) against \`agent backup\`, medians of ${b.runs.length} run(s):`,
      '',
      '| step | agent backup | manager | ratio (goal ≤ 1.05×) | engine: cli / manager | outside the engine: cli / manager |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const [step, label] of [
      ['first', 'first backup (fresh repository)'],
      ['again', 'unchanged re-backup'],
    ]) {
      const s = b.summary[step];
      lines.push(
        `| ${label} | ${s.cli_wall_median.toFixed(2)} s | ${s.manager_wall_median.toFixed(2)} s | ` +
          `${s.ratio.toFixed(2)}× ${s.goal_met ? '(met)' : '(NOT MET)'} | ${s.cli_engine_median.toFixed(2)} / ` +
          `${s.manager_engine_median.toFixed(2)} s | ${s.cli_overhead_median.toFixed(2)} / ${s.manager_overhead_median.toFixed(2)} s |`,
      );
    }
    lines.push('');
  }
  if (results.lists) {
    const l = results.lists;
    for (const d of l.databases) {
      lines.push(
        `List latency on ${d.database === 'pglite' ? 'PGlite (embedded)' : `PostgreSQL (${l.postgres_version})`}: ` +
          `${d.rows.volumes} volumes, ${d.rows.backups} backups, ${d.rows.jobs} jobs; sequential HTTP requests, ms:`,
        '',
        '| endpoint | p50 as loaded | p99 as loaded | p50 after ANALYZE | p99 after ANALYZE | goal p99 < 50 ms | query alone (EXPLAIN ANALYZE): as loaded / after |',
        '| --- | ---: | ---: | ---: | ---: | --- | ---: |',
      );
      for (const [i, a] of d.as_loaded.entries()) {
        const z = d.analyzed[i];
        const met =
          a.goal_met && z.goal_met
            ? 'met'
            : !a.goal_met && !z.goal_met
              ? 'NOT MET'
              : a.goal_met
                ? 'met as loaded only'
                : 'met after ANALYZE only';
        lines.push(
          `| ${a.endpoint} | ${a.p50_ms.toFixed(1)} | ${a.p99_ms.toFixed(1)} | ${z.p50_ms.toFixed(1)} | ${z.p99_ms.toFixed(1)} | ${met} | ` +
            `${queryMs(d.plans_as_loaded, a.endpoint).toFixed(1)} / ${queryMs(d.plans_after_analyze, a.endpoint).toFixed(1)} |`,
        );
      }
      lines.push('');
    }
  }
  return lines.join('\n');
}

async function main() {
  const others = otherBenchmarks();
  if (others.length > 0 && !has('--force')) {
    console.error(
      `bench/manager: another benchmark is running; not starting (--force to run anyway):\n${others.join('\n')}`,
    );
    process.exit(3);
  }
  mkdirSync(work, { recursive: true });
  const results = {
    machine: machine(),
    date: new Date().toISOString(),
    node: process.version,
    command: `node bench/manager.mjs${argv.length ? ` ${argv.join(' ')}` : ''}`,
    quick,
  };
  if (!has('--no-backup')) await backupPart(results);
  if (!has('--no-lists')) await listsPart(results);
  const outFile = resolve(option('--out') ?? join(root, 'bench/results/manager.json'));
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\n${render(results)}`);
  // A miss's plans, so the table's reader sees where the time goes.
  for (const d of results.lists?.databases ?? []) {
    for (const [state, plans] of [
      ['as_loaded', 'plans_as_loaded'],
      ['analyzed', 'plans_after_analyze'],
    ]) {
      const missed = d[state].filter((r) => !r.goal_met).map((r) => r.endpoint);
      if (missed.length === 0) continue;
      console.log(
        `\n${d.database}, ${state.replace('_', ' ')}: p99 ≥ ${GOAL_P99_MS} ms for ${missed.join('; ')}.`,
      );
      for (const [name, p] of Object.entries(d[plans])) {
        if (missed.some((m) => m.startsWith(planRoute(name)))) console.log(`\n-- ${name}\n${p.plan}`);
      }
    }
  }
  console.log(`bench/manager: wrote ${outFile}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
