import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { ListObjectsV2CommandOutput, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import {
  abortedError,
  isObjectStoreError,
  ObjectStoreError,
  type ObjectStoreErrorKind,
  type ObjectStoreOp,
  throwIfAborted,
} from './errors.js';
import {
  type ByteRange,
  type ObjectInfo,
  type ObjectStore,
  type OperationOptions,
  type PutOptions,
  rangePastEnd,
  validateKey,
  validatePrefix,
  validateRange,
} from './object-store.js';

export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface S3ObjectStoreOptions {
  readonly bucket: string;
  /** Prepended to every key, e.g. `backups/site-a`; slashes at either end do not matter. */
  readonly prefix?: string;
  /** e.g. `http://127.0.0.1:7480`; AWS's own endpoint for the region when absent. */
  readonly endpoint?: string;
  /** Default `us-east-1`, which S3-compatible servers accept whatever they call themselves. */
  readonly region?: string;
  /** `bucket` in the path rather than the host name; what most S3-compatible servers need. */
  readonly forcePathStyle?: boolean;
  /**
   * Always passed in: this package reads no environment. An app that wants the AWS default chain
   * (instance profiles, SSO…) passes a provider function from `@aws-sdk/credential-providers`.
   */
  readonly credentials: S3Credentials | (() => Promise<S3Credentials>);
  /** Keep-alive sockets per protocol (default 16, the default stack's concurrency). */
  readonly maxSockets?: number;
  /** TCP connect timeout (default 5 s). */
  readonly connectionTimeoutMs?: number;
  /** Longest time a socket may sit idle mid-request (default 30 s). */
  readonly socketTimeoutMs?: number;
  /** Longest whole request, body included (default 120 s: a 4 MiB chunk at 35 KiB/s). */
  readonly requestTimeoutMs?: number;
  /** Test seam: replaces the HTTP layer (canned responses in the error-mapping tests). */
  readonly requestHandler?: S3ClientConfig['requestHandler'];
}

const DELETE_BATCH = 1000;

type Sdk = typeof import('@aws-sdk/client-s3');
let sdkLoading: Promise<{
  sdk: Sdk;
  NodeHttpHandler: typeof import('@smithy/node-http-handler').NodeHttpHandler;
}>;

/**
 * The AWS SDK is loaded on first use, not at import: it costs ~130 ms and ~15 MiB, which every command on a
 * filesystem repository would otherwise pay.
 */
function loadSdk() {
  sdkLoading ??= Promise.all([import('@aws-sdk/client-s3'), import('@smithy/node-http-handler')]).then(
    ([sdk, http]) => ({ sdk, NodeHttpHandler: http.NodeHttpHandler }),
  );
  return sdkLoading;
}

/**
 * An ObjectStore in an S3 bucket (AWS or any S3-compatible server: Ceph RGW, MinIO, s3rver…), through
 * `@aws-sdk/client-s3` v3.
 *
 * Settings and why (docs/object-store.md has more):
 * - checksums `WHEN_REQUIRED`: with the SDK's default, bodies go out `aws-chunked` with trailing CRCs,
 *   which many S3-compatible servers store verbatim or refuse (411/400). Puts carry `Content-MD5`
 *   instead, which AWS and Ceph RGW check, so a body damaged in transit is refused rather than stored.
 * - `maxAttempts: 1`: retrying is `withRetry`'s job, which sees our error kinds; two layers would multiply.
 * - a keep-alive agent with a bounded pool, and connect, idle and whole-request timeouts, so a dead
 *   connection surfaces as a `transient` error instead of a hang.
 *
 * `ifNoneMatch` sends `If-None-Match: *`: AWS and Ceph RGW answer 412 when the key exists; some servers
 * (s3rver, fauxqs) ignore the header and overwrite, and nothing on the client can detect that.
 *
 * A signal goes to the SDK as `abortSignal`: an abort destroys the request's socket (the server sees the
 * connection close), whether the request is waiting for a socket, sending its body, waiting for the answer or
 * receiving a GET's body, and the call rejects with `aborted` (the SDK's `AbortError`, and whatever the
 * destroyed socket raises after it, are mapped so).
 */
export class S3ObjectStore implements ObjectStore {
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly #options: S3ObjectStoreOptions;
  #connection: Promise<{ client: S3Client; sdk: Sdk }> | undefined;

  constructor(options: S3ObjectStoreOptions) {
    this.bucket = options.bucket;
    const trimmed = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.prefix = trimmed === '' ? '' : `${trimmed}/`;
    this.location = `s3://${options.bucket}${trimmed === '' ? '' : `/${trimmed}`}`;
    this.#options = options;
  }

  /** The SDK client, created on first use; an aborted signal fails first (the SDK may still be loading). */
  async #connect(
    signal: AbortSignal | undefined,
    op: ObjectStoreOp,
    key: string | undefined,
  ): Promise<{ client: S3Client; sdk: Sdk }> {
    throwIfAborted(signal, op, key);
    this.#connection ??= loadSdk().then(({ sdk, NodeHttpHandler }) => {
      const options = this.#options;
      const maxSockets = options.maxSockets ?? 16;
      const agentOptions = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets };
      const client = new sdk.S3Client({
        region: options.region ?? 'us-east-1',
        ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
        forcePathStyle: options.forcePathStyle ?? false,
        credentials: options.credentials,
        maxAttempts: 1,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        requestHandler:
          options.requestHandler ??
          new NodeHttpHandler({
            httpAgent: new HttpAgent(agentOptions),
            httpsAgent: new HttpsAgent(agentOptions),
            connectionTimeout: options.connectionTimeoutMs ?? 5_000,
            socketTimeout: options.socketTimeoutMs ?? 30_000,
            requestTimeout: options.requestTimeoutMs ?? 120_000,
            throwOnRequestTimeout: true,
          }),
      });
      return { client, sdk };
    });
    const connection = await this.#connection;
    throwIfAborted(signal, op, key);
    return connection;
  }

  /** Closes the keep-alive sockets. The store must not be used afterwards. */
  destroy(): void {
    void this.#connection?.then(({ client }) => client.destroy());
  }

  async head(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    validateKey(key, 'head');
    return this.#head(key, 'head', options.signal);
  }

  async #head(
    key: string,
    op: ObjectStoreOp,
    signal: AbortSignal | undefined,
  ): Promise<ObjectInfo | undefined> {
    try {
      const { client, sdk } = await this.#connect(signal, op, key);
      const response = await client.send(
        new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }),
        { abortSignal: signal },
      );
      return { key, size: response.ContentLength ?? 0, lastModified: response.LastModified ?? new Date(0) };
    } catch (error) {
      const translated = this.#translate(error, op, key, signal);
      if (translated.kind === 'not-found') return undefined;
      throw translated;
    }
  }

  async get(key: string, range?: ByteRange, options: OperationOptions = {}): Promise<Uint8Array> {
    validateKey(key, 'get');
    if (range !== undefined) validateRange(range, key);
    const { signal } = options;
    if (range?.length === 0) {
      // HTTP cannot ask for zero bytes (`bytes=5-4` means the whole object to many servers).
      const info = await this.#head(key, 'get', signal);
      if (info === undefined) throw this.#notFound('get', key);
      if (range.offset > info.size) throw rangePastEnd(range, info.size, key);
      return new Uint8Array(0);
    }
    try {
      const { client, sdk } = await this.#connect(signal, 'get', key);
      const response = await client.send(
        new sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          ...(range === undefined
            ? {}
            : { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` }),
        }),
        { abortSignal: signal },
      );
      if (response.Body === undefined) throw new Error('response has no body');
      const body = await response.Body.transformToByteArray();
      throwIfAborted(signal, 'get', key);
      if (response.ContentLength !== undefined && body.length !== response.ContentLength) {
        // The connection ended early without an error: a truncated body must never pass as the object.
        throw new ObjectStoreError(
          'transient',
          `get ${key} from ${this.location}: body has ${body.length} of ${response.ContentLength} bytes`,
          { op: 'get', key },
        );
      }
      if (range === undefined) return body;
      return cutRange(body, response.ContentRange, range, key);
    } catch (error) {
      throw this.#translate(error, 'get', key, signal);
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<void> {
    validateKey(key, 'put');
    const { signal } = options;
    try {
      const { client, sdk } = await this.#connect(signal, 'put', key);
      await client.send(
        new sdk.PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentLength: body.length,
          ContentMD5: createHash('md5').update(body).digest('base64'),
          ...(options.ifNoneMatch === true ? { IfNoneMatch: '*' } : {}),
        }),
        { abortSignal: signal },
      );
    } catch (error) {
      throw this.#translate(error, 'put', key, signal);
    }
  }

  async delete(key: string, options: OperationOptions = {}): Promise<void> {
    validateKey(key, 'delete');
    const { signal } = options;
    try {
      const { client, sdk } = await this.#connect(signal, 'delete', key);
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }), {
        abortSignal: signal,
      });
    } catch (error) {
      const translated = this.#translate(error, 'delete', key, signal);
      if (translated.kind !== 'not-found') throw translated;
    }
  }

  async deleteMany(keys: readonly string[], options: OperationOptions = {}): Promise<void> {
    for (const key of keys) validateKey(key, 'deleteMany');
    const { signal } = options;
    throwIfAborted(signal, 'deleteMany', keys[0]);
    const unique = [...new Set(keys)];
    for (let start = 0; start < unique.length; start += DELETE_BATCH) {
      const batch = unique.slice(start, start + DELETE_BATCH);
      let failures: { Key?: string; Code?: string; Message?: string }[];
      try {
        const { client, sdk } = await this.#connect(signal, 'deleteMany', batch[0]);
        const response = await client.send(
          new sdk.DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((key) => ({ Key: this.prefix + key })), Quiet: true },
          }),
          { abortSignal: signal },
        );
        failures = (response.Errors ?? []).filter((failure) => failure.Code !== 'NoSuchKey');
      } catch (error) {
        throw this.#translate(error, 'deleteMany', batch[0], signal);
      }
      const first = failures[0];
      if (first !== undefined) {
        // Report the gravest per-key failure: a retryable one only if all of them are.
        const kinds = failures.map((failure) => kindForCode(failure.Code, undefined) ?? 'permanent');
        const kind = kinds.find((candidate) => candidate !== 'transient') ?? 'transient';
        const key = (first.Key ?? '').slice(this.prefix.length);
        const detail = failures
          .slice(0, 3)
          .map(
            (failure) =>
              `${failure.Key?.slice(this.prefix.length)}: ${failure.Code} ${failure.Message ?? ''}`,
          )
          .join('; ');
        throw new ObjectStoreError(
          kind,
          `deleteMany in ${this.location}: ${failures.length} of ${batch.length} keys not deleted (${detail})`,
          { op: 'deleteMany', key, cause: failures },
        );
      }
    }
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const { signal } = options;
    let continuationToken: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#listPage(prefix, continuationToken, signal);
      } catch (error) {
        throw this.#translate(error, 'list', prefix, signal);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.prefix)) continue;
        throwIfAborted(signal, 'list', prefix);
        yield {
          key: object.Key.slice(this.prefix.length),
          size: object.Size ?? 0,
          lastModified: object.LastModified ?? new Date(0),
        };
      }
      continuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (continuationToken !== undefined);
  }

  async #listPage(
    prefix: string,
    continuationToken: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<ListObjectsV2CommandOutput> {
    const { client, sdk } = await this.#connect(signal, 'list', prefix);
    return client.send(
      new sdk.ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: this.prefix + prefix,
        ...(continuationToken === undefined ? {} : { ContinuationToken: continuationToken }),
      }),
      { abortSignal: signal },
    );
  }

  #notFound(op: ObjectStoreOp, key: string, cause?: unknown): ObjectStoreError {
    return new ObjectStoreError('not-found', `no object ${key} in ${this.location}`, { op, key, cause });
  }

  #translate(
    error: unknown,
    op: ObjectStoreOp,
    key: string | undefined,
    signal?: AbortSignal,
  ): ObjectStoreError {
    if (isObjectStoreError(error, 'aborted')) return error;
    // After an abort the destroyed socket fails the request in its own words (a reset, "socket hang up", a
    // premature close of a GET's body): it is the abort all the same.
    if (signal?.aborted) return abortedError(op, key, signal);
    if (error instanceof ObjectStoreError) return error;
    const kind = s3ErrorKind(error);
    if (kind === 'aborted') {
      return new ObjectStoreError('aborted', `${op} ${key ?? ''} in ${this.location} aborted`, {
        op,
        key,
        cause: error,
      });
    }
    if (kind === 'not-found' && key !== undefined) return this.#notFound(op, key, withoutRawResponse(error));
    const { code, status } = describeError(error);
    const what = [code, status === undefined ? undefined : `HTTP ${status}`].filter(Boolean).join(', ');
    const message = error instanceof Error && error.message !== code ? `: ${error.message}` : '';
    return new ObjectStoreError(kind, `${op} ${key ?? ''} in ${this.location} failed (${what})${message}`, {
      op,
      key,
      cause: withoutRawResponse(error),
    });
  }
}

const CODE_KINDS: Record<string, ObjectStoreErrorKind> = {
  NoSuchKey: 'not-found',
  NotFound: 'not-found',
  PreconditionFailed: 'precondition-failed',
  InvalidRange: 'invalid-range',
  AccessDenied: 'auth',
  InvalidAccessKeyId: 'auth',
  SignatureDoesNotMatch: 'auth',
  ExpiredToken: 'auth',
  InvalidToken: 'auth',
  TokenRefreshRequired: 'auth',
  Forbidden: 'auth',
  QuotaExceeded: 'no-space',
  UserSuspended: 'auth',
  SlowDown: 'transient',
  ServiceUnavailable: 'transient',
  InternalError: 'transient',
  RequestTimeout: 'transient',
  RequestTimeTooSkewed: 'permanent',
  Throttling: 'transient',
  ThrottlingException: 'transient',
  TooManyRequests: 'transient',
  TooManyRequestsException: 'transient',
  RequestLimitExceeded: 'transient',
  BandwidthLimitExceeded: 'transient',
  OperationAborted: 'transient',
  ConditionalRequestConflict: 'transient',
  // The body was damaged on the way: the same bytes sent again will pass.
  BadDigest: 'transient',
  IncompleteBody: 'transient',
  XAmzContentSHA256Mismatch: 'transient',
  TimeoutError: 'transient',
  RequestTimeoutException: 'transient',
  NoSuchBucket: 'permanent',
};

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * Maps an error from the S3 client (a service exception, a socket error, a timeout, an abort) to a kind.
 * Exported for tests. Unknown codes fall back on the HTTP status: 5xx and 429 are transient, 404 not-found,
 * 401/403 auth, anything else permanent.
 */
export function s3ErrorKind(error: unknown): ObjectStoreErrorKind {
  const { code, status, errno } = describeError(error);
  // The SDK's answer to an aborted signal (the request handler's, or the signal's own DOMException).
  if (code === 'AbortError' && status === undefined) return 'aborted';
  if (errno !== undefined && NETWORK_CODES.has(errno)) return 'transient';
  const byCode = kindForCode(code, status);
  if (byCode !== undefined) return byCode;
  if (status === undefined) {
    // No HTTP answer at all: the request died on the way (reset, refused, "socket hang up", timeout).
    return error instanceof Error && /socket hang up|ECONNRESET|EPIPE|timed? ?out/i.test(error.message)
      ? 'transient'
      : 'permanent';
  }
  if (status === 429 || status >= 500) return status === 507 ? 'no-space' : 'transient';
  if (status === 404) return 'not-found';
  if (status === 401 || status === 403) return 'auth';
  if (status === 412) return 'precondition-failed';
  if (status === 416) return 'invalid-range';
  return 'permanent';
}

function kindForCode(code: string | undefined, status: number | undefined): ObjectStoreErrorKind | undefined {
  if (code === undefined) return undefined;
  const kind = Object.hasOwn(CODE_KINDS, code) ? CODE_KINDS[code] : undefined;
  // A bare "NotFound" is how the SDK names any body-less 404 (HEAD); trust the status over the name.
  if (kind === 'not-found' && status !== undefined && status !== 404) return undefined;
  return kind;
}

function describeError(error: unknown): { code?: string; status?: number; errno?: string } {
  if (typeof error !== 'object' || error === null) return {};
  const record = error as {
    name?: unknown;
    Code?: unknown;
    code?: unknown;
    $metadata?: { httpStatusCode?: unknown };
    $response?: { statusCode?: unknown };
  };
  const status = record.$metadata?.httpStatusCode ?? record.$response?.statusCode;
  const code = typeof record.Code === 'string' ? record.Code : record.name;
  return {
    ...(typeof code === 'string' && code !== 'Error' ? { code } : {}),
    ...(typeof status === 'number' ? { status } : {}),
    ...(typeof record.code === 'string' ? { errno: record.code } : {}),
  };
}

/**
 * The requested bytes out of a ranged GET's body. Servers may send more than asked (s3rver answers
 * `bytes=0-0` with the whole object; a server without range support sends the object with a 200), so the
 * body is placed by its Content-Range, or taken as the whole object when there is none.
 */
function cutRange(
  body: Uint8Array,
  contentRange: string | undefined,
  range: ByteRange,
  key: string,
): Uint8Array {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange?.trim() ?? '');
  const start = match === null ? 0 : Number(match[1]);
  const total = match === null || match[3] === '*' ? undefined : Number(match[3]);
  const from = range.offset - start;
  if (from < 0 || from + range.length > body.length) {
    throw rangePastEnd(range, total ?? start + body.length, key);
  }
  return from === 0 && body.length === range.length ? body : body.slice(from, from + range.length);
}

/**
 * The SDK's errors carry the raw HTTP response, sockets and all, in a property that cannot be removed;
 * printing one dumps pages. The cause kept is a copy with the useful parts.
 */
function withoutRawResponse(error: unknown): unknown {
  if (!(error instanceof Error) || !('$response' in error)) return error;
  const { $fault, $metadata, Code } = error as { $fault?: unknown; $metadata?: unknown; Code?: unknown };
  const copy = Object.assign(new Error(error.message), { $fault, $metadata, Code });
  copy.name = error.name;
  if (error.stack !== undefined) copy.stack = error.stack;
  return copy;
}
