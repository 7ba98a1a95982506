import { execFile } from 'node:child_process';
import { link, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
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

  it('refuses a file with another hard link, for every operation: the other name may lie outside the roots', async () => {
    const backend = new LocalFileBackend({ roots: [root] });
    const image = join(outside, 't.img');
    await writeFile(image, Buffer.alloc(64 * 1024, 7));
    const linked = join(root, 'hl');
    await link(image, linked);
    // Started one at a time: promises made up front would reject before anything awaits them.
    const attempts = [
      () => backend.stat(linked),
      () => backend.openReader(linked),
      () => backend.openWriter(linked), // the restore that would overwrite t.img outside
      () => backend.snapshot(linked, 'snap', { allowCopy: true }),
      () => backend.listSnapshots(linked),
      () => backend.deleteVolume(linked),
    ];
    for (const attempt of attempts) {
      const error = await attempt().catch((caught: unknown) => caught);
      expect(error).toMatchObject({
        kind: 'outside-roots',
        locator: linked,
        message: expect.stringMatching(/has 2 hard links.*outside the configured roots/),
      });
    }
    expect(await backend.list()).toEqual([]);

    // A file linked in under a snapshot's name is refused the same way, and not listed as a snapshot.
    const volume = await backend.provision({ name: 'v', size: MiB });
    await mkdir(join(root, SNAPSHOT_DIRECTORY));
    const planted = join(root, SNAPSHOT_DIRECTORY, 'v@planted');
    await link(image, planted);
    await expectKind(backend.openReader(planted), 'outside-roots');
    await expectKind(backend.deleteSnapshot(planted), 'outside-roots');
    expect(await backend.listSnapshots(volume.locator)).toEqual([]);
    expect((await backend.list()).map((v) => v.name)).toEqual(['v']);

    expect(await readFile(image)).toEqual(Buffer.alloc(64 * 1024, 7));
    expect((await stat(image)).nlink).toBe(3);
  });

  it('accepts its own copy while it links it into place, or as a crash there left it, and cleans that up', async () => {
    const backend = new LocalFileBackend({ roots: [root], snapshotMode: 'copy' });
    const volume = await backend.provision({ name: 'v', size: MiB });
    const write = async (data: Uint8Array) => {
      const writer = await backend.openWriter(volume.locator);
      await writer.write(data, 0);
      await writer.close();
    };
    await write(pattern(MiB, 1));
    const snapshot = await backend.snapshot(volume.locator, 'snap', { allowCopy: true });
    expect((await stat(snapshot.locator)).nlink).toBe(1);
    await write(pattern(MiB, 2));
    // The copy's last step: link(partial, snapshot), then unlink(partial). In between the snapshot has two
    // links, both its own, and is used as any other.
    await link(snapshot.locator, join(root, SNAPSHOT_DIRECTORY, '.v@snap.0123456789ab.partial'));
    expect((await backend.listSnapshots(volume.locator)).map((s) => s.name)).toEqual(['snap']);
    // A second snapshot of that name is refused before it copies anything (through the partial's name
    // into the snapshot, say).
    await expectKind(backend.snapshot(volume.locator, 'snap', { allowCopy: true }), 'exists');
    expectBytes(await readAll(await backend.openReader(snapshot.locator)), pattern(MiB, 1));
    await backend.deleteSnapshot(snapshot.locator);
    expect((await run('ls', ['-A', join(root, SNAPSHOT_DIRECTORY)])).stdout.trim()).toBe('');
  });

  it('provisions in any configured root, and only in those', async () => {
    const second = join(directory, 'second');
    await mkdir(second);
    const backend = new LocalFileBackend({ roots: [root, second] });
    const a = await backend.provision({ name: 'a', size: MiB });
    const b = await backend.provision({ name: 'b', size: 2 * MiB, root: second });
    expect([a.locator, b.locator]).toEqual([join(root, 'a'), join(second, 'b')]);
    expect((await backend.list()).map((v) => v.size)).toEqual([MiB, 2 * MiB]);
    await expectKind(backend.provision({ name: 'c', size: MiB, root: outside }), 'outside-roots');
  });

  it('keeps a volume name unique across the roots, naming the root that has it', async () => {
    const second = join(directory, 'second');
    await mkdir(second);
    const backend = new LocalFileBackend({ roots: [root, second] });
    await backend.provision({ name: 'a', size: MiB });
    const error = await backend
      .provision({ name: 'a', size: 2 * MiB, root: second })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'exists', message: expect.stringContaining(root) });
    // One made by hand in another root counts too.
    await writeFile(join(second, 'b'), '');
    const other = await backend.provision({ name: 'b', size: MiB }).catch((e: unknown) => e);
    expect(other).toMatchObject({ kind: 'exists', message: expect.stringContaining(second) });
    expect((await backend.list()).map((v) => v.locator)).toEqual([join(root, 'a'), join(second, 'b')]);
    expect((await stat(join(root, 'a'))).size).toBe(MiB);
    await expect(stat(join(second, 'a'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(join(root, 'b'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('copies sparsely when told to copy, and says so', async () => {
    const backend = new LocalFileBackend({ roots: [root], snapshotMode: 'copy' });
    const info = await backend.provision({ name: 'v', size: 64 * MiB });
    const writer = await backend.openWriter(info.locator);
    await writer.write(pattern(MiB, 1), 10 * MiB);
    await writer.sync();
    await writer.close();
    const snapshot = await backend.snapshot(info.locator, 'snap', { allowCopy: true });
    expect(snapshot.method).toBe('copy');
    const stats = await stat(snapshot.locator);
    expect(stats.size).toBe(64 * MiB);
    expect(stats.nlink).toBe(1);
    expect(stats.blocks * 512).toBeLessThanOrEqual(2 * MiB);
    const read = await readAll(await backend.openReader(snapshot.locator));
    expectBytes(read.subarray(10 * MiB, 11 * MiB), pattern(MiB, 1));
    expectBytes(read.subarray(0, 10 * MiB), new Uint8Array(10 * MiB));
    // No partial file is left beside it.
    expect((await run('ls', ['-A', join(root, SNAPSHOT_DIRECTORY)])).stdout.trim()).toBe('v@snap');
  });

  it.skipIf(plainMethod === 'reflink')(
    `makes a copy where the filesystem has no reflinks only when asked to${plainMethod === 'reflink' ? ' (skipped: the temp directory has reflinks)' : ''}`,
    async () => {
      const auto = new LocalFileBackend({ roots: [root] });
      const info = await auto.provision({ name: 'v', size: MiB });
      const refused = await auto.snapshot(info.locator, 'snap').catch((caught: unknown) => caught);
      expect(refused).toMatchObject({
        kind: 'unsupported',
        locator: info.locator,
        message: expect.stringMatching(/has no reflinks.*idle.*snapshot: "copy"/),
      });
      expect(await auto.listSnapshots(info.locator)).toEqual([]);
      expect((await run('ls', ['-A', join(root, SNAPSHOT_DIRECTORY)])).stdout.trim()).toBe('');
      expect(await auto.snapshot(info.locator, 'snap', { allowCopy: true })).toMatchObject({
        method: 'copy',
      });

      // reflink: never a copy, not even when one is allowed.
      const reflinkOnly = new LocalFileBackend({ roots: [root], snapshotMode: 'reflink' });
      for (const options of [{}, { allowCopy: true }]) {
        const error = await reflinkOnly
          .snapshot(info.locator, 'snap-2', options)
          .catch((caught: unknown) => caught);
        expect(error).toMatchObject({
          kind: 'unsupported',
          message: expect.stringMatching(/has no reflinks/),
        });
      }
      // copy: copies instead of reflinks, and only copies asked for.
      const copying = new LocalFileBackend({ roots: [root], snapshotMode: 'copy' });
      await expectKind(copying.snapshot(info.locator, 'snap-3'), 'unsupported');
      expect(await copying.snapshot(info.locator, 'snap-3', { allowCopy: true })).toMatchObject({
        method: 'copy',
      });
      expect((await auto.listSnapshots(info.locator)).map((s) => s.name)).toEqual(['snap', 'snap-3']);
    },
  );

  /** A sparse volume of `size` with 64 KiB of data every 64 MiB: cheap to make, seconds to copy. */
  const sparseVolume = async (backend: LocalFileBackend, size: number) => {
    const info = await backend.provision({ name: 'big', size });
    const writer = await backend.openWriter(info.locator);
    for (let at = 0; at < size; at += 64 * MiB) await writer.write(pattern(64 * 1024, at / MiB), at);
    await writer.close();
    return info;
  };

  it('reports a copy’s progress a few times a second, up to the whole', async () => {
    const backend = new LocalFileBackend({ roots: [root], snapshotMode: 'copy' });
    const info = await sparseVolume(backend, 512 * MiB);
    const reports: { done: number; total: number; at: number }[] = [];
    const started = performance.now();
    const snapshot = await backend.snapshot(info.locator, 'snap', {
      allowCopy: true,
      onProgress: (done, total) => reports.push({ done, total, at: performance.now() }),
    });
    const elapsed = performance.now() - started;
    expect(snapshot.method).toBe('copy');
    expect(reports.at(0)).toMatchObject({ done: 0, total: info.size });
    expect(reports.at(-1)).toMatchObject({ done: info.size, total: info.size });
    for (const [index, report] of reports.entries()) {
      expect(report.total).toBe(info.size);
      if (index === 0) continue;
      expect(report.done).toBeGreaterThan(reports[index - 1]!.done);
      // At most four a second, the last one excepted (it comes when the copy is whole).
      if (index < reports.length - 1) expect(report.at - reports[index - 1]!.at).toBeGreaterThanOrEqual(240);
    }
    // And no long silences: about one every 250 ms while the copy runs.
    expect(reports.length).toBeGreaterThanOrEqual(Math.floor(elapsed / 250));
    const read = await readAll(await backend.openReader(snapshot.locator));
    for (let at = 0; at < info.size; at += 64 * MiB) {
      expectBytes(read.subarray(at, at + 64 * 1024), pattern(64 * 1024, at / MiB), `the copy at ${at}`);
    }
  });

  it('stops a copy within a second of its signal aborting, leaving no partial file', async () => {
    const backend = new LocalFileBackend({ roots: [root], snapshotMode: 'copy' });
    const info = await sparseVolume(backend, 4096 * MiB);
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    let reports = 0;
    let abortedAt: number | undefined;
    const abort = () => {
      if (abortedAt !== undefined) return;
      abortedAt = performance.now();
      controller.abort(reason);
    };
    // Cancelled well into the copy: after two reports past the first, or a second without them.
    const timer = setTimeout(abort, 1000);
    const copying = backend.snapshot(info.locator, 'snap', {
      allowCopy: true,
      signal: controller.signal,
      onProgress: () => {
        if (++reports >= 3) abort();
      },
    });
    const outcome = await Promise.race([
      copying.then(
        () => 'finished',
        (error: unknown) => error,
      ),
      new Promise((resolve) => setTimeout(resolve, 5000, 'still copying 5 s on')),
    ]);
    clearTimeout(timer);
    const stoppedAfter = performance.now() - abortedAt!;
    expect(outcome).toMatchObject({ kind: 'io', message: expect.stringMatching(/cancelled/), cause: reason });
    expect(stoppedAfter).toBeLessThan(1000);
    expect(await backend.listSnapshots(info.locator)).toEqual([]);
    expect((await run('ls', ['-A', join(root, SNAPSHOT_DIRECTORY)])).stdout.trim()).toBe('');
    // A signal aborted already stops it before a byte is copied.
    const early = await backend
      .snapshot(info.locator, 'snap', { signal: AbortSignal.abort(reason) })
      .catch((caught: unknown) => caught);
    expect(early).toMatchObject({ kind: 'io', cause: reason });
  });

  it('removes the partial file a copy killed mid-way left, at the next snapshot or delete of the volume', async () => {
    const backend = new LocalFileBackend({ roots: [root], snapshotMode: 'copy' });
    const info = await backend.provision({ name: 'vol.img', size: MiB });
    const directory = join(root, SNAPSHOT_DIRECTORY);
    await mkdir(directory, { recursive: true });
    // A pid that surely is gone: a child that has exited.
    const dead = await new Promise<number>((resolve) => {
      const child = execFile(process.execPath, ['-e', '0']);
      child.on('exit', () => resolve(child.pid!));
    });
    const stale = join(directory, `.vol.img@stowage-job-x.${dead}-0a1b2c3d4e5f.partial`);
    const older = join(directory, '.vol.img@old.0a1b2c3d4e5f.partial');
    const live = join(directory, `.vol.img@running.${process.pid}-0a1b2c3d4e5f.partial`);
    const other = join(directory, `.other.img@x.${dead}-0a1b2c3d4e5f.partial`);
    for (const path of [stale, older, live, other]) await writeFile(path, 'partial copy');
    await backend.snapshot(info.locator, 'next', { allowCopy: true });
    const left = (await run('ls', ['-A', directory])).stdout.trim().split('\n').sort();
    expect(left).toEqual(
      [
        'vol.img@next',
        `.vol.img@running.${process.pid}-0a1b2c3d4e5f.partial`,
        `.other.img@x.${dead}-0a1b2c3d4e5f.partial`,
      ].sort(),
    );
    await writeFile(stale, 'partial copy');
    await backend.deleteSnapshot(join(directory, 'vol.img@next'));
    await backend.deleteVolume(info.locator);
    await expect(stat(stale)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(live)).resolves.toBeDefined();
  });

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
