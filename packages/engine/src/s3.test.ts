// The engine over real S3 protocol servers, with faults: backup → restore byte-exact → verify → re-backup, on
// s3rver (always) and on a throwaway Ceph RGW (when radosgw is installed; required in CI). Faults come from
// `withFaults` under the default store stack, and, for real connection resets, from a TCP proxy that kills
// connections in the middle of a response.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDefaultStoreStack,
  createSeededRandom,
  type InjectedFault,
  type ObjectStore,
  ObjectStoreError,
  openObjectStore,
  type RandomSource,
  type RetryEvent,
  S3ObjectStore,
  withFaults,
} from '@stowage/object-store';
import {
  cephUnavailableReason,
  type StallingProxy,
  startCeph,
  startS3rver,
  startStallingProxy,
  type TestS3Server,
} from '@stowage/object-store/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupVolume } from './backup.js';
import { checkRepository } from './check.js';
import { Repository } from './repository.js';
import { restoreBackup } from './restore.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { seededBytes, sha256File, writeImage, writeTestVolume } from './testing/volumes.js';
import { verifyBackup } from './verify.js';
import { openVolumeSource } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

// Small chunks so a few MiB of test data makes dozens of objects (and as many chances for a fault).
const PARAMS = TEST_CHUNKER_PARAMS;
const FAST_KDF = TEST_KDF;
const PASS = TEST_PASSPHRASE;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-engine-s3-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A bare S3ObjectStore opened the way the apps open one: from a store URL. */
function openS3(
  server: TestS3Server,
  bucket: string,
  prefix: string,
  endpoint = server.endpoint,
): S3ObjectStore {
  const url = `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&path_style=true`;
  const store = openObjectStore(url, {
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
  if (!(store instanceof S3ObjectStore)) throw new Error(`${url} did not open an S3ObjectStore`);
  return store;
}

interface FaultLog {
  faults: InjectedFault[];
  retries: RetryEvent[];
}

/** The default stack over `withFaults(bare)`: every op fails with probability `rate`, retried `attempts` times. */
function faultyStack(
  bare: ObjectStore,
  options: { rate: number; seed: number; attempts: number; ops?: InjectedFault['op'][] },
): { store: ObjectStore; log: FaultLog } {
  const random = createSeededRandom(options.seed);
  const log: FaultLog = { faults: [], retries: [] };
  const faulty = withFaults(bare, {
    rate: options.rate,
    random,
    ...(options.ops ? { ops: options.ops } : {}),
    onFault: (fault) => log.faults.push(fault),
  });
  const store = createDefaultStoreStack(faulty, {
    retry: {
      attempts: options.attempts,
      baseDelayMs: 1,
      maxDelayMs: 10,
      random,
      onRetry: (event) => log.retries.push(event),
    },
  });
  return { store, log };
}

/** The default stack with no faults, for setting up and for looking at what a failed run left behind. */
function cleanStack(bare: ObjectStore): ObjectStore {
  return createDefaultStoreStack(bare, { retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 10 } });
}

async function backupFile(repository: Repository, workers: ChunkWorkers, path: string, volumeName = 'vol') {
  const source = await openVolumeSource(path);
  try {
    // Small packs: a few MiB of test data (which compresses well) makes dozens of them, as a large volume does.
    return await backupVolume({ repository, workers, source, volumeName, packTarget: 64 << 10 });
  } finally {
    await source.close();
  }
}

async function collectKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key);
  return keys;
}

/**
 * Backup → restore byte-exact → verify clean → re-backup uploads nothing, on `repository` (whose store may
 * fail at any moment). Returns the first backup's summary.
 */
async function roundTrip(repository: Repository, name: string, size: number) {
  const workers = new ChunkWorkers(repository.targetKey, { threads: 2 });
  try {
    const image = join(dir, `${name}.img`);
    await writeTestVolume(image, size, name);
    const first = await backupFile(repository, workers, image);
    expect(first.size).toBe(size);
    expect(first.chunksNew).toBeGreaterThan(10);
    expect(first.holes).toBeGreaterThan(0);

    const out = join(dir, `${name}.out`);
    const ref = await repository.resolveBackup(first.backupId);
    const restored = await restoreBackup({ repository, workers, backup: ref, targetPath: out });
    expect(restored.size).toBe(size);
    expect(await sha256File(out)).toBe(await sha256File(image));

    const report = await verifyBackup({ repository, workers, backup: ref });
    expect(report.problems).toEqual([]);
    expect(report.chunksChecked).toBe(report.chunksTotal);

    const again = await backupFile(repository, workers, image);
    expect(again.chunksNew).toBe(0);
    expect(again.chunks).toBe(first.chunks);
    expect((await repository.listBackups()).backups.map((b) => b.backupId).sort()).toEqual(
      [first.backupId, again.backupId].sort(),
    );
    return first;
  } finally {
    await workers.close();
  }
}

describe('engine on s3rver', () => {
  let server: TestS3Server;
  const bucket = 'stowage';
  const stores: S3ObjectStore[] = [];
  const bareAt = (prefix: string, endpoint?: string) => {
    const store = openS3(server, bucket, prefix, endpoint);
    stores.push(store);
    return store;
  };
  beforeAll(async () => {
    server = await startS3rver({ buckets: [bucket] });
  });
  afterAll(async () => {
    for (const store of stores) store.destroy();
    await server?.stop();
  });

  it('backs up, restores byte-exact and verifies while S3 requests fail at random', async () => {
    const bare = bareAt('faults');
    const { store, log } = faultyStack(bare, { rate: 0.15, seed: 7, attempts: 10 });
    const repository = await Repository.init(store, { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
    await roundTrip(repository, 's3rver-faults', 6 << 20);
    // The run really was hit, on the way in and on the way out, and every fault was retried away.
    const ops = new Set(log.faults.map((f) => f.op));
    // (HEADs are few since packs: a backup looks no chunk up, so they are not counted on.)
    for (const op of ['put', 'get'] as const) expect(ops.has(op)).toBe(true);
    expect(log.faults.length).toBeGreaterThan(10);
    expect(log.faults.some((f) => f.fault.endsWith('-after'))).toBe(true);
    expect(log.retries.length).toBe(log.faults.length);
    // A repository made under faults opens cleanly afterwards.
    const reopened = await Repository.open(cleanStack(bare), { passphrase: PASS });
    expect(reopened.config.chunker).toEqual(PARAMS);
  });

  it('a backup whose puts fail past the retry budget rejects naming the key, and commits no manifest', async () => {
    const bare = bareAt('put-budget');
    await Repository.init(cleanStack(bare), { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
    const attempts = 3;
    const { store, log } = faultyStack(bare, { rate: 1, seed: 11, attempts, ops: ['put'] });
    const repository = await Repository.open(store, { passphrase: PASS });
    const workers = new ChunkWorkers(repository.targetKey, { threads: 2 });
    try {
      const image = join(dir, 'put-budget.img');
      await writeImage(image, 2 << 20, [{ offset: 0, data: seededBytes('put-budget', 2 << 20) }]);
      const error = await backupFile(repository, workers, image).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ObjectStoreError);
      const failed = error as ObjectStoreError;
      expect(failed.kind).toBe('transient');
      expect(failed.op).toBe('put');
      expect(failed.key).toMatch(/^(packs|chunks|index)\//);
      expect(failed.message).toContain(failed.key);
      // Tried exactly `attempts` times, then given up.
      expect(log.faults.filter((f) => f.key === failed.key)).toHaveLength(attempts);
      expect(await collectKeys(cleanStack(bare), 'manifests/')).toEqual([]);
      expect(await repository.listBackups()).toEqual({ backups: [], damaged: [] });
    } finally {
      await workers.close();
    }
  });

  it('a restore whose chunk GETs fail past the retry budget rejects and leaves no target file', async () => {
    const bare = bareAt('get-budget');
    const clean = cleanStack(bare);
    const setup = await Repository.init(clean, { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
    const workers = new ChunkWorkers(setup.targetKey, { threads: 2 });
    try {
      const image = join(dir, 'get-budget.img');
      await writeImage(image, 2 << 20, [{ offset: 0, data: seededBytes('get-budget', 2 << 20) }]);
      const summary = await backupFile(setup, workers, image);

      // Config, key file and manifest read fine; every chunk GET fails, every time.
      const attempts = 3;
      const { store: failing, log } = faultyStack(bare, { rate: 1, seed: 13, attempts, ops: ['get'] });
      const chunkGetsFail: ObjectStore = {
        location: bare.location,
        head: (key) => clean.head(key),
        get: (key, range) => (key.startsWith('packs/') ? failing.get(key, range) : clean.get(key, range)),
        put: (key, body, options) => clean.put(key, body, options),
        delete: (key) => clean.delete(key),
        deleteMany: (keys) => clean.deleteMany(keys),
        list: (prefix) => clean.list(prefix),
      };
      const repository = await Repository.open(chunkGetsFail, { passphrase: PASS });
      const out = join(dir, 'get-budget.out');
      const error = await restoreBackup({
        repository,
        workers,
        backup: await repository.resolveBackup(summary.backupId),
        targetPath: out,
        concurrency: 1, // one ranged GET at a time: the first one's retries are all there is
      }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ObjectStoreError);
      const failed = error as ObjectStoreError;
      expect(failed.kind).toBe('transient');
      expect(failed.op).toBe('get');
      expect(failed.key).toMatch(/^packs\//);
      expect(failed.message).toContain(failed.key);
      expect(log.faults.filter((f) => f.key === failed.key)).toHaveLength(attempts);
      await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await workers.close();
    }
  });

  it('a cancel while S3 stalls aborts the requests: backup, restore, verify and check end at once, sockets closed', async () => {
    const proxy = await startStallingProxy(server.endpoint);
    const bare = bareAt('stall', proxy.endpoint);
    const clean = cleanStack(bare);
    const setup = await Repository.init(clean, { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
    const workers = new ChunkWorkers(setup.targetKey, { threads: 2 });
    try {
      const image = join(dir, 'stall.img');
      await writeImage(image, 4 << 20, [{ offset: 0, data: seededBytes('stall', 4 << 20) }]);
      const committed = await backupFile(setup, workers, image);
      const fresh = join(dir, 'stall-new.img'); // what the cancelled backup reads: none of it stored yet
      await writeImage(fresh, 4 << 20, [{ offset: 0, data: seededBytes('stall-new', 4 << 20) }]);
      const ref = await setup.resolveBackup(committed.backupId);

      // The network dies at a pack request of `op` (the third GET, the first PUT: a 4 MiB backup stores one
      // pack): everything on the wire from then on hangs.
      const dyingAfter = async (op: 'put' | 'get') => {
        let seen = 0;
        const at = op === 'put' ? 1 : 3;
        const store: ObjectStore = {
          location: clean.location,
          head: (key, options) => clean.head(key, options),
          get: (key, range, options) => {
            if (op === 'get' && key.startsWith('packs/') && ++seen === at) proxy.stall();
            return clean.get(key, range, options);
          },
          put: (key, body, options) => {
            if (op === 'put' && key.startsWith('packs/') && ++seen === at) proxy.stall();
            return clean.put(key, body, options);
          },
          delete: (key, options) => clean.delete(key, options),
          deleteMany: (keys, options) => clean.deleteMany(keys, options),
          list: (prefix, options) => clean.list(prefix, options),
        };
        return Repository.open(store, { passphrase: PASS });
      };

      const jobs: Array<[string, 'put' | 'get', (r: Repository, signal: AbortSignal) => Promise<unknown>]> = [
        [
          'backup',
          'put',
          async (repository, signal) => {
            const source = await openVolumeSource(fresh);
            try {
              return await backupVolume({
                repository,
                workers,
                source,
                volumeName: 'stall-new',
                signal,
              });
            } finally {
              await source.close();
            }
          },
        ],
        [
          'restore',
          'get',
          (repository, signal) =>
            restoreBackup({ repository, workers, backup: ref, targetPath: join(dir, 'stall.out'), signal }),
        ],
        ['verify', 'get', (repository, signal) => verifyBackup({ repository, workers, backup: ref, signal })],
        [
          'check',
          'get',
          (repository, signal) => checkRepository({ repository, workers, readData: 'all', signal }),
        ],
      ];
      for (const [name, op, run] of jobs) {
        const repository = await dyingAfter(op);
        const controller = new AbortController();
        const job = run(repository, controller.signal).catch((error: unknown) => error);
        await proxy.waitForStalled(1);
        await new Promise((resolve) => setTimeout(resolve, 50)); // the other requests in flight stall too
        const abortedAt = performance.now();
        controller.abort();
        expect(await job, name).toMatchObject({ code: 'aborted' });
        expect(performance.now() - abortedAt, `${name} ends at once`).toBeLessThan(1_000);
        // Given up, not raced: the client closed every connection that had a request stalled on it.
        expect(await closedSoon(proxy, 1_000), `${name}: stalled sockets closed`).toBe(true);
        proxy.resume();
      }
      await expect(stat(join(dir, 'stall.out'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await setup.listBackups()).backups.map((b) => b.backupId)).toEqual([committed.backupId]);
    } finally {
      await workers.close();
      await proxy.close();
    }
  });

  it('backs up and restores byte-exact through real connection resets in the middle of responses', async () => {
    const proxy = await startResetProxy(server.endpoint, {
      rate: 0.08,
      random: createSeededRandom(21),
    });
    try {
      const bare = bareAt('resets', proxy.endpoint);
      const retries: RetryEvent[] = [];
      const store = createDefaultStoreStack(bare, {
        retry: {
          attempts: 12,
          baseDelayMs: 1,
          maxDelayMs: 10,
          random: createSeededRandom(22),
          onRetry: (event) => retries.push(event),
        },
      });
      const repository = await Repository.init(store, { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
      await roundTrip(repository, 's3rver-resets', 6 << 20);
      // Connections really were cut; every cut answer failed its request (none passed as complete) and was
      // retried as transient.
      expect(proxy.resets).toBeGreaterThan(5);
      expect(retries.length).toBe(proxy.resets);
      for (const event of retries) expect(event.error).toMatchObject({ kind: 'transient' });
    } finally {
      await proxy.close();
    }
  });
});

// CI sets STOWAGE_REQUIRE_CEPH=1: there a missing radosgw is a failure, never a skip.
const required = process.env.STOWAGE_REQUIRE_CEPH === '1';
const unavailable = await cephUnavailableReason();

describe.runIf(required && unavailable !== undefined)('Ceph RGW (required by STOWAGE_REQUIRE_CEPH=1)', () => {
  it('has radosgw installed', () => {
    expect.fail(`STOWAGE_REQUIRE_CEPH=1 but Ceph cannot run here: ${unavailable}`);
  });
});

describe.skipIf(unavailable !== undefined)(
  `engine on Ceph RGW${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    let ceph: TestS3Server;
    const bucket = 'stowage-engine';
    const stores: S3ObjectStore[] = [];
    const bareAt = (prefix: string) => {
      const store = openS3(ceph, bucket, prefix);
      stores.push(store);
      return store;
    };
    beforeAll(async () => {
      ceph = await startCeph({ buckets: [bucket] });
    }, 120_000);
    afterAll(async () => {
      for (const store of stores) store.destroy();
      await ceph?.stop();
    });

    it('backs up, restores byte-exact and verifies while S3 requests fail at random', async () => {
      const bare = bareAt('faults');
      // Made without faults: see the next test for what a lost answer to the config put does to init.
      await Repository.init(cleanStack(bare), { passphrase: PASS, chunker: PARAMS, kdf: FAST_KDF });
      const { store, log } = faultyStack(bare, { rate: 0.15, seed: 5, attempts: 10 });
      const repository = await Repository.open(store, { passphrase: PASS });
      await roundTrip(repository, 'ceph-faults', 4 << 20);
      for (const op of ['put', 'get'] as const) expect(log.faults.some((f) => f.op === op)).toBe(true);
      expect(log.retries.length).toBe(log.faults.length);
    });

    // KNOWN ENGINE BUG (packages/engine/src/repository.ts, Repository.init): `config` is written with
    // If-None-Match: *, which RGW honours. When that put lands but its answer is lost (a reset), the retry
    // gets 412 and init rejects with `precondition-failed`, though the repository it made is complete and
    // opens. This test pins today's behaviour; when init learns to recognise its own config (read it back and
    // compare), flip the first expectation to `resolves`.
    it('init whose config put lands but loses its answer still succeeds, and the repository is whole', async () => {
      const bare = bareAt('init-reset');
      let lost = false;
      const losesFirstConfigAnswer: ObjectStore = {
        location: bare.location,
        head: (key) => bare.head(key),
        get: (key, range) => bare.get(key, range),
        put: async (key, body, options) => {
          await bare.put(key, body, options);
          if (key === 'config' && !lost) {
            lost = true;
            throw new ObjectStoreError('transient', `put ${key}: read ECONNRESET (simulated)`, {
              op: 'put',
              key,
            });
          }
        },
        delete: (key) => bare.delete(key),
        deleteMany: (keys) => bare.deleteMany(keys),
        list: (prefix) => bare.list(prefix),
      };
      const init = Repository.init(cleanStack(losesFirstConfigAnswer), {
        passphrase: PASS,
        chunker: PARAMS,
        kdf: FAST_KDF,
      });
      await expect(init).resolves.toBeInstanceOf(Repository);
      expect(lost).toBe(true);
      const opened = await Repository.open(cleanStack(bare), { passphrase: PASS });
      expect(opened.config.chunker).toEqual(PARAMS);
    });
  },
);

/** True once every connection the proxy stalled has been closed by its client, within `ms`. */
async function closedSoon(proxy: StallingProxy, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (proxy.stalled.some((connection) => connection.clientClosedAt === undefined)) {
    if (performance.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

interface ResetProxy {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** Connections cut so far. */
  readonly resets: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy to `target` that cuts connections in the middle of responses: each piece of a response read
 * from the server (a whole small answer, or up to 64 KiB of a body) is, with probability `rate`, passed on
 * only in part, then the client side is reset (RST) and the server side closed. Requests pass untouched, so
 * a PUT whose answer is cut has landed: the lost-answer case, for real.
 */
async function startResetProxy(
  target: string,
  options: { rate: number; random: RandomSource },
): Promise<ResetProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let resets = 0;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    track(client);
    track(upstream);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.on('data', (data: Buffer) => {
      if (client.destroyed) return;
      if (options.random() >= options.rate) {
        if (!client.write(data)) {
          upstream.pause();
          client.once('drain', () => upstream.resume());
        }
        return;
      }
      // Part of this piece of the response goes through, then the connection dies.
      client.write(data.subarray(0, Math.floor(options.random() * data.length)));
      resets++;
      client.resetAndDestroy();
      upstream.destroy();
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    get resets() {
      return resets;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
