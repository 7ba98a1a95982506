// `npm start`: a tour of the engine on embedded defaults. Makes a demo volume image under .stowage-demo/,
// backs it up to a filesystem repository, changes it, backs it up again, verifies and restores it, and prints
// the CLI commands to go on with. Needs no S3, no database and no root.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_CHUNKER_PARAMS } from '@stowage/chunker';
import {
  type BackupSummary,
  backupVolume,
  ChunkWorkers,
  EngineError,
  openVolumeSource,
  Repository,
  restoreBackup,
  verifyBackup,
} from '@stowage/engine';
import { createDefaultStoreStack, openObjectStore } from '@stowage/object-store';

const dataDir = resolve(process.env.STOWAGE_DATA_DIR ?? '.stowage-demo');
const DEMO_PASSPHRASE = 'demo passphrase';
const passphrase = process.env.STOWAGE_PASSPHRASE ?? DEMO_PASSPHRASE;
const repoUrl = pathToFileURL(`${dataDir}/repository`).href;
const volumePath = `${dataDir}/volumes/demo.img`;
const restoredPath = `${dataDir}/volumes/demo-restored.img`;
const MiB = 1 << 20;

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A 512 MiB sparse image with some text-like and random regions, as a lightly used filesystem looks. */
async function makeVolume(path: string, size: number): Promise<void> {
  const f = await open(path, 'w');
  await f.truncate(size);
  const words =
    'stowage backup volume chunk manifest restore verify bucket encrypt zstd blake3 fastcdc '.split(' ');
  for (let region = 0; region < 24; region++) {
    const at = Math.floor((region / 24) * size);
    const text = Array.from({ length: 200_000 }, (_, i) => words[(i * 7 + region) % words.length]).join(' ');
    await f.write(Buffer.from(text), 0, undefined, at);
    await f.write(randomBytes(2 * MiB), 0, undefined, at + 4 * MiB);
  }
  await f.close();
}

function line(label: string, value: string): void {
  console.log(`  ${label.padEnd(22)} ${value}`);
}

async function main(): Promise<void> {
  await mkdir(`${dataDir}/volumes`, { recursive: true });
  const store = createDefaultStoreStack(openObjectStore(repoUrl));
  let repository: Repository;
  try {
    repository = await Repository.open(store, { passphrase });
  } catch (error) {
    if (!(error instanceof EngineError && error.code === 'repository-not-found')) throw error;
    repository = await Repository.init(store, { passphrase, chunker: DEFAULT_CHUNKER_PARAMS });
    console.log(`created repository ${repoUrl}`);
  }
  if (!(await stat(volumePath).catch(() => undefined))) await makeVolume(volumePath, 512 * MiB);

  const workers = new ChunkWorkers(repository.targetKey);
  try {
    const first = await backupOnce(repository, workers, 'first backup');
    // A day of changes: rewrite 8 MiB in the middle of the volume.
    const f = await open(volumePath, 'r+');
    await f.write(randomBytes(8 * MiB), 0, undefined, 200 * MiB);
    await f.close();
    const second = await backupOnce(repository, workers, 'after changes');

    const report = await verifyBackup({ repository, workers, backup: second });
    console.log(`verify: ${report.chunksChecked} chunks checked, ${report.problems.length} problems`);
    if (report.problems.length > 0) process.exitCode = 1;

    await rm(restoredPath, { force: true });
    const restored = await restoreBackup({
      repository,
      workers,
      backup: second,
      targetPath: restoredPath,
    });
    const same = (await sha256(volumePath)) === (await sha256(restoredPath));
    console.log(
      `restore: ${restored.size / MiB} MiB in ${restored.seconds.toFixed(2)} s, byte-exact: ${same ? 'yes' : 'NO'}`,
    );
    if (!same) process.exitCode = 1;

    console.log('\nGo on from the command line:');
    // A passphrase the user chose is never printed.
    if (passphrase === DEMO_PASSPHRASE) console.log(`  export STOWAGE_PASSPHRASE='${passphrase}'`);
    console.log(`  npx agent ls --repo ${repoUrl}`);
    console.log(`  npx agent backup ${volumePath} --repo ${repoUrl} --volume demo --json`);
    console.log(`  npx agent verify ${first.backupId.slice(0, 8)} --repo ${repoUrl} --sample 10`);
    console.log(
      `  npx agent restore ${second.backupId.slice(0, 8)} --repo ${repoUrl} --to /tmp/demo-copy.img`,
    );
    console.log(`  npx agent chunks ${volumePath} --json | head -c 300`);
  } finally {
    await workers.close();
  }
}

async function backupOnce(
  repository: Repository,
  workers: ChunkWorkers,
  label: string,
): Promise<BackupSummary> {
  const source = await openVolumeSource(volumePath);
  try {
    const s = await backupVolume({ repository, source, workers, volumeName: 'demo' });
    console.log(`\n${label}: backup ${s.backupId}`);
    line('volume size', `${(s.size / MiB).toFixed(0)} MiB`);
    line('chunks (new / all)', `${s.chunksNew} / ${s.chunks}, ${s.holes} holes`);
    line('uploaded', `${(s.bytesUploaded / MiB).toFixed(1)} MiB`);
    line('throughput', `${(s.size / MiB / s.seconds).toFixed(0)} MiB/s (${s.seconds.toFixed(2)} s)`);
    return s;
  } finally {
    await source.close();
  }
}

await main();
