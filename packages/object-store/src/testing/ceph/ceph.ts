import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { TestS3Server } from '../s3-server.js';

const run = promisify(execFile);

// The scripts live in src/ and are not copied to dist/; from either, the package root is three levels up.
const scriptDirectory = fileURLToPath(new URL('../../../src/testing/ceph/', import.meta.url));

/** The reason a Ceph RGW cannot be started here, or undefined when the binaries are all on PATH. */
export async function cephUnavailableReason(): Promise<string | undefined> {
  const missing: string[] = [];
  for (const binary of ['radosgw', 'radosgw-admin', 'ceph-mon', 'ceph-osd', 'ceph', 'monmaptool', 'curl']) {
    try {
      await run('sh', ['-c', `command -v ${binary}`]);
    } catch {
      missing.push(binary);
    }
  }
  return missing.length === 0
    ? undefined
    : `${missing.join(', ')} not installed (Debian: apt-get install radosgw ceph-mon ceph-osd)`;
}

/**
 * Starts a throwaway Ceph (monitor, memstore OSD, RADOS Gateway) on free ports under a fresh temp
 * directory; about 1–2 s. `stop()` kills the daemons and removes the directory.
 */
export async function startCeph(options: { buckets?: readonly string[] } = {}): Promise<TestS3Server> {
  const server = await startCephCluster();
  const buckets = options.buckets ?? [];
  if (buckets.length === 0) return server;
  try {
    await createBuckets(server, buckets);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { ...server, buckets };
}

/** Creates buckets through the S3 API, as a user would (the SDK is loaded only here). */
async function createBuckets(server: TestS3Server, buckets: readonly string[]): Promise<void> {
  const { CreateBucketCommand, S3Client } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
  try {
    for (const bucket of buckets) await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

async function startCephCluster(): Promise<TestS3Server> {
  // A port picked free can be taken before a daemon binds it (test files start clusters in parallel), and a
  // young cluster now and then refuses its OSD; a fresh try with new ports and a new directory covers both.
  const attempts = 4;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCephOnce();
    } catch (error) {
      if (attempt >= attempts) throw error;
    }
  }
}

async function startCephOnce(): Promise<TestS3Server> {
  const directory = await mkdtemp(join(tmpdir(), 'stowage-ceph-'));
  const accessKeyId = `STOWAGE${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  // The daemons fork away from us: if this process dies without calling stop (a killed test run), a
  // watchdog stops them and removes the directory once it is gone.
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'tail --pid="$1" -f /dev/null; bash "$2" "$3"; rm -rf "$3"',
      'ceph-watchdog',
      String(process.pid),
      join(scriptDirectory, 'stop-ceph.sh'),
      directory,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  const stop = async () => {
    // The watchdog leads its own process group (detached): end it and its tail together.
    if (watchdog.pid !== undefined) {
      try {
        process.kill(-watchdog.pid);
      } catch {
        // already gone
      }
    }
    await run('bash', [join(scriptDirectory, 'stop-ceph.sh'), directory]).catch(() => {});
    await rm(directory, { recursive: true, force: true });
  };
  try {
    const [rgwPort, monPort] = await freePorts(2);
    await run(
      'bash',
      [
        join(scriptDirectory, 'start-ceph.sh'),
        directory,
        String(rgwPort),
        String(monPort),
        accessKeyId,
        secretAccessKey,
      ],
      { timeout: 90_000 },
    );
    return { endpoint: `http://127.0.0.1:${rgwPort}`, accessKeyId, secretAccessKey, buckets: [], stop };
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    const logs = await run('sh', ['-c', `tail -n 5 "${directory}"/log/*.log`]).catch(() => ({ stdout: '' }));
    await stop();
    throw new Error(`Ceph did not start: ${(error as Error).message}\n${stderr ?? ''}\n${logs.stdout}`, {
      cause: error,
    });
  }
}

/** Ports the kernel reports free right now (distinct). A tiny race remains; tests accept it. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
