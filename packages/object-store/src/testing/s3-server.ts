import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface TestS3Server {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The buckets that exist from the start. */
  readonly buckets: readonly string[];
  stop(): Promise<void>;
}

export interface StartS3rverOptions {
  readonly buckets?: readonly string[];
}

// s3rver signs continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider: without
// --openssl-legacy-provider every listing that needs a second page (past 1,000 keys) fails with a 500
// ("error:0308010C:digital envelope routines::unsupported"). So it runs in its own `node` with that flag,
// and the flag stays out of the test process. The child exits when its stdin closes, so it cannot outlive
// a test run that is killed.
const CHILD_SCRIPT = `
const S3rver = require(process.argv[1]);
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory: process.argv[2],
  configureBuckets: JSON.parse(process.argv[3]).map((name) => ({ name })),
});
server.run().then(({ port }) => process.stdout.write(JSON.stringify({ port }) + '\\n'));
process.stdin.on('end', () => server.close(() => process.exit(0)));
process.stdin.resume();
`;

/** Starts `s3rver` 3.7.1 in a child process on a free port, with its files in a fresh temp directory. */
export async function startS3rver(options: StartS3rverOptions = {}): Promise<TestS3Server> {
  const buckets = options.buckets ?? ['stowage'];
  const s3rverPath = createRequire(import.meta.url).resolve('s3rver');
  const directory = await mkdtemp(join(tmpdir(), 'stowage-s3rver-'));
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', CHILD_SCRIPT, s3rverPath, directory, JSON.stringify(buckets)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => {
    stderr = (stderr + data.toString()).slice(-4000);
  });
  try {
    const port = await readPort(child, () => stderr);
    return {
      endpoint: `http://127.0.0.1:${port}`,
      accessKeyId: 'S3RVER',
      secretAccessKey: 'S3RVER',
      buckets,
      async stop() {
        await stopChild(child);
        await rm(directory, { recursive: true, force: true });
      },
    };
  } catch (error) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
}

function readPort(child: ChildProcess, stderr: () => string): Promise<number> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => fail(new Error('s3rver did not start within 15 s')), 15_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      lines.close();
      reject(new Error(`${error.message}\n${stderr()}`));
    };
    child.once('error', fail);
    child.once('exit', (code, signal) =>
      fail(new Error(`s3rver exited early (code ${code}, signal ${signal})`)),
    );
    lines.once('line', (line) => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      const port = (JSON.parse(line) as { port?: unknown }).port;
      if (typeof port === 'number') resolve(port);
      else fail(new Error(`s3rver printed ${line}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.stdin?.end();
  });
}
