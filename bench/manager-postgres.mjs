// A throwaway PostgreSQL cluster for bench/manager.mjs, after apps/manager/src/testing/postgres.ts (which is a
// test helper and not in dist/): Debian's newest server binaries, initdb into a temporary directory, fsync off,
// 127.0.0.1 on a free port. As root the cluster belongs to the `postgres` user and its commands run as it.
import { execFile as execFileCallback } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFile = promisify(execFileCallback);

/** /usr/lib/postgresql/<newest>/bin, or undefined. */
export function findServerBinaries() {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  return newest === undefined ? undefined : join(root, newest, 'bin');
}

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function asServerUser(command, args) {
  if (process.getuid?.() !== 0) return [command, args];
  return ['runuser', ['-u', 'postgres', '--', command, ...args]];
}

/**
 * Starts a cluster; `settings` are extra `-c name=value` server settings (the bench turns autovacuum off so
 * that "no statistics yet" is a state it controls). Resolves to { url, version, createDatabase, stop }.
 */
export async function startPostgres(settings = {}) {
  const bin = findServerBinaries();
  if (bin === undefined)
    throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)');
  const dir = mkdtempSync(join(tmpdir(), 'stowage-bench-pg-'));
  if (process.getuid?.() === 0) {
    const { stdout: uid } = await execFile('id', ['-u', 'postgres']);
    const { stdout: gid } = await execFile('id', ['-g', 'postgres']);
    chownSync(dir, Number(uid.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  const run = (command, args) => execFile(...asServerUser(join(bin, command), args));
  await run('initdb', [
    '-D',
    data,
    '-U',
    'postgres',
    '-A',
    'trust',
    '-E',
    'UTF8',
    '--no-locale',
    '--no-sync',
  ]);
  const port = await freePort();
  const extra = Object.entries(settings)
    .map(([k, v]) => ` -c ${k}=${v}`)
    .join('');
  const options = `-k ${dir} -p ${port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200${extra}`;
  await run('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-s', '-o', options, 'start']);
  const url = (database) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const { stdout: version } = await execFile(join(bin, 'postgres'), ['--version']);
  return {
    url: url('postgres'),
    version: version.trim(),
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad database name ${name}`);
      const pg = (await import('pg')).default;
      const client = new pg.Client({ connectionString: url('postgres') });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async stop() {
      await run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-s', 'stop']).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
