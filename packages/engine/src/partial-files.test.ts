// Partial restore files: a restore killed with SIGKILL leaves its hidden `.NAME.stowage-partial-…` file (the
// size of the volume); the next restore to the same target removes it, and never the partial file of a restore
// still running in another process. The restores here run in real child processes.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FsObjectStore } from '@stowage/object-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupSummary } from './backup.js';
import { backupVolume } from './backup.js';
import { Repository } from './repository.js';
import { restoreBackup } from './restore.js';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from './testing/repositories.js';
import { seededBytes, sha256File, writeImage } from './testing/volumes.js';
import { openVolumeSource, openVolumeTarget, removeStalePartialFiles } from './volume-io.js';
import { ChunkWorkers } from './workers/chunk-workers.js';

const childScript = fileURLToPath(new URL('./testdata/stalling-restore.ts', import.meta.url));
const SIZE = 4 << 20;

let dir: string;
let root: string;
let image: string;
let repository: Repository;
let workers: ChunkWorkers;
let backup: BackupSummary;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-partial-'));
  root = join(dir, 'repo');
  repository = await Repository.init(new FsObjectStore({ root }), {
    passphrase: TEST_PASSPHRASE,
    chunker: TEST_CHUNKER_PARAMS,
    kdf: TEST_KDF,
  });
  workers = new ChunkWorkers(repository.targetKey, { threads: 2 });
  image = join(dir, 'volume.img');
  await writeImage(image, SIZE, [{ offset: 0, data: seededBytes('partial', SIZE) }]);
  const source = await openVolumeSource(image);
  backup = await backupVolume({ repository, workers, source, volumeName: 'partial' }).finally(() =>
    source.close(),
  );
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await workers?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Starts a restore of the backup to `target` in a child process; resolves once its chunk GETs stall. */
async function stalledRestore(target: string): Promise<ChildProcess> {
  const ref = { volumeId: backup.volumeId, backupId: backup.backupId, manifestKey: backup.manifestKey };
  const child = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      childScript,
      root,
      Buffer.from(repository.targetKey).toString('hex'),
      JSON.stringify(ref),
      target,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  child.on('exit', () => children.delete(child));
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('stalled')) resolve();
    });
    child.on('exit', (code) =>
      reject(new Error(`restore child exited with ${code} before stalling: ${stderr}`)),
    );
  });
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

async function partialFiles(directory: string, name: string): Promise<string[]> {
  return (await readdir(directory)).filter((f) => f.startsWith(`.${name}.stowage-partial-`)).sort();
}

describe('stale partial restore files', () => {
  it('the next restore removes the partial file of a restore killed with SIGKILL', async () => {
    const target = join(dir, 'killed.img');
    const child = await stalledRestore(target);
    const [partial] = await partialFiles(dir, 'killed.img');
    expect(partial).toMatch(
      new RegExp(`^\\.killed\\.img\\.stowage-partial-[0-9a-f]{8}-${child.pid}-[0-9a-f]{12}$`),
    );
    await kill9(child);
    // What a kill -9 leaves: the hidden file, the size of the whole volume, and no target.
    expect((await stat(join(dir, partial!))).size).toBe(SIZE);
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });

    await restoreBackup({ repository, workers, backup, targetPath: target });
    expect(await sha256File(target)).toBe(await sha256File(image));
    expect(await partialFiles(dir, 'killed.img')).toEqual([]);
  });

  it('a restore beside one still running in another process leaves that one alone', async () => {
    const target = join(dir, 'shared.img');
    const child = await stalledRestore(target);
    const [running] = await partialFiles(dir, 'shared.img');
    expect(running).toBeDefined();

    await restoreBackup({ repository, workers, backup, targetPath: target });
    expect(await sha256File(target)).toBe(await sha256File(image));
    expect(await partialFiles(dir, 'shared.img')).toEqual([running]);

    // Once its writer is gone, the next restore to the target (here over it) removes it.
    await kill9(child);
    await restoreBackup({ repository, workers, backup, targetPath: target, overwrite: true });
    expect(await partialFiles(dir, 'shared.img')).toEqual([]);
  });

  it('removes only files of dead writers on this host, of this target', async () => {
    const target = join(dir, 'planted.img');
    // Our own writer tag, from a partial file this process opens (and discards).
    const opened = await openVolumeTarget(target, 10);
    const [own] = await partialFiles(dir, 'planted.img');
    await opened.discard();
    const tag = /stowage-partial-([0-9a-f]{8})-/.exec(own!)![1]!;
    const deadPid = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', '0']);
      child.on('exit', () => resolve(child.pid!));
    });
    const names = {
      dead: `.planted.img.stowage-partial-${tag}-${deadPid}-0123456789ab`,
      live: `.planted.img.stowage-partial-${tag}-${process.pid}-0123456789ab`,
      otherHost: `.planted.img.stowage-partial-${tag === 'ffffffff' ? '00000000' : 'ffffffff'}-${deadPid}-0123456789ab`,
      unnamedWriter: '.planted.img.stowage-partial-0123456789ab',
      otherTarget: `.other.img.stowage-partial-${tag}-${deadPid}-0123456789ab`,
    };
    for (const name of Object.values(names)) await writeFile(join(dir, name), 'x');
    expect(await removeStalePartialFiles(target)).toEqual([join(dir, names.dead)]);
    const left = await readdir(dir);
    expect(left).not.toContain(names.dead);
    for (const name of [names.live, names.otherHost, names.unnamedWriter, names.otherTarget]) {
      expect(left).toContain(name);
    }
  });
});
