import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chunkBuffer, DEFAULT_CHUNKER_PARAMS } from '@stowage/chunker';
import { seededBytes, sha256File, writeImage, writeTestVolume } from '@stowage/engine/testing';
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

describe('agent CLI', () => {
  it('backs up, lists, verifies and restores a volume byte-exact', async () => {
    const image = join(dir, 'vol.img');
    await writeTestVolume(image, 6 << 20, 'cli');
    const b = await agent(['backup', image, '--repo', repo, '--volume', 'web-1', '--json']);
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    const summary = JSON.parse(b.stdout);
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
    expect(JSON.parse(vs.stdout).ok).toBe(true);

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
      const b = JSON.parse((await agent(['backup', image, '--repo', r, '--volume', 'v', '--json'])).stdout);
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
      const good = JSON.parse(
        (await agent(['backup', image, '--repo', r, '--volume', 'good', '--json'])).stdout,
      );
      const bad = JSON.parse(
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

  it('a backup killed with SIGKILL and re-run uploads only the missing chunks', async () => {
    const local = await mkdtemp(join(tmpdir(), 'stowage-cli-kill-'));
    try {
      const r = `file://${local}/repo`;
      expect(
        (await agent(['repo', 'init', '--repo', r, '--min', '16K', '--avg', '64K', '--max', '256K'])).code,
      ).toBe(0);
      const image = join(local, 'big.img');
      await writeImage(image, 96 << 20, [{ offset: 0, data: seededBytes('sigkill', 96 << 20) }]);
      const run = agent(['backup', image, '--repo', r, '--volume', 'big', '--json']);
      // Kill once a good number of chunks have landed, well before the end (~1,500 chunks); a loaded machine
      // may take a while to get there, so wait on progress rather than on a clock.
      let exited = false;
      void run.then(() => {
        exited = true;
      });
      const deadline = Date.now() + 90_000;
      while (!exited && Date.now() < deadline) {
        const chunks = await listFiles(join(local, 'repo', 'chunks')).catch(() => []);
        // Count only objects in place: temp files of puts still being written are not chunks yet.
        if (chunks.filter((f) => !f.includes('.stowage-tmp-')).length >= 100) break;
        await new Promise((res) => setTimeout(res, 5));
      }
      run.child.kill('SIGKILL');
      const killed = await run;
      expect(killed.code).toBe(null);
      expect(await listFiles(join(local, 'repo', 'manifests')).catch(() => [])).toHaveLength(0);
      const landed = (await listFiles(join(local, 'repo', 'chunks'))).filter(
        (f) => !f.includes('.stowage-tmp-'),
      ).length;
      expect(landed).toBeGreaterThanOrEqual(100);

      const rerun = await agent(['backup', image, '--repo', r, '--volume', 'big', '--json']);
      expect(rerun.code).toBe(0);
      const s = JSON.parse(rerun.stdout);
      expect(s.chunks_new).toBe(s.chunks - landed);
      const out = join(local, 'out.img');
      expect((await agent(['restore', s.backup_id, '--repo', r, '--to', out])).code).toBe(0);
      expect(await sha256File(out)).toBe(await sha256File(image));
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  }, 180_000);
});

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
