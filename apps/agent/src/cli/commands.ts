import { type ParseArgsConfig, parseArgs } from 'node:util';
import { DEFAULT_CHUNKER_PARAMS, StreamingChunker, validateChunkerParams } from '@stowage/chunker';
import {
  backupVolume,
  type ChunkWorkers,
  openVolumeSource,
  Repository,
  restoreBackup,
  verifyBackup,
} from '@stowage/engine';
import { type CliEnv, openRepository, openStore, readPassphrase } from './context.js';
import { EXIT, UsageError } from './exit-codes.js';
import { formatBytes, progressBar } from './progress-bar.js';

type Options = NonNullable<ParseArgsConfig['options']>;

const repoOption = { repo: { type: 'string' } } as const satisfies Options;
const chunkerOptions = {
  min: { type: 'string' },
  avg: { type: 'string' },
  max: { type: 'string' },
  level: { type: 'string' },
  seed: { type: 'string' },
} as const satisfies Options;

function parse<T extends Options>(args: string[], options: T, positionals: string[]) {
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
  >;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0]!);
  }
  if (parsed.positionals.length !== positionals.length) {
    const want = positionals.length === 0 ? 'no arguments' : positionals.join(' ');
    throw new UsageError(
      `expected ${want}, got ${parsed.positionals.length ? parsed.positionals.join(' ') : 'none'}`,
    );
  }
  return parsed;
}

/** Parses a size like 1048576, 1024K, 1M or 4MiB. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)\s*(k|kib|m|mib|g|gib)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what} must be a size such as 1048576, 256K or 4M, got "${text}"`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

function chunkerParamsFrom(values: Partial<Record<keyof typeof chunkerOptions, string | undefined>>) {
  const d = DEFAULT_CHUNKER_PARAMS;
  const level = values.level === undefined ? d.level : Number(values.level);
  let seed = d.seed;
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed))
      throw new UsageError(`--seed must be an unsigned integer, got "${values.seed}"`);
    seed = BigInt(values.seed);
  }
  try {
    return validateChunkerParams({
      minSize: values.min === undefined ? d.minSize : parseSize(values.min, '--min'),
      avgSize: values.avg === undefined ? d.avgSize : parseSize(values.avg, '--avg'),
      maxSize: values.max === undefined ? d.maxSize : parseSize(values.max, '--max'),
      level,
      seed,
    });
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError((error as Error).message);
  }
}

function print(cli: CliEnv, text: string): void {
  cli.stdout.write(`${text}\n`);
}

function json(cli: CliEnv, value: unknown): void {
  print(
    cli,
    JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
  );
}

interface OpenedRepository {
  repository: Repository;
  workers: ChunkWorkers;
  bar: ReturnType<typeof progressBar>;
}

/** Runs `fn` on the repository named by --repo, with a progress bar; closes both whatever happens. */
async function withRepository<T>(
  url: string | undefined,
  cli: CliEnv,
  fn: (opened: OpenedRepository) => Promise<T>,
): Promise<T> {
  const { repository, workers, close } = await openRepository(url, cli);
  const bar = progressBar(cli.stderr);
  try {
    return await fn({ repository, workers, bar });
  } finally {
    bar.done();
    await close();
  }
}

export async function repoInit(args: string[], cli: CliEnv): Promise<number> {
  const { values } = parse(args, { ...repoOption, ...chunkerOptions, json: { type: 'boolean' } }, []);
  const chunker = chunkerParamsFrom(values);
  const store = openStore(values.repo, cli);
  const passphrase = await readPassphrase(cli, { confirm: true });
  const repository = await Repository.init(store, { passphrase, chunker });
  if (values.json) json(cli, { repository_id: repository.config.repositoryId, location: store.location });
  else print(cli, `created repository ${repository.config.repositoryId} at ${store.location}`);
  return EXIT.ok;
}

export async function backup(args: string[], cli: CliEnv): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...repoOption, volume: { type: 'string' }, json: { type: 'boolean' } },
    ['FILE_OR_DEVICE'],
  );
  const volumeName = values.volume;
  if (!volumeName) throw new UsageError('--volume NAME is required');
  const source = await openVolumeSource(positionals[0]!);
  try {
    return await withRepository(values.repo, cli, async ({ repository, workers, bar }) => {
      const s = await backupVolume({
        repository,
        source,
        workers,
        volumeName,
        onProgress: bar.update,
        signal: cli.signal,
      });
      bar.done();
      if (values.json) {
        json(cli, {
          backup_id: s.backupId,
          volume_id: s.volumeId,
          volume: s.volumeName,
          manifest_key: s.manifestKey,
          created_at: s.createdAt,
          size: s.size,
          bytes_read: s.bytesRead,
          bytes_uploaded: s.bytesUploaded,
          chunks: s.chunks,
          chunks_new: s.chunksNew,
          holes: s.holes,
          hole_bytes: s.holeBytes,
          seconds: Number(s.seconds.toFixed(3)),
        });
      } else {
        if (cli.stderr.isTTY) {
          cli.stderr.write(
            `backed up ${formatBytes(s.size)} in ${s.seconds.toFixed(1)} s: ${s.chunksNew} of ${s.chunks} chunks new, ` +
              `${formatBytes(s.bytesUploaded)} uploaded, ${s.holes} holes\n`,
          );
        }
        print(cli, s.backupId);
      }
      return EXIT.ok;
    });
  } finally {
    await source.close();
  }
}

export async function ls(args: string[], cli: CliEnv): Promise<number> {
  const { values } = parse(args, { ...repoOption, json: { type: 'boolean' } }, []);
  return withRepository(values.repo, cli, async ({ repository }) => {
    const { backups, damaged } = await repository.listBackups();
    if (values.json) {
      json(
        cli,
        backups.map((b) => ({
          backup_id: b.backupId,
          volume_id: b.volumeId,
          volume: b.volumeName,
          size: b.volumeSize,
          created_at: b.createdAt,
          chunks: b.chunks,
          manifest_key: b.manifestKey,
        })),
      );
    } else {
      print(cli, `${'backup id'.padEnd(36)}  ${'created'.padEnd(24)}  ${'size'.padStart(10)}  volume`);
      for (const b of backups) {
        print(
          cli,
          `${b.backupId}  ${b.createdAt.padEnd(24)}  ${formatBytes(b.volumeSize).padStart(10)}  ${b.volumeName}`,
        );
      }
    }
    // The readable backups are listed all the same; each damaged manifest gets a line and the exit code says so.
    for (const { ref, error } of damaged) {
      const named = error.message.includes(ref.manifestKey)
        ? error.message
        : `${ref.manifestKey}: ${error.message}`;
      cli.stderr.write(`agent: ${named}\n`);
    }
    if (damaged.length > 0) {
      cli.stderr.write(
        `agent: ${damaged.length} manifest${damaged.length === 1 ? '' : 's'} could not be read; their backups are not listed\n`,
      );
      return EXIT.integrity;
    }
    return EXIT.ok;
  });
}

export async function restore(args: string[], cli: CliEnv): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...repoOption, to: { type: 'string' }, overwrite: { type: 'boolean' }, json: { type: 'boolean' } },
    ['BACKUP_ID'],
  );
  const to = values.to;
  if (!to) throw new UsageError('--to FILE_OR_DEVICE is required');
  return withRepository(values.repo, cli, async ({ repository, workers, bar }) => {
    const ref = await repository.resolveBackup(positionals[0]!);
    const s = await restoreBackup({
      repository,
      workers,
      backup: ref,
      targetPath: to,
      overwrite: values.overwrite ?? false,
      onProgress: bar.update,
      signal: cli.signal,
    });
    bar.done();
    if (values.json) {
      json(cli, {
        backup_id: s.backupId,
        size: s.size,
        bytes_downloaded: s.bytesDownloaded,
        chunks: s.chunks,
        holes: s.holes,
        seconds: Number(s.seconds.toFixed(3)),
      });
    } else {
      print(cli, `restored ${s.backupId} (${formatBytes(s.size)}) to ${to} in ${s.seconds.toFixed(1)} s`);
    }
    return EXIT.ok;
  });
}

export async function verify(args: string[], cli: CliEnv): Promise<number> {
  const { values, positionals } = parse(
    args,
    { ...repoOption, sample: { type: 'string' }, json: { type: 'boolean' } },
    ['BACKUP_ID'],
  );
  let samplePercent = 100;
  if (values.sample !== undefined) {
    samplePercent = Number(values.sample.replace(/%$/, ''));
    if (!(samplePercent > 0 && samplePercent <= 100)) {
      throw new UsageError(`--sample must be a percentage in (0, 100], got "${values.sample}"`);
    }
  }
  return withRepository(values.repo, cli, async ({ repository, workers, bar }) => {
    const ref = await repository.resolveBackup(positionals[0]!);
    const r = await verifyBackup({
      repository,
      workers,
      backup: ref,
      samplePercent,
      onProgress: bar.update,
      signal: cli.signal,
    });
    bar.done();
    if (values.json) {
      json(cli, {
        backup_id: r.backupId,
        ok: r.problems.length === 0,
        chunks_total: r.chunksTotal,
        chunks_checked: r.chunksChecked,
        bytes_checked: r.bytesChecked,
        problems: r.problems.map((p) => ({ object: p.objectKey, message: p.message })),
        seconds: Number(r.seconds.toFixed(3)),
      });
    } else {
      for (const p of r.problems) cli.stderr.write(`error: ${p.message}\n`);
      print(
        cli,
        r.problems.length === 0
          ? `backup ${r.backupId} ok: ${r.chunksChecked} of ${r.chunksTotal} chunks checked (${formatBytes(r.bytesChecked)})`
          : `backup ${r.backupId} DAMAGED: ${r.problems.length} bad chunk(s) of ${r.chunksChecked + r.problems.length} checked`,
      );
    }
    return r.problems.length === 0 ? EXIT.ok : EXIT.integrity;
  });
}

export async function chunks(args: string[], cli: CliEnv): Promise<number> {
  const { values, positionals } = parse(args, { ...chunkerOptions, json: { type: 'boolean' } }, ['FILE']);
  const params = chunkerParamsFrom(values);
  const source = await openVolumeSource(positionals[0]!);
  // Streamed, so a multi-GiB image needs no more memory than one read buffer.
  const chunker = new StreamingChunker(params);
  const buffer = new Uint8Array(8 << 20);
  let offset = 0;
  let first = true;
  const emit = (lengths: number[]) => {
    let out = '';
    for (const length of lengths) {
      out += values.json
        ? `${first ? '[' : ','}{"offset":${offset},"length":${length}}`
        : `${offset}\t${length}\n`;
      first = false;
      offset += length;
    }
    if (out) cli.stdout.write(out);
  };
  try {
    for (let position = 0; position < source.size; ) {
      const n = await source.read(
        buffer.subarray(0, Math.min(buffer.length, source.size - position)),
        position,
      );
      if (n === 0) break;
      position += n;
      emit(chunker.push(buffer.subarray(0, n)));
    }
    emit(chunker.finish());
  } finally {
    await source.close();
  }
  if (values.json) cli.stdout.write(first ? '[]\n' : ']\n');
  return EXIT.ok;
}
