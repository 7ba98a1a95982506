import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidStoreUrlError } from './errors.js';
import { FsObjectStore } from './fs.js';
import { MemoryObjectStore } from './memory.js';
import type { ObjectStore } from './object-store.js';
import { type S3Credentials, S3ObjectStore } from './s3.js';

export interface OpenObjectStoreOptions {
  /** Needed for s3:// URLs; never taken from the environment by this package. */
  readonly credentials?: S3Credentials | (() => Promise<S3Credentials>);
  /** Keep-alive sockets for S3 (default 16). */
  readonly maxSockets?: number;
}

const S3_PARAMETERS = new Set(['endpoint', 'region', 'path_style']);
// S3 bucket naming rules, loosely: 3–63 lower-case letters, digits, dots and hyphens.
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Opens the store a URL names. The store is bare: wrap it with `createDefaultStoreStack`.
 * - `file:///abs/path` → FsObjectStore rooted there;
 * - `s3://bucket[/prefix][?endpoint=http://host:port&region=r&path_style=true]` → S3ObjectStore;
 * - `memory://` → a new, empty MemoryObjectStore.
 * Anything else throws an InvalidStoreUrlError saying what is wrong.
 */
export function openObjectStore(url: string, options: OpenObjectStoreOptions = {}): ObjectStore {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidStoreUrlError(url, 'not a URL; expected file:///path, s3://bucket/prefix or memory://');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new InvalidStoreUrlError(url, 'credentials do not belong in the URL; pass them as options');
  }
  switch (parsed.protocol) {
    case 'file:':
      return openFile(url, parsed);
    case 's3:':
      return openS3(url, parsed, options);
    case 'memory:':
      if (parsed.host !== '' || (parsed.pathname !== '' && parsed.pathname !== '/') || parsed.search !== '') {
        throw new InvalidStoreUrlError(url, 'memory:// takes no host, path or parameters');
      }
      return new MemoryObjectStore();
    default:
      throw new InvalidStoreUrlError(
        url,
        `unsupported scheme ${JSON.stringify(parsed.protocol.slice(0, -1))}; expected file, s3 or memory`,
      );
  }
}

function openFile(url: string, parsed: URL): ObjectStore {
  if (parsed.host !== '' && parsed.host !== 'localhost') {
    throw new InvalidStoreUrlError(url, `file URLs name a local path; remove the host ${parsed.host}`);
  }
  if (parsed.search !== '' || parsed.hash !== '') {
    throw new InvalidStoreUrlError(url, 'file URLs take no parameters');
  }
  const root = fileURLToPath(parsed);
  if (!isAbsolute(root) || root === '/') {
    throw new InvalidStoreUrlError(
      url,
      'file URLs need an absolute directory other than /, e.g. file:///srv/backups',
    );
  }
  return new FsObjectStore({ root: root.replace(/\/+$/, '') });
}

function openS3(url: string, parsed: URL, options: OpenObjectStoreOptions): ObjectStore {
  const bucket = parsed.hostname;
  if (!BUCKET_NAME.test(bucket)) {
    throw new InvalidStoreUrlError(url, `${JSON.stringify(bucket)} is not a valid bucket name`);
  }
  if (parsed.port !== '')
    throw new InvalidStoreUrlError(url, 'put the server address in ?endpoint=, not the host');
  if (parsed.hash !== '') throw new InvalidStoreUrlError(url, 's3 URLs take no #fragment');
  for (const name of parsed.searchParams.keys()) {
    if (!S3_PARAMETERS.has(name)) {
      throw new InvalidStoreUrlError(
        url,
        `unknown parameter ${name}; known: ${[...S3_PARAMETERS].join(', ')}`,
      );
    }
  }
  const endpoint = parsed.searchParams.get('endpoint') ?? undefined;
  if (endpoint !== undefined) {
    let endpointUrl: URL;
    try {
      endpointUrl = new URL(endpoint);
    } catch {
      throw new InvalidStoreUrlError(url, `endpoint ${JSON.stringify(endpoint)} is not a URL`);
    }
    if (endpointUrl.protocol !== 'http:' && endpointUrl.protocol !== 'https:') {
      throw new InvalidStoreUrlError(url, 'endpoint must be an http:// or https:// URL');
    }
  }
  const pathStyle = parsed.searchParams.get('path_style');
  if (pathStyle !== null && pathStyle !== 'true' && pathStyle !== 'false') {
    throw new InvalidStoreUrlError(url, 'path_style must be true or false');
  }
  const region = parsed.searchParams.get('region') ?? undefined;
  if (region !== undefined && !/^[a-z0-9-]+$/.test(region)) {
    throw new InvalidStoreUrlError(url, `region ${JSON.stringify(region)} is not a region name`);
  }
  if (options.credentials === undefined) {
    throw new InvalidStoreUrlError(url, 's3 stores need credentials, passed in the options');
  }
  const prefix = decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, '');
  // URL parsing quietly resolves dot segments (s3://b/../x becomes s3://b/x), so look at the raw text.
  const rawPath = url.slice(url.indexOf('//') + 2).split(/[?#]/)[0] ?? '';
  if (rawPath.split('/').some((segment) => /^(\.|%2e){1,2}$/i.test(segment))) {
    throw new InvalidStoreUrlError(url, 'the prefix may not hold . or .. segments');
  }
  return new S3ObjectStore({
    bucket,
    prefix,
    credentials: options.credentials,
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(region === undefined ? {} : { region }),
    forcePathStyle: pathStyle === 'true',
    ...(options.maxSockets === undefined ? {} : { maxSockets: options.maxSockets }),
  });
}
