import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errnoKind, type HostBackendErrorKind, isHostBackendError } from './errors.js';
import type { SnapshotMethod } from './host-backend.js';
import { LocalFileBackend, SNAPSHOT_DIRECTORY } from './local-file.js';
import { describeHostBackendConformance, expectBytes, pattern, readAll } from './testing/index.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** What the temp directory's filesystem really does, asked of cp rather than of the code under test. */
async function plainSnapshotMethod(): Promise<SnapshotMethod> {
  const directory = await mkdtemp(join(tmpdir(), 'stowage-reflink-probe-'));
  try {
    await writeFile(join(directory, 'a'), 'probe');
    await run('cp', ['--reflink=always', join(directory, 'a'), join(directory, 'b')]);
    return 'reflink';
  } catch {
    return 'copy';
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}
const plainMethod = await plainSnapshotMethod();

describeHostBackendConformance(
  `local-file on the temp directory's filesystem (${plainMethod} snapshots)`,
  async () => {
    const directory = await mkdtemp(join(tmpdir(), 'stowage-local-file-'));
    return {
      backend: new LocalFileBackend({ roots: [directory] }),
      missing: join(directory, 'missing.img'),
      dispose: () => rm(directory, { recursive: true, force: true }),
    };
  },
  {
    snapshotMethod: plainMethod,
    noSpaceUntestable:
      'the temp directory is on a filesystem too large to fill; the loop filesystems test it',
  },
);

async function expectKind(promise: Promise<unknown>, kind: HostBackendErrorKind): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isHostBackendError(error, kind), `expected ${kind}, got ${String(error)}`).toBe(true);
}

describe('LocalFileBackend', () => {
  let directory: string;
  let root: string;
  let outside: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'stowage-local-file-'));
    root = join(directory, 'root');
    outside = join(directory, 'outside');
    await mkdir(root);
    await mkdir(outside);
    await writeFile(join(outside, 'secret'), 'not for the agent');
  });
  afterEach(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('provisions sparse files that take no space until written', async () => {
    const backend = new LocalFileBackend({ roots: [root] });
    const info = await backend.provision({ name: 'big.img', size: 1024 * MiB });
    const stats = await stat(info.locator);
    expect(stats.size).toBe(1024 * MiB);
    expect(stats.blocks).toBe(0);
    expect(stats.mode & 0o777).toBe(0o600);
  });

  it('refuses symlinks that lead outside the roots, reading nothing behind them', async () => {
    const backend = new LocalFileBackend({ roots: [root] });
    await symlink(join(outside, 'secret'), join(root, 'file-link'));
    await symlink(outside, join(root, 'dir-link'));
    await symlink('../outside/secret', join(root, 'relative-link'));
    for (const locator of [
      join(root, 'file-link'),
      join(root, 'dir-link', 'secret'),
      join(root, 'dir-link', 'missing'),
      join(root, 'relative-link'),
    ]) {
      await expectKind(backend.stat(locator), 'outside-roots');
      await expectKind(backend.openReader(locator), 'outside-roots');
      await expectKind(backend.openWriter(locator), 'outside-roots');
      await expectKind(backend.snapshot(locator, 'snap'), 'outside-roots');
      await expectKind(backend.deleteVolume(locator), 'outside-roots');
    }
    // Hidden symlinks are not listed either: only regular files are volumes.
    expect(await backend.list()).toEqual([]);
    expect(await readFile(join(outside, 'secret'), 'utf8')).toBe('not for the agent');
  });

  it('follows symlinks that stay inside the roots, and names volumes by where they really are', async () => {
    const backend = new LocalFileBackend({ roots: [root] });
    const info = await backend.provision({ name: 'real.img', size: MiB });
    await symlink('real.img', join(root, 'alias.img'));
    expect(await backend.stat(join(root, 'alias.img'))).toEqual(info);
    expect(await backend.stat(`${root}//./real.img`)).toEqual(info);
  });

  it('accepts a root reached through a symlink, and locators spelled either way', async () => {
    await symlink(root, join(directory, 'root-link'));
    const backend = new LocalFileBackend({ roots: [join(directory, 'root-link')] });
    const info = await backend.provision({ name: 'v', size: MiB });
    expect(info.locator).toBe(join(directory, 'root-link', 'v'));
    expect(await backend.stat(join(root, 'v'))).toEqual(info);
    expect((await backend.list()).map((v) => v.locator)).toEqual([info.locator]);
  });

  it('refuses a snapshot directory that is a symlink, writing nothing through it', async () => {
    const backend = new LocalFileBackend({ roots: [root] });
    const info = await backend.provision({ name: 'v', size: MiB });
    await symlink(outside, join(root, SNAPSHOT_DIRECTORY));
    await expectKind(backend.snapshot(info.locator, 'snap'), 'io');
    await expectKind(backend.openReader(join(root, SNAPSHOT_DIRECTORY, 'secret')), 'outside-roots');
    expect((await run('ls', [outside])).stdout.trim()).toBe('secret');
  });

  it('provisions in any configured root, and only in those', async () => {
    const second = join(directory, 'second');
    await mkdir(second);
    const backend = new LocalFileBackend({ roots: [root, second] });
    const a = await backend.provision({ name: 'a', size: MiB });
    const b = await backend.provision({ name: 'a', size: 2 * MiB, root: second });
    expect([a.locator, b.locator]).toEqual([join(root, 'a'), join(second, 'a')]);
    expect((await backend.list()).map((v) => v.size)).toEqual([MiB, 2 * MiB]);
    await expectKind(backend.provision({ name: 'c', size: MiB, root: outside }), 'outside-roots');
  });

  it('copies sparsely when told to copy, and says so', async () => {
    const backend = new LocalFileBackend({ roots: [root], snapshotMode: 'copy' });
    const info = await backend.provision({ name: 'v', size: 64 * MiB });
    const writer = await backend.openWriter(info.locator);
    await writer.write(pattern(MiB, 1), 10 * MiB);
    await writer.sync();
    await writer.close();
    const snapshot = await backend.snapshot(info.locator, 'snap');
    expect(snapshot.method).toBe('copy');
    const stats = await stat(snapshot.locator);
    expect(stats.size).toBe(64 * MiB);
    expect(stats.blocks * 512).toBeLessThanOrEqual(2 * MiB);
    const read = await readAll(await backend.openReader(snapshot.locator));
    expectBytes(read.subarray(10 * MiB, 11 * MiB), pattern(MiB, 1));
    expectBytes(read.subarray(0, 10 * MiB), new Uint8Array(10 * MiB));
    // No partial file is left beside it.
    expect((await run('ls', ['-A', join(root, SNAPSHOT_DIRECTORY)])).stdout.trim()).toBe('v@snap');
  });

  it.skipIf(plainMethod === 'reflink')(
    `refuses a reflink-only snapshot where the filesystem has no reflinks${plainMethod === 'reflink' ? ' (skipped: the temp directory has reflinks)' : ''}`,
    async () => {
      const backend = new LocalFileBackend({ roots: [root], snapshotMode: 'reflink' });
      const info = await backend.provision({ name: 'v', size: MiB });
      await expectKind(backend.snapshot(info.locator, 'snap'), 'unsupported');
      expect(await backend.listSnapshots(info.locator)).toEqual([]);
    },
  );

  it('takes an open signal (nothing to wait for: only an already aborted one stops the open) and a no-op close', async () => {
    const backend = new LocalFileBackend({ roots: [root] });
    const info = await backend.provision({ name: 'vol.img', size: MiB });
    const reason = new Error('job cancelled');
    // One open at a time: a second promise made up front would reject before anything awaits it.
    for (const open of [
      () => backend.openReader(info.locator, { signal: AbortSignal.abort(reason) }),
      () => backend.openWriter(info.locator, { signal: AbortSignal.abort(reason) }),
    ]) {
      const error = await open().catch((caught: unknown) => caught);
      expect(error).toMatchObject({ kind: 'io', message: expect.stringMatching(/cancelled/), cause: reason });
    }
    const controller = new AbortController();
    const reader = await backend.openReader(info.locator, { signal: controller.signal });
    controller.abort();
    expect(await reader.read(new Uint8Array(16), 0)).toBe(16);
    await reader.close();
    await backend.close();
    await backend.close();
    await (await backend.openReader(info.locator)).close();
  });

  it('wants absolute roots, at least one', () => {
    expect(() => new LocalFileBackend({ roots: ['relative'] })).toThrow(/absolute/);
    expect(() => new LocalFileBackend({ roots: [] })).toThrow(/at least one/);
  });

  it('maps errno codes to kinds: ENOSPC is no-space', () => {
    expect(errnoKind('ENOSPC')).toBe('no-space');
    expect(errnoKind('EDQUOT')).toBe('no-space');
    expect(errnoKind('ENOENT')).toBe('not-found');
    expect(errnoKind('EEXIST')).toBe('exists');
    expect(errnoKind('EBUSY')).toBe('busy');
    expect(errnoKind('EIO')).toBe('io');
    expect(errnoKind(undefined)).toBe('io');
  });
});
