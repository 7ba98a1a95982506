import { DEFAULT_CHUNKER_PARAMS, StreamingChunker, validateChunkerParams } from '@stowage/chunker';
import {
  backupVolume,
  type ChunkWorkers,
  EngineError,
  openVolumeSource,
  type Progress,
  Repository,
  restoreBackup,
  verifyBackup,
} from '@stowage/engine';
import type { OptionValues } from './args.js';
import {
  type CliEnv,
  directIoEnv,
  openRepository,
  openStore,
  positiveIntEnv,
  readPassphrase,
} from './context.js';
import { EXIT, UsageError } from './exit-codes.js';
import { jsonMessages, jsonText, printable, printJson, printLine } from './output.js';
import { formatBytes, progressBar } from './progress-bar.js';
import type { COMMANDS } from './spec.js';

type Values<K extends keyof typeof COMMANDS> = OptionValues<(typeof COMMANDS)[K]>;

/** Parses a size like 1048576, 1024K, 1M or 4MiB. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)\s*(k|kib|m|mib|g|gib)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what} must be a size such as 1048576, 256K or 4M, got "${text}"`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

function chunkerParamsFrom(values: {
  min?: string;
  avg?: string;
  max?: string;
  level?: string;
  seed?: string;
}) {
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

/** How a long command shows its progress: JSON status lines, a bar on a terminal, or nothing. */
function progressFor(cli: CliEnv, options: { json?: boolean; quiet?: boolean }) {
  if (options.json) {
    const update = options.quiet ? () => {} : (p: Progress) => jsonMessages.status(cli, p);
    return { update, done: () => {} };
  }
  return options.quiet ? { update: () => {}, done: () => {} } : progressBar(cli.stderr);
}

type ProgressOutput = ReturnType<typeof progressFor>;

interface OpenedRepository {
  repository: Repository;
  workers: ChunkWorkers;
  progress: ProgressOutput;
}

/** Runs `fn` on the repository named by --repo, with its progress output; closes both whatever happens. */
async function withRepository<T>(
  url: string | undefined,
  cli: CliEnv,
  output: { json?: boolean; quiet?: boolean },
  fn: (opened: OpenedRepository) => Promise<T>,
): Promise<T> {
  const { repository, workers, close } = await openRepository(url, cli);
  const progress = progressFor(cli, output);
  try {
    return await fn({ repository, workers, progress });
  } finally {
    progress.done();
    await close();
  }
}

export async function repoInit(values: Values<'repoInit'>, _positionals: string[], cli: CliEnv) {
  const chunker = chunkerParamsFrom(values);
  const store = openStore(values.repo, cli);
  const passphrase = await readPassphrase(cli, { confirm: true });
  const repository = await Repository.init(store, { passphrase, chunker });
  if (values.json) {
    printJson(cli, { repository_id: repository.config.repositoryId, location: store.location });
  } else {
    printLine(
      cli,
      `created repository ${printable(repository.config.repositoryId)} at ${printable(store.location)}`,
    );
  }
  return EXIT.ok;
}

/** `repo key export`: the target key, which opens the repository without the passphrase. */
export async function repoKeyExport(values: Values<'repoKeyExport'>, _positionals: string[], cli: CliEnv) {
  const store = openStore(values.repo, cli);
  const passphrase = await readPassphrase(cli);
  const repository = await Repository.open(store, { passphrase });
  const key = Buffer.from(repository.targetKey).toString('base64');
  if (cli.stdout.isTTY) {
    cli.stderr.write('agent: this key gives full access to the repository; keep it secret\n');
  }
  if (values.json) printJson(cli, { repository_id: repository.config.repositoryId, target_key: key });
  else printLine(cli, key);
  return EXIT.ok;
}

export async function backup(values: Values<'backup'>, positionals: string[], cli: CliEnv) {
  const volumeName = values.volume;
  if (!volumeName) throw new UsageError('--volume NAME is required');
  const source = await openVolumeSource(positionals[0]!, { directIo: directIoEnv(cli) });
  try {
    return await withRepository(values.repo, cli, values, async ({ repository, workers, progress }) => {
      const packsPerIndex = positiveIntEnv(cli, 'STOWAGE_PACKS_PER_INDEX');
      const s = await backupVolume({
        repository,
        source,
        workers,
        volumeName,
        onProgress: progress.update,
        signal: cli.signal,
        ...(packsPerIndex === undefined ? {} : { packsPerIndex }),
      });
      progress.done();
      if (values.json) {
        jsonMessages.summary(cli, {
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
          chunks_repaired: s.chunksRepaired,
          packs_new: s.packs,
          holes: s.holes,
          hole_bytes: s.holeBytes,
          seconds: Number(s.seconds.toFixed(3)),
          bytes_padding: s.bytesPadding,
        });
      } else {
        if (cli.stderr.isTTY && !values.quiet) {
          cli.stderr.write(
            `backed up ${formatBytes(s.size)} in ${s.seconds.toFixed(1)} s: ${s.chunksNew} of ${s.chunks} chunks new ` +
              `in ${s.packs} packs, ${formatBytes(s.bytesUploaded)} uploaded, ${s.holes} holes\n`,
          );
        }
        printLine(cli, printable(s.backupId));
      }
      return EXIT.ok;
    });
  } finally {
    await source.close();
  }
}

export async function ls(values: Values<'ls'>, _positionals: string[], cli: CliEnv) {
  return withRepository(values.repo, cli, { quiet: true }, async ({ repository }) => {
    const { backups, damaged } = await repository.listBackups();
    if (values.json) {
      printJson(
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
      // Ids, dates and names come from manifests, which any key holder can write: all printed escaped.
      let out = `${'backup id'.padEnd(36)}  ${'created'.padEnd(24)}  ${'size'.padStart(10)}  volume\n`;
      for (const b of backups) {
        out += `${printable(b.backupId)}  ${printable(b.createdAt).padEnd(24)}  ${formatBytes(b.volumeSize).padStart(10)}  ${printable(b.volumeName)}\n`;
      }
      cli.stdout.write(out);
    }
    // The readable backups are listed all the same; each damaged manifest gets a line and the exit code says so.
    for (const { ref, error } of damaged) {
      const named = error.message.includes(ref.manifestKey)
        ? error.message
        : `${ref.manifestKey}: ${error.message}`;
      cli.stderr.write(`agent: ${printable(named)}\n`);
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

export async function restore(values: Values<'restore'>, positionals: string[], cli: CliEnv) {
  const to = values.to;
  if (!to) throw new UsageError('--to FILE_OR_DEVICE is required');
  return withRepository(values.repo, cli, values, async ({ repository, workers, progress }) => {
    const ref = await repository.resolveBackup(positionals[0]!);
    const s = await restoreBackup({
      repository,
      workers,
      backup: ref,
      targetPath: to,
      overwrite: values.overwrite ?? false,
      onProgress: progress.update,
      signal: cli.signal,
    });
    progress.done();
    if (values.json) {
      jsonMessages.summary(cli, {
        backup_id: s.backupId,
        size: s.size,
        bytes_downloaded: s.bytesDownloaded,
        chunks: s.chunks,
        holes: s.holes,
        seconds: Number(s.seconds.toFixed(3)),
      });
    } else {
      printLine(
        cli,
        `restored ${printable(s.backupId)} (${formatBytes(s.size)}) to ${printable(to)} in ${s.seconds.toFixed(1)} s`,
      );
    }
    return EXIT.ok;
  });
}

/** A percentage in (0, 100], with or without its % sign. */
function percentage(text: string, option: string): number {
  const value = Number(text.replace(/%$/, ''));
  if (!(value > 0 && value <= 100)) {
    throw new UsageError(`${option} must be a percentage in (0, 100], got "${text}"`);
  }
  return value;
}

export async function verify(values: Values<'verify'>, positionals: string[], cli: CliEnv) {
  const samplePercent = values.sample === undefined ? 100 : percentage(values.sample, '--sample');
  return withRepository(values.repo, cli, values, async ({ repository, workers, progress }) => {
    const ref = await repository.resolveBackup(positionals[0]!);
    const r = await verifyBackup({
      repository,
      workers,
      backup: ref,
      samplePercent,
      onProgress: progress.update,
      signal: cli.signal,
    });
    progress.done();
    // A chunk whose own copy is damaged but which reads whole from another stored copy restores: a warning.
    const copied = (c: (typeof r.fromCopies)[number]) => `${c.message}; restores from ${c.copy}`;
    if (values.json) {
      for (const p of r.problems) jsonMessages.error(cli, { message: p.message, object: p.objectKey });
      for (const c of r.fromCopies) {
        cli.stderr.write(
          `${jsonText({ message_type: 'warning', message: copied(c), object: c.objectKey, copy: c.copy })}\n`,
        );
      }
      jsonMessages.summary(cli, {
        backup_id: r.backupId,
        ok: r.problems.length === 0,
        chunks_total: r.chunksTotal,
        chunks_checked: r.chunksChecked,
        chunks_from_copies: r.chunksFromCopies,
        bytes_checked: r.bytesChecked,
        problems: r.problems.map((p) => ({ object: p.objectKey, message: p.message })),
        seconds: Number(r.seconds.toFixed(3)),
      });
    } else {
      for (const p of r.problems) cli.stderr.write(`error: ${printable(p.message)}\n`);
      for (const c of r.fromCopies) cli.stderr.write(`warning: ${printable(copied(c))}\n`);
      const id = printable(r.backupId);
      const fromCopies =
        r.chunksFromCopies > 0 ? `; ${r.chunksFromCopies} more restore from other copies` : '';
      printLine(
        cli,
        r.problems.length === 0
          ? `backup ${id} ok: ${r.chunksChecked} of ${r.chunksTotal} chunks checked (${formatBytes(r.bytesChecked)})${fromCopies}`
          : `backup ${id} DAMAGED: ${r.problems.length} bad chunk(s) of ${r.chunksChecked + r.problems.length} checked`,
      );
    }
    return r.problems.length === 0 ? EXIT.ok : EXIT.integrity;
  });
}

export async function chunks(values: Values<'chunks'>, positionals: string[], cli: CliEnv) {
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
      // Cancelled by a signal, or by its reader leaving (`| head`): no point reading on.
      if (cli.signal.aborted) throw new EngineError('aborted', 'chunks cancelled');
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
