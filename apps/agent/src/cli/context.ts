import { readFile } from 'node:fs/promises';
import { ChunkWorkers, EngineError, Repository } from '@stowage/engine';
import {
  createDefaultStoreStack,
  InvalidStoreUrlError,
  type ObjectStore,
  openObjectStore,
} from '@stowage/object-store';
import { UsageError } from './exit-codes.js';
import type { EnvName } from './spec.js';

/** What a command may take from its surroundings; injected so tests can run commands in process. */
export interface CliEnv {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  signal: AbortSignal;
}

export function openStore(url: string | undefined, cli: CliEnv): ObjectStore {
  const location = url ?? cli.env.STOWAGE_REPOSITORY;
  if (!location) throw new UsageError('no repository given: pass --repo URL or set STOWAGE_REPOSITORY');
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = cli.env;
  const sessionToken = cli.env.AWS_SESSION_TOKEN;
  const credentials =
    accessKeyId && secretAccessKey
      ? { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) }
      : undefined;
  let store: ObjectStore;
  try {
    store = openObjectStore(location, credentials ? { credentials } : {});
  } catch (error) {
    if (error instanceof InvalidStoreUrlError) throw new UsageError(error.message);
    throw error;
  }
  const attempts = positiveIntEnv(cli, 'STOWAGE_RETRY_ATTEMPTS');
  return createDefaultStoreStack(store, attempts ? { retry: { attempts } } : {});
}

/** A positive integer from the environment, or undefined when unset; anything else is a usage error. */
export function positiveIntEnv(cli: CliEnv, name: EnvName): number | undefined {
  const value = cli.env[name];
  if (value === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(value)) throw new UsageError(`${name} must be a positive integer, got "${value}"`);
  return Number(value);
}

/** STOWAGE_DIRECT_IO: whether a backup reads its volume past the page cache (default yes). */
export function directIoEnv(cli: CliEnv): boolean {
  const value = cli.env.STOWAGE_DIRECT_IO;
  if (value === undefined || value === '1') return true;
  if (value === '0') return false;
  throw new UsageError(`STOWAGE_DIRECT_IO must be 0 or 1, got "${value}"`);
}

/** The recovery passphrase: STOWAGE_PASSPHRASE, STOWAGE_PASSPHRASE_FILE, or a prompt on a terminal. */
export async function readPassphrase(cli: CliEnv, options: { confirm?: boolean } = {}): Promise<string> {
  if (cli.env.STOWAGE_PASSPHRASE !== undefined) return checked(cli.env.STOWAGE_PASSPHRASE);
  const file = cli.env.STOWAGE_PASSPHRASE_FILE;
  if (file) {
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read STOWAGE_PASSPHRASE_FILE ${file}: ${error.code ?? error.message}`);
    });
    return checked(text.replace(/\r?\n$/, ''));
  }
  if (!cli.stdin.isTTY) {
    throw new UsageError(
      'no passphrase: set STOWAGE_PASSPHRASE or STOWAGE_PASSPHRASE_FILE (no terminal to ask on)',
    );
  }
  const first = await prompt(cli, 'Recovery passphrase: ');
  if (options.confirm) {
    const again = await prompt(cli, 'Repeat passphrase: ');
    if (again !== first) throw new UsageError('the passphrases do not match');
  }
  return checked(first);
}

function checked(passphrase: string): string {
  if (passphrase.length === 0) throw new UsageError('the passphrase is empty');
  return passphrase;
}

/** Reads a line from the terminal without echoing it. */
function prompt(cli: CliEnv, question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const { stdin, stderr } = cli;
    stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let value = '';
    const finish = (result: Error | string) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      stderr.write('\n');
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return finish(value);
        if (ch === '\u0003') return finish(new EngineError('aborted', 'interrupted'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Opens the repository named by --repo with the recovery passphrase, and a worker pool for its key. */
export async function openRepository(
  url: string | undefined,
  cli: CliEnv,
): Promise<{ repository: Repository; workers: ChunkWorkers; close: () => Promise<void> }> {
  const store = openStore(url, cli);
  const threadsText = cli.env.STOWAGE_THREADS;
  if (threadsText !== undefined && !/^[1-9]\d*$/.test(threadsText)) {
    throw new UsageError(`STOWAGE_THREADS must be a positive integer, got "${threadsText}"`);
  }
  const passphrase = await readPassphrase(cli);
  // Threads start while the key is derived from the passphrase (scrypt takes ~0.5 s by design).
  const workers = new ChunkWorkers(undefined, threadsText ? { threads: Number(threadsText) } : {});
  try {
    const repository = await Repository.open(store, { passphrase });
    await workers.useKey(repository.targetKey);
    return { repository, workers, close: () => workers.close() };
  } catch (error) {
    await workers.close();
    throw error;
  }
}
