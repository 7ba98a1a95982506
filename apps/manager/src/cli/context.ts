import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ManagerClient } from '@stowage/api';
import { CliError, EXIT, UsageError } from './exit-codes.js';

export type OutStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/** What a command may take from its surroundings; injected so tests run commands in process. */
export interface CliEnv {
  env: NodeJS.ProcessEnv;
  stdout: OutStream;
  stderr: OutStream;
  signal: AbortSignal;
  cwd: string;
  /** Milliseconds, for throttling plain progress lines. */
  now: () => number;
}

/** The options every client command takes (command-specs.ts `client`). */
export interface ConnectionOptions {
  url?: string | undefined;
  'token-file'?: string | undefined;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(text: string): boolean {
  return UUID.test(text);
}

/** The embedded home, as `parseConfig` resolves it. */
export function homeDir(cli: Pick<CliEnv, 'env' | 'cwd'>): string {
  const home = cli.env.STOWAGE_HOME || '.stowage';
  return isAbsolute(home) ? home : resolve(cli.cwd, home);
}

function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function readTokenFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new UsageError(`cannot read ${what} ${path}: ${code}`, { hint: false });
  }
  const token = text.trim();
  if (token === '') throw new UsageError(`${what} ${path} is empty`, { hint: false });
  return token;
}

/**
 * Where client commands go and with which token: `--url`, `MANAGER_URL`, or the embedded manager
 * (`http://127.0.0.1:$PORT`); `--token-file`, `MANAGER_TOKEN`, `MANAGER_TOKEN_FILE`, or the home's
 * `admin-token`. The home's token is only ever sent to a loopback URL: pointing MANAGER_URL at another manager
 * must not hand it the local admin token.
 */
export function resolveConnection(
  options: ConnectionOptions,
  cli: Pick<CliEnv, 'env' | 'cwd'>,
): { baseUrl: string; token: string } {
  const { env } = cli;
  const given = options.url ?? (env.MANAGER_URL || undefined);
  const port = env.PORT || '8080';
  if (given === undefined && !/^\d+$/.test(port))
    throw new UsageError(`PORT must be a port number, got "${port}"`, { hint: false });
  const text = given ?? `http://127.0.0.1:${port}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${options.url === undefined ? 'MANAGER_URL' : '--url'} is not a URL: "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`the manager URL must be http:// or https://, got "${text}"`);
  }
  let token: string;
  if (options['token-file'] !== undefined)
    token = readTokenFile(resolve(cli.cwd, options['token-file']), 'token file');
  else if (env.MANAGER_TOKEN) token = env.MANAGER_TOKEN.trim();
  else if (env.MANAGER_TOKEN_FILE)
    token = readTokenFile(resolve(cli.cwd, env.MANAGER_TOKEN_FILE), 'MANAGER_TOKEN_FILE');
  else {
    const file = join(homeDir(cli), 'admin-token');
    if (!isLoopback(url)) {
      throw new UsageError(
        `no token for ${url.origin}: set MANAGER_TOKEN or MANAGER_TOKEN_FILE, or pass --token-file ` +
          '(the embedded home’s admin token is only sent to a loopback URL)',
        { hint: false },
      );
    }
    try {
      token = readTokenFile(file, 'the admin token');
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      throw new UsageError(
        `no token: set MANAGER_TOKEN or MANAGER_TOKEN_FILE, pass --token-file, or start the embedded manager ` +
          `("npx manager start" writes ${file})`,
        { hint: false },
      );
    }
  }
  return { baseUrl: text, token };
}

export function connect(options: ConnectionOptions, cli: CliEnv): ManagerClient {
  const { baseUrl, token } = resolveConnection(options, cli);
  try {
    return new ManagerClient({ baseUrl, token });
  } catch (error) {
    throw new UsageError((error as Error).message, { hint: false });
  }
}

/** A host given by id or by name (`--host local`). */
export async function hostId(client: ManagerClient, ref: string, signal: AbortSignal): Promise<string> {
  if (isUuid(ref)) return ref.toLowerCase();
  for await (const host of client.paginate(client.listHosts, {}, signal))
    if (host.name === ref) return host.id;
  throw new CliError(`no host named ${JSON.stringify(ref)}`, EXIT.notFound);
}

/** A backup target given by id or by name (`--target local`). */
export async function targetId(client: ManagerClient, ref: string, signal: AbortSignal): Promise<string> {
  if (isUuid(ref)) return ref.toLowerCase();
  for await (const target of client.paginate(client.listTargets, {}, signal))
    if (target.name === ref) return target.id;
  throw new CliError(`no backup target named ${JSON.stringify(ref)}`, EXIT.notFound);
}

/** An id argument: checked here, so a typo is a usage error rather than the server's 400. */
export function idArg(name: string, text: string | undefined): string {
  if (text === undefined || !isUuid(text)) {
    throw new UsageError(`${name} must be an id (a UUID), got ${JSON.stringify(text ?? '')}`);
  }
  return text.toLowerCase();
}
