import { existsSync, realpathSync } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { Context } from 'hono';
import type { ManagerConfig } from '../config.js';

/** Answers a GET for a file of the console's static export, or undefined when it is not one. */
export type AssetServer = (c: Context) => Promise<Response | undefined>;

/** apps/console/out, from src/http under vitest or dist/http once built: both are three levels down. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../../console/out', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  // The export's React Server Component payloads, fetched on client-side navigation.
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.webmanifest': 'application/manifest+json',
};

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);
/** Text types are sent compressed when the browser accepts it; fonts and images are compressed already. */
const COMPRESSIBLE = /^(text\/|application\/(json|manifest\+json)|image\/svg)/;

/** Next puts a content hash in every name under /_next/static/: such a file never changes. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * The console's files (apps/console's static export), served beside the API on the same port. A path maps
 * to a file inside the directory only: `..` segments are refused before any lookup and every candidate is
 * resolved through its symlinks and must still lie inside. `/volumes` is `volumes.html` (the export's page
 * files), `/` and directories are their `index.html`. HTML is `no-cache` (a new build shows at once), hashed
 * assets are cached for a year. Text is sent with brotli or gzip when the browser accepts it.
 */
export function consoleAssets(config: ManagerConfig): AssetServer | undefined {
  const dir = config.consoleDir ?? DEFAULT_CONSOLE_DIR;
  if (!existsSync(dir)) return undefined;
  const root = realpathSync(dir);
  // Compressed once per file and encoding: the export is a few megabytes at most, and does not change while
  // the manager runs (a new build is served after a restart).
  const compressed = new Map<string, Promise<Buffer>>();
  const encode = (file: string, encoding: 'br' | 'gzip', body: Buffer): Promise<Buffer> => {
    const key = `${encoding}:${file}`;
    let result = compressed.get(key);
    if (result === undefined) {
      result =
        encoding === 'br'
          ? brotli(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 9 } })
          : gzipAsync(body, { level: 9 });
      compressed.set(key, result);
    }
    return result;
  };

  const find = async (relative: string): Promise<string | undefined> => {
    try {
      const real = await realpath(join(root, relative));
      if (!real.startsWith(root + sep)) return undefined;
      return (await stat(real)).isFile() ? real : undefined;
    } catch {
      return undefined;
    }
  };

  return async (c) => {
    const relative = safeRelativePath(c.req.path);
    if (relative === undefined) return undefined;
    // `/` is the console for a browser (which asks for text/html) and the API's index for everyone else
    // (`curl`, scripts, fetch's `*/*`).
    if (relative === '' && !acceptsHtml(c)) return undefined;
    const candidates =
      relative === '' || relative.endsWith('/')
        ? [`${relative}index.html`]
        : [relative, `${relative}.html`, `${relative}/index.html`];
    let file: string | undefined;
    for (const candidate of candidates) {
      file = await find(candidate);
      if (file !== undefined) break;
    }
    let status = 200;
    if (file === undefined) {
      // A page the export does not have: its 404 page, for browsers; API clients get the JSON not_found.
      if (!acceptsHtml(c)) return undefined;
      file = await find('404.html');
      if (file === undefined) return undefined;
      status = 404;
    }
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    const headers: Record<string, string> = {
      'content-type': type,
      'cache-control': relative.startsWith('_next/static/') && status === 200 ? IMMUTABLE : 'no-cache',
      'x-content-type-options': 'nosniff',
    };
    if (type.startsWith('text/html')) {
      headers['x-frame-options'] = 'DENY';
      headers['referrer-policy'] = 'same-origin';
    }
    let body: Buffer = await readFile(file);
    if (COMPRESSIBLE.test(type) && body.byteLength > 1024) {
      headers.vary = 'accept-encoding';
      const accepted = c.req.header('accept-encoding') ?? '';
      const encoding = /\bbr\b/.test(accepted) ? 'br' : /\bgzip\b/.test(accepted) ? 'gzip' : undefined;
      if (encoding !== undefined) {
        body = await encode(file, encoding, body);
        headers['content-encoding'] = encoding;
      }
    }
    headers['content-length'] = String(body.byteLength);
    return new Response(c.req.method === 'HEAD' ? null : body, { status, headers });
  };
}

function acceptsHtml(c: Context): boolean {
  return (c.req.header('accept') ?? '').includes('text/html');
}

/** The request path as a path relative to the export, or undefined when it could leave it. */
export function safeRelativePath(path: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/').slice(1);
  if (segments.some((s) => s === '..' || s === '.')) return undefined;
  // Empty segments (`//`) would let join() climb nowhere, but they are not a page either.
  if (segments.slice(0, -1).some((s) => s === '')) return undefined;
  return segments.join('/');
}
