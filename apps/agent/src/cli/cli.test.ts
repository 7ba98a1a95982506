import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { chunkBuffer, DEFAULT_CHUNKER_PARAMS } from '@stowage/chunker';
import { Repository } from '@stowage/engine';
import { seededBytes, sha256File, writeImage, writeTestVolume } from '@stowage/engine/testing';
import { decodePackIndex, PACK_INDEX_PREFIX } from '@stowage/format';
import { openObjectStore } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The real `agent` command in a child process, run from source through tsx (as `npx agent` runs dist/).
const main = fileURLToPath(new URL('./main.ts', import.meta.url));
const PASS = 'cli test passphrase';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function agent(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<Result> & { child: ChildProcess } {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', main, ...args], {
    env: { ...process.env, STOWAGE_PASSPHRASE: PASS, STOWAGE_THREADS: '2', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<Result>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return Object.assign(done, { child });
}

let dir: string;
let repo: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-cli-'));
  repo = `file://${dir}/repo`;
  const init = await agent(['repo', 'init', '--repo', repo, '--min', '16K', '--avg', '64K', '--max', '256K']);
  expect(init.stderr).toBe('');
  expect(init.code).toBe(0);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the command line in this process (as the binary does, minus the process): for what touches no volume. */
async function inProcess(args: string[]): Promise<Result> {
  const { run } = await import('./main.js');
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => {
    out += d;
  });
  stderr.on('data', (d) => {
    err += d;
  });
  const code = await run(args, {
    env: { ...process.env, STOWAGE_PASSPHRASE: PASS, STOWAGE_THREADS: '2' },
    stdout: stdout as unknown as NodeJS.WriteStream,
    stderr: stderr as unknown as NodeJS.WriteStream,
    stdin: process.stdin,
    signal: new AbortController().signal,
  });
  return { code, stdout: out, stderr: err };
}

describe('agent CLI', () => {
  it('backs up, lists, verifies and restores a volume byte-exact', async () => {
    const image = join(dir, 'vol.img');
    await writeTestVolume(image, 6 << 20, 'cli');
    const b = await agent(['backup', image, '--repo', repo, '--volume', 'web-1', '--json']);
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    const summary = summaryOf(b.stdout, 6 << 20);
    for (const field of [
      'backup_id',
      'size',
      'bytes_read',
      'bytes_uploaded',
      'chunks',
      'chunks_new',
      'holes',
      'seconds',
    ]) {
      expect(summary).toHaveProperty(field);
    }
    expect(summary.size).toBe(6 << 20);
    expect(summary.bytes_read).toBe(6 << 20);

    const plain = await agent(['backup', image, '--repo', repo, '--volume', 'web-1']);
    expect(plain.code).toBe(0);
    expect(plain.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);

    const list = await agent(['ls', '--repo', repo, '--json']);
    expect(list.code).toBe(0);
    const backups = JSON.parse(list.stdout);
    expect(backups.map((x: { backup_id: string }) => x.backup_id)).toContain(summary.backup_id);
    expect(backups[0]).toMatchObject({ volume: 'web-1', size: 6 << 20 });

    const v = await agent(['verify', summary.backup_id, '--repo', repo]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain('ok');
    const vs = await agent([
      'verify',
      summary.backup_id.slice(0, 8),
      '--repo',
      repo,
      '--sample',
      '25',
      '--json',
    ]);
    expect(vs.code).toBe(0);
    expect(summaryOf(vs.stdout).ok).toBe(true);

    const out = join(dir, 'restored.img');
    const r = await agent(['restore', summary.backup_id, '--repo', repo, '--to', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await sha256File(out)).toBe(await sha256File(image));

    const again = await agent(['restore', summary.backup_id, '--repo', repo, '--to', out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists/);
  });

  it('prints the chunker cut points of a file', async () => {
    const file = join(dir, 'chunks.bin');
    const data = seededBytes('chunks', 9 << 20);
    await writeFile(file, data);
    const r = await agent(['chunks', file, '--json']);
    expect(r.code).toBe(0);
    const expected = chunkBuffer(data, DEFAULT_CHUNKER_PARAMS).map(({ offset, length }) => ({
      offset,
      length,
    }));
    expect(JSON.parse(r.stdout)).toEqual(expected);
    const small = await agent([
      'chunks',
      file,
      '--min',
      '4K',
      '--avg',
      '16K',
      '--max',
      '64K',
      '--level',
      '2',
      '--json',
    ]);
    expect(JSON.parse(small.stdout)).toEqual(
      chunkBuffer(data, { minSize: 4096, avgSize: 16384, maxSize: 65536, level: 2, seed: 0n }).map(
        ({ offset, length }) => ({ offset, length }),
      ),
    );
  });

  it('exits with documented codes and one-line errors', async () => {
    const image = join(dir, 'codes.img');
    await writeImage(image, 100_000, [{ offset: 0, data: seededBytes('codes', 100_000) }]);

    const usage = await agent(['backup', image, '--repo', repo]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--volume/);
    expect((await agent(['frobnicate'])).code).toBe(2);
    expect((await agent(['backup', image, '--repo', repo, '--volume', 'x', '--bogus'])).code).toBe(2);

    const missing = await agent(['ls', '--repo', `file://${dir}/nothing-here`]);
    expect(missing.code).toBe(3);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/no repository/);

    const wrong = await agent(['ls', '--repo', repo], { STOWAGE_PASSPHRASE: 'not it' });
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toMatch(/wrong passphrase/);

    const notFound = await agent(['restore', 'abcdef12', '--repo', repo, '--to', join(dir, 'nf.img')]);
    expect(notFound.code).toBe(7);

    const unreachable = await agent(
      ['ls', '--repo', 's3://bucket/p?endpoint=http://127.0.0.1:9&region=us-east-1&path_style=true'],
      { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', STOWAGE_RETRY_ATTEMPTS: '2' },
    );
    expect(unreachable.code).toBe(6);
    expect(unreachable.stderr.trim().split('\n')).toHaveLength(1);

    const noPass = await agent(['ls', '--repo', repo], { STOWAGE_PASSPHRASE: undefined });
    expect(noPass.code).toBe(2);
    expect(noPass.stderr).toMatch(/STOWAGE_PASSPHRASE/);
  });

  it('a corrupted chunk makes restore and verify fail with exit code 5 naming the object', async () => {
    const local = await mkdtemp(join(tmpdir(), 'stowage-cli-corrupt-'));
    try {
      const r = `file://${local}/repo`;
      expect((await agent(['repo', 'init', '--repo', r])).code).toBe(0);
      const image = join(local, 'v.img');
      await writeImage(image, 3 << 20, [{ offset: 0, data: seededBytes('corrupt', 3 << 20) }]);
      const b = summaryOf((await agent(['backup', image, '--repo', r, '--volume', 'v', '--json'])).stdout);
      const chunkFiles = await listFiles(join(local, 'repo', 'chunks'));
      const victim = chunkFiles[0]!;
      const bytes = await readFile(victim);
      bytes[bytes.length - 1]! ^= 0xff;
      await writeFile(victim, bytes);
      const name = victim.slice(join(local, 'repo').length + 1);

      await expectRestoreAndVerifyToFail(r, b.backup_id, name, join(local, 'out.img'));
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  it('a damaged manifest fails its restore and verify with exit code 5 naming it; ls lists the rest', async () => {
    const local = await mkdtemp(join(tmpdir(), 'stowage-cli-manifest-'));
    try {
      const r = `file://${local}/repo`;
      expect((await agent(['repo', 'init', '--repo', r])).code).toBe(0);
      const image = join(local, 'v.img');
      await writeImage(image, 2 << 20, [{ offset: 0, data: seededBytes('manifest', 2 << 20) }]);
      const good = summaryOf(
        (await agent(['backup', image, '--repo', r, '--volume', 'good', '--json'])).stdout,
      );
      const bad = summaryOf(
        (await agent(['backup', image, '--repo', r, '--volume', 'bad', '--json'])).stdout,
      );
      const listed = JSON.parse((await agent(['ls', '--repo', r, '--json'])).stdout) as {
        backup_id: string;
        manifest_key: string;
      }[];
      const key = listed.find((b) => b.backup_id === bad.backup_id)!.manifest_key;
      const file = join(local, 'repo', key);
      await writeFile(file, (await readFile(file)).subarray(0, 40)); // truncated

      const ls = await agent(['ls', '--repo', r, '--json']);
      expect(ls.code).toBe(5);
      expect((JSON.parse(ls.stdout) as { backup_id: string }[]).map((b) => b.backup_id)).toEqual([
        good.backup_id,
      ]);
      expect(ls.stderr).toContain(key);
      await expectRestoreAndVerifyToFail(r, bad.backup_id, key, join(local, 'out.img'));
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  it('a backup killed with SIGKILL and re-run stores only what its index objects do not name', async () => {
    const local = await mkdtemp(join(tmpdir(), 'stowage-cli-kill-'));
    try {
      const r = `file://${local}/repo`;
      expect(
        (await agent(['repo', 'init', '--repo', r, '--min', '16K', '--avg', '64K', '--max', '256K'])).code,
      ).toBe(0);
      const image = join(local, 'big.img');
      await writeImage(image, 96 << 20, [{ offset: 0, data: seededBytes('sigkill', 96 << 20) }]);
      // An index object per pack (~8 MiB, ~130 chunks here): the kill leaves its progress at the finest grain.
      const perPack = { STOWAGE_PACKS_PER_INDEX: '1' };
      const run = agent(['backup', image, '--repo', r, '--volume', 'big', '--json'], perPack);
      // Kill once a few index objects have landed, well before the end (12 packs); a loaded machine may take
      // a while to get there, so wait on progress rather than on a clock.
      let exited = false;
      void run.then(() => {
        exited = true;
      });
      const deadline = Date.now() + 90_000;
      const inPlace = async (area: string) =>
        // Only objects in place: temp files of puts still being written are not there yet.
        (await listFiles(join(local, 'repo', area)).catch(() => [])).filter(
          (f) => !f.includes('.stowage-tmp-'),
        );
      while (!exited && Date.now() < deadline) {
        if ((await inPlace('index')).length >= 3) break;
        await new Promise((res) => setTimeout(res, 5));
      }
      run.child.kill('SIGKILL');
      const killed = await run;
      expect(killed.code).toBe(null);
      expect(await listFiles(join(local, 'repo', 'manifests')).catch(() => [])).toHaveLength(0);
      const repository = await Repository.open(openObjectStore(r), { passphrase: PASS });
      let landed = 0;
      for await (const { key } of repository.store.list(PACK_INDEX_PREFIX)) {
        landed += decodePackIndex(repository.keys, key, await repository.store.get(key)).count;
      }
      // Three or more index objects, each naming a pack of ~8 MiB of chunks of at most 256 KiB: ≥ 96 chunks.
      expect(landed).toBeGreaterThanOrEqual(96);

      const rerun = await agent(['backup', image, '--repo', r, '--volume', 'big', '--json']);
      expect(rerun.code).toBe(0);
      const s = summaryOf(rerun.stdout);
      expect(s.chunks_new).toBe(s.chunks - landed);
      const out = join(local, 'out.img');
      expect((await agent(['restore', s.backup_id, '--repo', r, '--to', out])).code).toBe(0);
      expect(await sha256File(out)).toBe(await sha256File(image));
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('agent CLI, as a restic user expects it', () => {
  // Every command, with the options its help must show.
  const COMMANDS: [string[], string[]][] = [
    [
      ['repo', 'init'],
      ['--repo URL', '--min SIZE', '--avg SIZE', '--max SIZE', '--level N', '--seed N', '--json'],
    ],
    [
      ['repo', 'key', 'export'],
      ['--repo URL', '--json'],
    ],
    [['backup'], ['--repo URL', '--volume NAME', '--json', '--quiet']],
    [['ls'], ['--repo URL', '--json']],
    [['restore'], ['--repo URL', '--to FILE_OR_DEVICE', '--overwrite', '--json', '--quiet']],
    [['verify'], ['--repo URL', '--sample PERCENT', '--json', '--quiet']],
    [['check'], ['--repo URL', '--read-data', '--read-data-subset PERCENT', '--json', '--quiet']],
    [['chunks'], ['--min SIZE', '--avg SIZE', '--max SIZE', '--level N', '--seed N', '--json']],
    [['serve'], ['--config FILE']],
  ];

  it('prints the help of every command with --help, -h and "agent help", to stdout, exit 0', async () => {
    const runs = COMMANDS.flatMap(([command]) => [
      [...command, '--help'],
      [...command, '-h'],
      ['help', ...command],
    ]);
    // In process: 30 processes cost minutes of the suite; the real binary's help is checked below.
    const results = await inBatches(runs, 1, (args) => inProcess(args));
    for (const [i, [command, options]] of COMMANDS.entries()) {
      const [long, short, viaHelp] = results.slice(i * 3, i * 3 + 3) as [Result, Result, Result];
      const name = `agent ${command.join(' ')}`;
      expect(long.stderr, name).toBe('');
      expect(long.code, name).toBe(0);
      expect(long.stdout.startsWith(`Usage: ${name}`), long.stdout).toBe(true);
      for (const option of [...options, '-h, --help']) expect(long.stdout, name).toContain(option);
      expect(long.stdout, name).toMatch(/\nExit codes:\n( +\d+ +\S.*\n)+/);
      expect(long.stdout, name).toMatch(/^ +0 +success/m);
      expect(long.stdout, name).toMatch(/^ +2 +usage/m);
      if (options.includes('--repo URL')) {
        expect(long.stdout, name).toContain('[env: STOWAGE_REPOSITORY]');
        expect(long.stdout, name).toContain('STOWAGE_PASSPHRASE');
      }
      expect(short, name).toEqual(long);
      expect(viaHelp, name).toEqual(long);
    }
    const [init, exportKey] = results.filter((_, i) => i % 3 === 0) as Result[];
    for (const value of [
      '[default: 128K]',
      '[default: 512K]',
      '[default: 2M]',
      '[default: 1]',
      '[default: 0]',
    ])
      expect(init!.stdout).toContain(value);
    expect(exportKey!.stdout).toMatch(/WARNING:\s+the\s+key\s+gives\s+full\s+access/);
    const serve = results[COMMANDS.length * 3 - 3]!;
    expect(serve.stdout).toContain('AGENT_CONFIG');
    expect(serve.stdout).toMatch(/AGENT_LISTEN[^\n]*\[default: /);

    const overview = await agent(['--help']);
    expect(overview).toEqual(await inProcess(['--help']));
    expect(overview.code).toBe(0);
    for (const [command] of COMMANDS) expect(overview.stdout).toContain(`agent ${command.join(' ')}`);
    expect(overview.stdout).toMatch(/Exit codes:/);
    expect(await agent(['help'])).toEqual(overview);
  }, 180_000);

  it('prints its version from package.json with --version and -V', async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
    for (const flag of ['--version', '-V']) {
      const r = await agent([flag]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^agent ${version.replaceAll('.', '\\.')}\\b.*\n$`));
    }
  });

  it('refuses unknown commands and options with one line naming them and pointing at --help, exit 2', async () => {
    const image = join(dir, 'unknown.img');
    await writeImage(image, 10_000, []);
    const cases: [string[], string, string][] = [
      [['frobnicate'], 'frobnicate', 'agent --help'],
      [['repo', 'frob'], 'frob', 'agent repo --help'],
      [['repo', 'key', 'import'], 'import', 'agent repo key --help'],
      [['help', 'frobnicate'], 'frobnicate', 'agent --help'],
      [['backup', image, '--repo', repo, '--volume', 'x', '--bogus'], '--bogus', 'agent backup --help'],
      [['ls', '--repo', repo, '-z'], '-z', 'agent ls --help'],
      [['ls', '--repo', repo, 'extra'], 'extra', 'agent ls --help'],
      [['verify', '--repo', repo], 'BACKUP_ID', 'agent verify --help'],
      [['restore', 'abcd', '--repo'], '--repo', 'agent restore --help'],
      [['serve', '--bogus'], '--bogus', 'agent serve --help'],
    ];
    const results = await inBatches(cases, 1, ([args]) => inProcess(args));
    // The real binary says the same.
    expect(await agent(cases[4]![0])).toEqual(results[4]);
    for (const [i, [args, named, hint]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout, args.join(' ')).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toMatch(/^agent: /);
      expect(lines[0]).toContain(named);
      expect(lines[0]).toContain(`"${hint}"`);
    }
  }, 120_000);

  it('exits quietly when its output pipe is closed (as under | head), without a stack trace', async () => {
    // Closed before anything is written: the first write fails.
    for (const args of [['--help'], ['ls', '--repo', repo]]) {
      const early = agent(args);
      early.child.stdout!.destroy();
      const r = await early;
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.code, args.join(' ')).toBe(141);
    }
    // Closed after the first line of a backup's --json status lines: the backup stops like on SIGINT.
    const image = join(dir, 'pipe.img');
    await writeImage(image, 48 << 20, [{ offset: 0, data: seededBytes('pipe', 48 << 20) }]);
    const run = agent(['backup', image, '--repo', repo, '--volume', 'pipe', '--json']);
    let first = '';
    await new Promise<void>((resolve) => {
      run.child.stdout!.on('data', (d) => {
        first += d;
        if (first.includes('\n')) {
          run.child.stdout!.destroy();
          resolve();
        }
      });
    });
    const r = await run;
    expect(JSON.parse(first.split('\n')[0]!).message_type).toBe('status');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(141);
  }, 120_000);

  it('every failure is one line on stderr, and no stack trace', async () => {
    const image = join(dir, 'fail.img');
    await writeImage(image, 10_000, [{ offset: 0, data: seededBytes('fail', 10_000) }]);
    const existing = join(dir, 'exists.img');
    await writeFile(existing, 'x');
    const cases: [string[], Record<string, string | undefined>, number][] = [
      [['backup', join(dir, 'no-such.img'), '--repo', repo, '--volume', 'v'], {}, 1],
      [['backup', dir, '--repo', repo, '--volume', 'v'], {}, 2],
      [['backup', image, '--volume', 'v'], { STOWAGE_REPOSITORY: undefined }, 2],
      [['ls', '--repo', 'ftp://nowhere/x'], {}, 2],
      [['ls', '--repo', repo], { STOWAGE_THREADS: 'many' }, 2],
      [['ls', '--repo', repo], { STOWAGE_PASSPHRASE: undefined, STOWAGE_PASSPHRASE_FILE: dir }, 2],
      [['verify', 'abcd', '--repo', repo, '--sample', '0'], {}, 2],
      [['chunks', join(dir, 'no-such.img')], {}, 1],
      [['chunks', image, '--min', 'lots'], {}, 2],
      [['repo', 'init', '--repo', repo], {}, 1],
      [['repo', 'key', 'export', '--repo', repo], { STOWAGE_PASSPHRASE: 'not it' }, 4],
      [['restore', 'abcdef12', '--repo', repo, '--to', existing], {}, 7],
    ];
    const results = await inBatches(cases, 3, ([args, env]) => agent(args, env));
    for (const [i, [args, , code]] of cases.entries()) {
      const r = results[i]!;
      const what = `${args.join(' ')}: ${r.stderr}`;
      expect(r.code, what).toBe(code);
      expect(r.stderr.trimEnd().split('\n'), what).toHaveLength(1);
      expect(r.stderr, what).toMatch(/^agent: \S/);
      expect(r.stderr, what).not.toMatch(/\n\s+at /);
    }
  }, 120_000);

  it('an unexpected error is one line naming STOWAGE_DEBUG, which adds the stack', async () => {
    // Nothing in a real repository provokes a bug on purpose, so this one runs the command line in process
    // with an environment that throws where the repository URL is read.
    const { run } = await import('./main.js');
    for (const debug of [undefined, '1']) {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let err = '';
      stderr.on('data', (d) => {
        err += d;
      });
      const env = new Proxy({ STOWAGE_DEBUG: debug } as NodeJS.ProcessEnv, {
        get(target, key) {
          if (key === 'STOWAGE_REPOSITORY') throw new TypeError('boom');
          return target[key as string];
        },
      });
      const code = await run(['ls'], {
        env,
        stdout,
        stderr: stderr as unknown as NodeJS.WriteStream,
        stdin: process.stdin,
        signal: new AbortController().signal,
      });
      expect(code).toBe(1);
      const [first, ...more] = err.trimEnd().split('\n');
      expect(first).toBe('agent: unexpected error: TypeError: boom (STOWAGE_DEBUG=1 prints the stack)');
      if (debug) expect(more.join('\n')).toMatch(/^TypeError: boom\n\s+at /);
      else expect(more).toEqual([]);
    }
  });

  it('escapes control characters in repository-supplied names in human output; JSON keeps them exact', async () => {
    const local = await mkdtemp(join(tmpdir(), 'stowage-cli-escape-'));
    try {
      const r = `file://${local}/repo`;
      expect((await agent(['repo', 'init', '--repo', r])).code).toBe(0);
      const image = join(local, 'v.img');
      await writeImage(image, 100_000, [{ offset: 0, data: seededBytes('escape', 100_000) }]);
      const evil = 'evil\x1b[31mname\n\rbell\x07\tdel\x7fcsi\x9b2Jrlo\u202eback\\slash';
      const b = await agent(['backup', image, '--repo', r, '--volume', evil]);
      expect(b.code).toBe(0);

      const ls = await agent(['ls', '--repo', r]);
      expect(ls.code).toBe(0);
      expect(ls.stdout.trimEnd().split('\n')).toHaveLength(2); // the header and one backup, on one line
      expect(ls.stdout).not.toMatch(UNSAFE);
      expect(ls.stdout).toContain(
        'evil\\x1b[31mname\\n\\rbell\\x07\\tdel\\x7fcsi\\x9b2Jrlo\\u202eback\\\\slash\n',
      );

      const json = await agent(['ls', '--repo', r, '--json']);
      expect(json.stdout).not.toMatch(UNSAFE);
      expect(JSON.parse(json.stdout)[0].volume).toBe(evil);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  it('--json streams status lines and ends with a summary line; failures are error lines', async () => {
    const local = await mkdtemp(join(tmpdir(), 'stowage-cli-json-'));
    try {
      const r = `file://${local}/repo`;
      expect(
        (await agent(['repo', 'init', '--repo', r, '--min', '16K', '--avg', '64K', '--max', '256K'])).code,
      ).toBe(0);
      const image = join(local, 'v.img');
      await writeImage(image, 8 << 20, [{ offset: 1 << 20, data: seededBytes('json', 6 << 20) }]);

      const b = await agent(['backup', image, '--repo', r, '--volume', 'json', '--json']);
      expect(b.stderr).toBe('');
      expect(b.code).toBe(0);
      const backup = summaryOf(b.stdout, 8 << 20);
      expect(Object.keys(backup)).toEqual([
        'message_type',
        'backup_id',
        'volume_id',
        'volume',
        'manifest_key',
        'created_at',
        'size',
        'bytes_read',
        'bytes_uploaded',
        'chunks',
        'chunks_new',
        'chunks_repaired',
        'packs_new',
        'holes',
        'hole_bytes',
        'seconds',
        'bytes_padding',
      ]);
      expect(backup).toMatchObject({ volume: 'json', size: 8 << 20, bytes_read: 8 << 20 });
      // The padding that hides chunk sizes is part of what was uploaded, at most about 1/8 of it.
      expect(backup.bytes_padding).toBeGreaterThan(0);
      expect(backup.bytes_padding).toBeLessThan((backup.bytes_uploaded as number) / 8);

      const out = join(local, 'out.img');
      const restored = await agent(['restore', backup.backup_id, '--repo', r, '--to', out, '--json']);
      expect(restored.stderr).toBe('');
      expect(restored.code).toBe(0);
      expect(Object.keys(summaryOf(restored.stdout, 8 << 20))).toEqual([
        'message_type',
        'backup_id',
        'size',
        'bytes_downloaded',
        'chunks',
        'holes',
        'seconds',
      ]);

      const verified = await agent(['verify', backup.backup_id, '--repo', r, '--json']);
      expect(verified.code).toBe(0);
      const v = summaryOf(verified.stdout);
      expect(v).toMatchObject({ message_type: 'summary', ok: true, problems: [] });
      expect(Object.keys(v)).toEqual([
        'message_type',
        'backup_id',
        'ok',
        'chunks_total',
        'chunks_checked',
        'chunks_from_copies',
        'bytes_checked',
        'problems',
        'seconds',
      ]);

      // --quiet leaves only the summary line.
      const quiet = await agent(['verify', backup.backup_id, '--repo', r, '--json', '--quiet']);
      expect(quiet.stdout.trimEnd().split('\n')).toHaveLength(1);
      expect(JSON.parse(quiet.stdout).message_type).toBe('summary');

      // A failure is one error line on stderr with the exit code; a damaged chunk is an error line naming it.
      const missing = await agent([
        'restore',
        'abcdef12',
        '--repo',
        r,
        '--to',
        join(local, 'x.img'),
        '--json',
      ]);
      expect(missing.code).toBe(7);
      expect(missing.stdout).toBe('');
      expect(missing.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(JSON.parse(missing.stderr)).toEqual({
        message_type: 'error',
        message: expect.stringContaining('abcdef12'),
        exit_code: 7,
      });
      const usage = await agent(['backup', image, '--repo', r, '--json']);
      expect(usage.code).toBe(2);
      expect(JSON.parse(usage.stderr)).toMatchObject({ message_type: 'error', exit_code: 2 });

      const victim = (await listFiles(join(local, 'repo', 'chunks')))[0]!;
      const bytes = await readFile(victim);
      bytes[bytes.length - 1]! ^= 0xff;
      await writeFile(victim, bytes);
      const object = victim.slice(join(local, 'repo').length + 1);
      const damaged = await agent(['verify', backup.backup_id, '--repo', r, '--json']);
      expect(damaged.code).toBe(5);
      const errors = damaged.stderr
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(errors).toEqual([{ message_type: 'error', message: expect.any(String), object }]);
      expect(summaryOf(damaged.stdout)).toMatchObject({ ok: false, problems: [{ object }] });
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  }, 120_000);

  it('check exits 0 on a clean repository and 5 naming each missing pack, corrupt chunk or undecodable object and its backups', async () => {
    const local = await mkdtemp(join(tmpdir(), 'stowage-cli-check-'));
    try {
      const r = `file://${local}/repo`;
      const root = join(local, 'repo');
      expect(
        (await agent(['repo', 'init', '--repo', r, '--min', '16K', '--avg', '64K', '--max', '256K'])).code,
      ).toBe(0);
      const packsNow = async () => listFiles(join(root, 'packs')).catch(() => [] as string[]);
      // Volumes a and b hold the same data: one pack, named by both. c and d hold a pack each.
      const shared = join(local, 'shared.img');
      await writeImage(shared, 2 << 20, [{ offset: 0, data: seededBytes('check-shared', 2 << 20) }]);
      const a = summaryOf((await agent(['backup', shared, '--repo', r, '--volume', 'a', '--json'])).stdout);
      const b = summaryOf((await agent(['backup', shared, '--repo', r, '--volume', 'b', '--json'])).stdout);
      const sharedPacks = await packsNow();
      expect(sharedPacks).toHaveLength(1);
      const other = join(local, 'other.img');
      await writeImage(other, 1 << 20, [{ offset: 0, data: seededBytes('check-other', 1 << 20) }]);
      const c = summaryOf((await agent(['backup', other, '--repo', r, '--volume', 'c', '--json'])).stdout);
      const third = join(local, 'third.img');
      await writeImage(third, 1 << 20, [{ offset: 0, data: seededBytes('check-third', 1 << 20) }]);
      const before = new Set(await packsNow());
      const d = summaryOf((await agent(['backup', third, '--repo', r, '--volume', 'd', '--json'])).stdout);
      const thirdPacks = (await packsNow()).filter((f) => !before.has(f));
      expect(thirdPacks).toHaveLength(1);

      const clean = await agent(['check', '--repo', r]);
      expect(clean.stderr).toBe('');
      expect(clean.code).toBe(0);
      expect(clean.stdout).toMatch(/^repository ok: 4 manifests, \d+ chunks in 3 packs checked/);
      const cleanJson = await agent(['check', '--repo', r, '--read-data', '--json']);
      expect(cleanJson.code).toBe(0);
      const cleanSummary = summaryOf(cleanJson.stdout);
      expect(cleanSummary).toMatchObject({
        ok: true,
        manifests_checked: 4,
        missing_chunks: 0,
        corrupt_chunks: 0,
        packs_referenced: 3,
        packs_listed: 3,
        missing_packs: 0,
        unreferenced_packs: 0,
      });
      expect(JSON.parse(cleanJson.stdout.split('\n')[0]!)).toHaveProperty('step');

      // The shared pack deleted, the last chunk of d's pack bit-flipped, c's manifest truncated.
      const [missingFile, corruptFile] = [sharedPacks[0]!, thirdPacks[0]!];
      await rm(missingFile);
      const bytes = await readFile(corruptFile);
      bytes[bytes.length - 1]! ^= 0xff;
      await writeFile(corruptFile, bytes);
      await writeFile(
        join(root, c.manifest_key),
        (await readFile(join(root, c.manifest_key))).subarray(0, 40),
      );
      const missing = missingFile.slice(root.length + 1);
      const corrupt = corruptFile.slice(root.length + 1);

      // Without --read-data: what is missing (one line for the pack, not one per chunk in it) and what does not
      // decode; a corrupt chunk needs its data read.
      const found = await agent(['check', '--repo', r]);
      expect(found.code).toBe(5);
      expect(found.stdout).toMatch(/^repository DAMAGED/);
      expect(found.stdout).toContain('(1 missing packs)');
      const lines = found.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      const missingLine = lines.find((l) => l.includes(missing))!;
      expect(missingLine).toMatch(/^error: missing: pack /);
      expect(missingLine).toContain(a.backup_id);
      expect(missingLine).toContain(b.backup_id);
      const manifestLine = lines.find((l) => l.includes(c.manifest_key))!;
      expect(manifestLine).toMatch(/^error: undecodable/);
      expect(manifestLine).toContain(c.backup_id);

      const read = await agent(['check', '--repo', r, '--read-data', '--json']);
      expect(read.code).toBe(5);
      const errors = read.stderr
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(errors).toHaveLength(3);
      const missingError = errors.find((e) => e.object === missing);
      expect(missingError).toMatchObject({ message_type: 'error', problem: 'missing' });
      expect([...missingError.backups].sort()).toEqual([a.backup_id, b.backup_id].sort());
      // A corrupt chunk is named by its range of the pack.
      const corruptError = errors.find((e) => e.object.startsWith(`${corrupt}@`));
      expect(corruptError).toMatchObject({
        message_type: 'error',
        problem: 'corrupt',
        backups: [d.backup_id],
      });
      expect(errors.find((e) => e.object === c.manifest_key)).toMatchObject({
        problem: 'undecodable',
        backups: [c.backup_id],
      });
      const summary = summaryOf(read.stdout);
      expect(summary).toMatchObject({
        ok: false,
        manifests_checked: 3,
        corrupt_chunks: 1,
        damaged_manifests: 1,
        missing_packs: 1,
        // c's pack: named by no manifest the check could read.
        unreferenced_packs: 1,
      });
      expect(summary.missing_chunks).toBeGreaterThan(1);
      const subset = await agent(['check', '--repo', r, '--read-data-subset', '50%']);
      expect(subset.code).toBe(5);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  }, 120_000);

  it('check and verify of a backup whose lost pack a later backup stored again: a warning, exit 0, its record cleared', async () => {
    const local = await mkdtemp(join(tmpdir(), 'stowage-cli-copies-'));
    try {
      const r = `file://${local}/repo`;
      const root = join(local, 'repo');
      expect(
        (await agent(['repo', 'init', '--repo', r, '--min', '16K', '--avg', '64K', '--max', '256K'])).code,
      ).toBe(0);
      const image = join(local, 'v.img');
      await writeImage(image, 1 << 20, [{ offset: 0, data: seededBytes('cli-copies', 1 << 20) }]);
      const backup = async () =>
        summaryOf((await agent(['backup', image, '--repo', r, '--volume', 'v', '--json'])).stdout);
      const b1 = await backup();
      const packs = await listFiles(join(root, 'packs'));
      expect(packs).toHaveLength(1);
      await rm(packs[0]!);
      const lost = packs[0]!.slice(root.length + 1);

      const found = await agent(['check', '--repo', r]);
      expect(found.code).toBe(5);
      expect(found.stderr.trimEnd().split('\n')).toEqual([
        expect.stringMatching(
          new RegExp(
            `^error: missing: pack ${lost} is missing: the \\d+ chunks in it are lost; backup ${b1.backup_id}$`,
          ),
        ),
      ]);
      // The next backup stores the lost chunks again; b1 still names the lost pack, and restores from them.
      const b2 = await backup();
      expect(b2.chunks_repaired).toBe(b1.chunks);
      const verified = await agent(['verify', b1.backup_id as string, '--repo', r, '--json']);
      expect(verified.code).toBe(0);
      expect(summaryOf(verified.stdout)).toMatchObject({ ok: true, problems: [] });
      const healed = await agent(['check', '--repo', r, '--json']);
      expect(healed.code).toBe(0);
      const warnings = healed.stderr
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(warnings).toEqual([
        {
          message_type: 'warning',
          object: lost,
          problem: 'missing',
          message: `pack ${lost} is missing: the ${b1.chunks} chunks in it read whole from other copies`,
          backups: [b1.backup_id],
        },
      ]);
      expect(summaryOf(healed.stdout)).toMatchObject({
        ok: true,
        missing_chunks: 0,
        chunks_from_copies: b1.chunks,
        chunks_not_sought: 0,
        missing_packs: 1,
        damage_records_written: 0,
        damage_records_cleared: 0, // the verify cleared b1's record already
      });
      const human = await agent(['check', '--repo', r]);
      expect(human.code).toBe(0);
      expect(human.stderr).toMatch(
        new RegExp(
          `^warning: missing: pack ${lost} is missing: the \\d+ chunks in it read whole from other copies; backup ${b1.backup_id}\n$`,
        ),
      );
      expect(human.stdout).toMatch(
        /^repository ok: 2 manifests, .*; \d+ damaged chunks read whole from other copies\n$/,
      );
      // No record lists them: the next backup stores nothing.
      const b3 = await backup();
      expect(b3).toMatchObject({ chunks_new: 0, chunks_repaired: 0 });
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  }, 120_000);

  it('repo key export prints the target key, which opens the repository without the passphrase', async () => {
    const r = await agent(['repo', 'key', 'export', '--repo', repo]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    const key = Buffer.from(r.stdout.trim(), 'base64');
    expect(key).toHaveLength(32);
    const opened = await Repository.openWithKey(openObjectStore(repo), key);
    const viaPassphrase = await Repository.open(openObjectStore(repo), { passphrase: PASS });
    expect(opened.config.repositoryId).toBe(viaPassphrase.config.repositoryId);
    expect((await opened.listBackups()).damaged).toEqual([]);

    const json = await agent(['repo', 'key', 'export', '--repo', repo, '--json']);
    expect(JSON.parse(json.stdout)).toEqual({
      repository_id: viaPassphrase.config.repositoryId,
      target_key: r.stdout.trim(),
    });
    const wrong = await agent(['repo', 'key', 'export', '--repo', repo], { STOWAGE_PASSPHRASE: 'not it' });
    expect(wrong.code).toBe(4);
    expect(wrong.stdout).toBe('');
  });
});

/** What must never reach a terminal raw: controls other than the newline ending a line, DEL, C1, bidi overrides. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is being looked for
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;

/** A summary line: the fields the tests read, typed; the rest are checked by name. */
interface Summary extends Record<string, unknown> {
  backup_id: string;
  manifest_key: string;
  chunks: number;
  chunks_new: number;
  ok: boolean;
}

/**
 * The summary line of a --json run, after checking every line before it is a well-formed status line. With
 * `totalBytes` (a one-step command: backup, restore, verify) the counts also grow to exactly that total.
 */
function summaryOf(stdout: string, totalBytes?: number): Summary {
  const lines = stdout
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const summary = lines.pop()!;
  expect(summary.message_type).toBe('summary');
  if (totalBytes !== undefined) expect(lines.length).toBeGreaterThan(0);
  let done = 0;
  for (const status of lines) {
    expect(Object.keys(status)).toEqual(
      expect.arrayContaining([
        'message_type',
        'seconds_elapsed',
        'total_bytes',
        'bytes_done',
        'bytes_per_second',
      ]),
    );
    expect(status.message_type).toBe('status');
    // percent_done is a fraction, as restic's; absent only while the total is not known yet.
    if ((status.total_bytes as number) >= (status.bytes_done as number)) {
      expect(status.percent_done).toBeGreaterThanOrEqual(0);
      expect(status.percent_done).toBeLessThanOrEqual(1);
    }
    if (totalBytes === undefined) continue;
    expect(status.total_bytes).toBe(totalBytes);
    expect(status.bytes_done as number).toBeGreaterThanOrEqual(done);
    done = status.bytes_done as number;
  }
  if (totalBytes !== undefined) expect(lines.at(-1)!.percent_done).toBe(1);
  return summary as Summary;
}

/** Runs `fn` over `items`, `size` at a time (the machine has few cores), results in order. */
async function inBatches<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/** Restore and verify of a damaged backup both exit 5 naming the damaged object, and no restored file is left. */
async function expectRestoreAndVerifyToFail(repo: string, backupId: string, object: string, out: string) {
  const restore = await agent(['restore', backupId, '--repo', repo, '--to', out]);
  expect(restore.code).toBe(5);
  expect(restore.stderr).toContain(object);
  await expect(readFile(out)).rejects.toThrow();
  const verify = await agent(['verify', backupId, '--repo', repo]);
  expect(verify.code).toBe(5);
  expect(verify.stderr).toContain(object);
}

async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  }
  return out.sort();
}
