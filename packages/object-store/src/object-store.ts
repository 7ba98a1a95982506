import { ObjectStoreError, type ObjectStoreOp } from './errors.js';

export interface ObjectInfo {
  /** The key relative to the store, e.g. `chunks/ab/<64 hex>`. */
  readonly key: string;
  /** Size in bytes. */
  readonly size: number;
  readonly lastModified: Date;
}

export interface ByteRange {
  readonly offset: number;
  readonly length: number;
}

/** What every operation takes besides its arguments. */
export interface OperationOptions {
  /**
   * Aborts the call: it rejects promptly with an `aborted` ObjectStoreError, and its request is given up, not
   * left running (see the contract below). Each call in flight may add a listener to the signal: a caller
   * running many calls under one signal raises its limit (`events.setMaxListeners`) to keep Node quiet.
   */
  readonly signal?: AbortSignal;
}

export interface PutOptions extends OperationOptions {
  /**
   * Fail with a `precondition-failed` error when the key already exists instead of overwriting it
   * (S3 `If-None-Match: *`). Not every backend can honour it; see each implementation and
   * docs/object-store.md. A retried put may see its own earlier, reported-as-failed write and then fail with
   * `precondition-failed`: callers that use this for content-addressed data should treat it as success.
   */
  readonly ifNoneMatch?: boolean;
  /**
   * `deferred`: when put resolves the object is visible and its content durable, but on a store that keeps
   * files locally its *name* may be lost in a crash until the next `flush()` — it then reads as missing, never
   * as damaged. Lets a writer of many objects pay one barrier instead of a directory sync per object. Stores
   * whose puts are durable when acknowledged (memory, S3) ignore it.
   */
  readonly durability?: 'immediate' | 'deferred';
}

/**
 * The storage every other part of Stowage uses: a flat namespace of immutable-ish byte objects.
 *
 * Contract (the conformance suite in `@stowage/object-store/testing` checks all of it):
 * - Keys are `/`-separated relative paths such as `chunks/ab/<64 hex>` or `manifests/<volume>/<backup>`:
 *   non-empty segments, no `.` or `..` segment, no leading or trailing `/`, no backslash or control
 *   characters, at most 1024 UTF-8 bytes (see `validateKey`). A key breaking the rules fails with
 *   `invalid-key` before any I/O. A key and a longer key below it (`a/b` and `a/b/c`) must not both be
 *   used: the filesystem backend cannot hold both.
 * - Every failure is an `ObjectStoreError`. Its `kind` says what to do: only `transient` is worth retrying;
 *   `not-found`, `precondition-failed`, `invalid-range`, `invalid-key`, `auth`, `no-space` and `permanent`
 *   are permanent for that request, and `aborted` is the caller's own cancel.
 * - `put` is all-or-nothing: readers see either the previous object or the whole new one, never a part.
 *   A put that failed (even with `transient`) may or may not have landed; re-sending the whole body is
 *   always safe.
 * - `get` without a range returns the whole object; with a range it returns exactly `length` bytes from
 *   `offset`, and fails with `invalid-range` when the object is shorter than `offset + length`.
 *   A missing object fails with `not-found`; `head` answers `undefined` instead.
 * - `delete` and `deleteMany` are idempotent: deleting a missing key succeeds.
 * - `list(prefix)` yields every object whose key starts with `prefix` (a plain string prefix, not a
 *   directory), in ascending order of the keys' UTF-8 bytes, fetching pages lazily however many there are.
 *   Objects written or deleted during a listing may or may not appear.
 * - Every operation takes an optional `signal` (`OperationOptions`; a listing's covers every page). A call
 *   whose signal has already aborted does nothing and rejects with `aborted`. One whose signal aborts while
 *   it runs settles promptly (well within a second) — with `aborted`, unless it had already completed — and
 *   gives its request up: an S3 request's socket is destroyed, a file store starts no further system call
 *   (the one in the kernel finishes first).
 *   An aborted put may or may not have landed — all-or-nothing still holds, never half an object — and an
 *   aborted delete or deleteMany may have deleted some or all of its keys; once an aborted call has
 *   rejected, the store no longer reads the put's body, so the caller may reuse it. An error that surfaces
 *   after the signal aborted (the reset of the destroyed socket) is reported as `aborted`, not as itself.
 *   A listing whose signal aborts rejects its next step with `aborted`.
 * - Implementations do no retrying of their own; `withRetry` does it for all of them, and never retries
 *   `aborted`.
 */
export interface ObjectStore {
  /** Where the objects live, for messages: `s3://bucket/prefix`, `file:///srv/backups`, `memory://`. */
  readonly location: string;
  head(key: string, options?: OperationOptions): Promise<ObjectInfo | undefined>;
  get(key: string, range?: ByteRange, options?: OperationOptions): Promise<Uint8Array>;
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<void>;
  delete(key: string, options?: OperationOptions): Promise<void>;
  deleteMany(keys: readonly string[], options?: OperationOptions): Promise<void>;
  list(prefix: string, options?: OperationOptions): AsyncIterable<ObjectInfo>;
  /** Makes every `deferred` put that resolved before this call durable. Absent where there is nothing to do. */
  flush?(): Promise<void>;
}

const MAX_KEY_BYTES = 1024;
const encoder = new TextEncoder();

/** The reason `key` breaks the key rules, or `undefined` when it is a valid key. */
export function keyProblem(key: string): string | undefined {
  if (typeof key !== 'string' || key.length === 0) return 'key is empty';
  if (encoder.encode(key).length > MAX_KEY_BYTES) return `key is longer than ${MAX_KEY_BYTES} bytes`;
  const characterProblem = badCharacters(key);
  if (characterProblem !== undefined) return `key ${characterProblem}`;
  for (const segment of key.split('/')) {
    if (segment === '') return 'key has an empty segment (leading, trailing or double slash)';
    if (segment === '.' || segment === '..') return 'key has a "." or ".." segment';
  }
  return undefined;
}

/** Throws an `invalid-key` ObjectStoreError when `key` breaks the key rules. */
export function validateKey(key: string, op: ObjectStoreOp): void {
  const problem = keyProblem(key);
  if (problem !== undefined) {
    throw new ObjectStoreError('invalid-key', `invalid object key ${JSON.stringify(key)}: ${problem}`, {
      op,
      key,
    });
  }
}

/**
 * Throws an `invalid-key` ObjectStoreError when `prefix` holds a character no key may hold. Any other
 * string is a valid prefix, the empty one included: it may end mid-segment or right after a slash.
 */
export function validatePrefix(prefix: string): void {
  const problem = badCharacters(prefix);
  if (problem !== undefined) {
    throw new ObjectStoreError('invalid-key', `invalid list prefix ${JSON.stringify(prefix)}: ${problem}`, {
      op: 'list',
      key: prefix,
    });
  }
}

function badCharacters(text: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
  if (/[\u0000-\u001f\u007f\\]/.test(text)) return 'contains a control character or a backslash';
  // With the u flag a surrogate range matches only unpaired surrogates, which have no UTF-8 form.
  if (/[\uD800-\uDFFF]/u.test(text)) return 'is not well-formed Unicode';
  return undefined;
}

/** Throws an `invalid-range` ObjectStoreError unless offset and length are non-negative safe integers. */
export function validateRange(range: ByteRange, key: string): void {
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new ObjectStoreError(
      'invalid-range',
      `invalid range offset=${offset} length=${length} for ${key}`,
      {
        op: 'get',
        key,
      },
    );
  }
}

export function rangePastEnd(range: ByteRange, size: number, key: string): ObjectStoreError {
  return new ObjectStoreError(
    'invalid-range',
    `range offset=${range.offset} length=${range.length} is past the end of ${key} (${size} bytes)`,
    { op: 'get', key },
  );
}

/** Orders keys by their UTF-8 bytes, as S3 does (JS string comparison orders UTF-16 code units). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
