import { existsSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, type TargetSettings } from '@stowage/api';
import { Repository } from '@stowage/engine';
import { createDefaultStoreStack, InvalidStoreUrlError, openObjectStore } from '@stowage/object-store';
import type { RepositoryOpener, StoreEventSink } from './contracts.js';

export interface RepositoryAccessOptions {
  /** Directories under which `file://` repositories may be; none → file repositories are refused. */
  repositoryRoots: readonly string[];
  /** Origins s3:// repositories may name as their endpoint; undefined → any (the manager chooses). */
  s3Endpoints?: readonly string[];
  /** S3 tries per operation, the first included. */
  retryAttempts?: number;
  /** Requests in flight per repository. */
  concurrency?: number;
  metrics?: StoreEventSink;
}

/**
 * Where the agent may read and write repositories. S3 repositories are wherever the manager says (the bucket
 * is the manager's to choose); a `file://` repository is a path on this host, so it is confined like every
 * other path the agent opens: lexically and through symlinks, to the configured repository roots.
 */
export class RepositoryAccess {
  readonly #roots: readonly string[];

  constructor(private readonly options: RepositoryAccessOptions) {
    this.#roots = options.repositoryRoots.map((root) => realOrSelf(resolve(root)));
  }

  /** Throws the ApiError a request naming `target` gets (400 malformed, 403 outside the roots). */
  check(target: TargetSettings): void {
    let url: URL;
    try {
      url = new URL(target.repository);
    } catch {
      throw new ApiError(
        'invalid_request',
        'target.repository: not a URL (file:///path or s3://bucket/prefix)',
      );
    }
    if (url.protocol === 's3:') {
      if (target.credentials === undefined) {
        throw new ApiError('invalid_request', 'target.credentials: required for an s3:// repository');
      }
      this.#checkEndpoint(url);
      return;
    }
    if (url.protocol !== 'file:') {
      throw new ApiError(
        'invalid_request',
        `target.repository: unsupported scheme ${url.protocol} (file: or s3:)`,
      );
    }
    let path: string;
    try {
      path = fileURLToPath(url);
    } catch (error) {
      throw new ApiError('invalid_request', `target.repository: ${(error as Error).message}`);
    }
    if (!isAbsolute(path) || path.split('/').includes('..')) {
      throw new ApiError(
        'invalid_request',
        'target.repository: a file repository needs an absolute path without ..',
      );
    }
    const real = realOfNearestAncestor(path);
    if (!this.#roots.some((root) => within(root, real))) {
      throw new ApiError('forbidden', 'target.repository is outside the repository roots this agent allows', {
        allowed_roots: this.options.repositoryRoots,
      });
    }
  }

  /**
   * An allow-list of endpoints keeps a stolen agent token from making the agent talk to any host it can
   * reach (an internal service, the cloud's metadata address) with a job's requests.
   */
  #checkEndpoint(url: URL): void {
    const allowed = this.options.s3Endpoints;
    if (allowed === undefined) return;
    const given = url.searchParams.get('endpoint');
    let origin: string;
    try {
      origin =
        given === null
          ? `https://s3.${url.searchParams.get('region') ?? 'us-east-1'}.amazonaws.com`
          : new URL(given).origin;
    } catch {
      throw new ApiError(
        'invalid_request',
        `target.repository: endpoint ${JSON.stringify(given)} is not a URL`,
      );
    }
    if (!allowed.includes(origin)) {
      throw new ApiError('forbidden', `target.repository: endpoint ${origin} is not one this agent allows`, {
        allowed_endpoints: allowed,
      });
    }
  }

  /** Opens the repository with the request's key and credentials, its store wrapped in the default stack. */
  readonly open: RepositoryOpener = async (target, signal) => {
    this.check(target);
    const credentials =
      target.credentials === undefined
        ? undefined
        : {
            accessKeyId: target.credentials.access_key_id,
            secretAccessKey: target.credentials.secret_access_key,
            ...(target.credentials.session_token === undefined
              ? {}
              : { sessionToken: target.credentials.session_token }),
          };
    let bare: ReturnType<typeof openObjectStore>;
    try {
      bare = openObjectStore(target.repository, credentials === undefined ? {} : { credentials });
    } catch (error) {
      if (error instanceof InvalidStoreUrlError) throw new ApiError('invalid_request', error.message);
      throw error;
    }
    const metrics = this.options.metrics;
    const store = createDefaultStoreStack(bare, {
      ...(this.options.concurrency === undefined ? {} : { concurrency: this.options.concurrency }),
      retry: {
        ...(this.options.retryAttempts === undefined ? {} : { attempts: this.options.retryAttempts }),
        ...(metrics === undefined ? {} : { onRetry: (event) => metrics.storeRetry(event) }),
      },
      ...(metrics === undefined ? {} : { onEvent: (event) => metrics.storeEvent(event) }),
    });
    return Repository.openWithKey(store, Buffer.from(target.target_key, 'base64'), signal ? { signal } : {});
  };
}

function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

function realOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** The real path of `path`, resolving symlinks in the part that exists (a new repository's directory may not). */
function realOfNearestAncestor(path: string): string {
  let existing = path;
  const rest: string[] = [];
  while (!existsSync(existing) && dirname(existing) !== existing) {
    rest.unshift(existing.slice(dirname(existing).length).replace(/^\//, ''));
    existing = dirname(existing);
  }
  return resolve(realOrSelf(existing), ...rest);
}
