/**
 * The few error kinds every ObjectStore reports. Each implementation translates its native errors (errno
 * codes, S3 error codes and HTTP statuses, socket errors) into one of these at its edge; retry and callers
 * look only at `kind`, never at the cause.
 *
 * Only `transient` is worth retrying. Every other kind is permanent for the operation that raised it.
 */
export const OBJECT_STORE_ERROR_KINDS = [
  /** The object does not exist (get). head answers `undefined` instead; delete ignores it. */
  'not-found',
  /** put with `ifNoneMatch` found the key already present. */
  'precondition-failed',
  /** A ranged get asked for bytes past the end of the object, or a negative offset or length. */
  'invalid-range',
  /** The key breaks the key rules (see `validateKey`). Raised before any I/O. */
  'invalid-key',
  /** 5xx, 429, SlowDown, connection resets, timeouts: the same request may succeed later. */
  'transient',
  /** Credentials missing, wrong or not allowed to do this. */
  'auth',
  /** The disk is full or the bucket's quota is exhausted. */
  'no-space',
  /** Anything else: misconfiguration (missing bucket), unsupported request, unexpected answers. */
  'permanent',
  /**
   * The caller's `signal` aborted, before the call (nothing was done) or during it (the request was given up;
   * a put or delete may or may not have taken effect). The caller asked for it: never retried, never a fault.
   */
  'aborted',
] as const;

export type ObjectStoreErrorKind = (typeof OBJECT_STORE_ERROR_KINDS)[number];

export type ObjectStoreOp = 'head' | 'get' | 'put' | 'delete' | 'deleteMany' | 'list';

export interface ObjectStoreErrorOptions {
  /** The operation that failed. */
  op: ObjectStoreOp;
  /** The object key (or list prefix) the operation was about, when there is one. */
  key?: string;
  /** The native error, kept for messages and debugging; never for decisions. */
  cause?: unknown;
}

export class ObjectStoreError extends Error {
  override readonly name = 'ObjectStoreError';
  readonly kind: ObjectStoreErrorKind;
  readonly op: ObjectStoreOp;
  readonly key: string | undefined;

  constructor(kind: ObjectStoreErrorKind, message: string, options: ObjectStoreErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.op = options.op;
    this.key = options.key;
  }
}

export function isObjectStoreError(error: unknown, kind?: ObjectStoreErrorKind): error is ObjectStoreError {
  return error instanceof ObjectStoreError && (kind === undefined || error.kind === kind);
}

/** An `aborted` error for `op` on `key`, its cause the signal's reason. */
export function abortedError(
  op: ObjectStoreOp,
  key: string | undefined,
  signal: AbortSignal,
): ObjectStoreError {
  const what = key === undefined ? op : `${op} ${key}`;
  return new ObjectStoreError('aborted', `${what} aborted`, { op, key, cause: signal.reason });
}

/** Throws an `aborted` ObjectStoreError when `signal` has aborted. */
export function throwIfAborted(
  signal: AbortSignal | undefined,
  op: ObjectStoreOp,
  key: string | undefined,
): void {
  if (signal?.aborted) throw abortedError(op, key, signal);
}

/** True only for errors worth retrying; anything that is not an ObjectStoreError is not. */
export function isTransient(error: unknown): boolean {
  return isObjectStoreError(error, 'transient');
}

/** A store URL that openObjectStore cannot understand; the message says what is wrong with it. */
export class InvalidStoreUrlError extends Error {
  override readonly name = 'InvalidStoreUrlError';
  readonly url: string;

  constructor(url: string, reason: string) {
    super(`invalid object store URL ${JSON.stringify(redactUrl(url))}: ${reason}`);
    this.url = redactUrl(url);
  }
}

/** Drops any user:password part so a URL can be printed. */
function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}
