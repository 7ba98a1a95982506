/**
 * The few error kinds every HostBackend reports. Each backend translates its native errors (errno codes,
 * failed confinement checks, missing capabilities) into one of these at its edge; callers decide on `kind`
 * alone, never on the cause. The agent maps them to HTTP statuses (suggested in brackets).
 *
 * None of them is worth retrying as is: host I/O either works or needs someone to act.
 */
export const HOST_BACKEND_ERROR_KINDS = [
  /** The volume, snapshot or device does not exist [404]. */
  'not-found',
  /** A volume or snapshot of that name already exists [409]. */
  'exists',
  /** The filesystem (or quota) is full: a write, sync, provision or copy snapshot ran out of space [507]. */
  'no-space',
  /** The locator or name is malformed: relative, empty, has a `..` segment or a NUL, names a directory or
   * a snapshot where a volume is wanted, or the other way round. Raised before any I/O on it [400]. */
  'invalid-locator',
  /** The locator resolves (symlinks included) outside the configured roots or device allow-list, or names a
   * file with more than one hard link (the other may lie outside). Nothing outside is opened, let alone read
   * [403]. */
  'outside-roots',
  /** A size or write range is wrong: not a positive integer, or past the end of the volume [400]. */
  'invalid-argument',
  /** This backend cannot do that (provisioning a block device, snapshots without a hook, a snapshot on a
   * filesystem without reflinks when no copy is allowed) [501]. */
  'unsupported',
  /** The volume is in use: a mounted device opened for writing, a volume that still has snapshots [409]. */
  'busy',
  /** Anything else: permission denied, I/O errors, unexpected file types, a cancelled open or copy [500]. */
  'io',
] as const;

export type HostBackendErrorKind = (typeof HOST_BACKEND_ERROR_KINDS)[number];

export type HostBackendOp =
  | 'provision'
  | 'list'
  | 'stat'
  | 'snapshot'
  | 'list-snapshots'
  | 'open-reader'
  | 'open-writer'
  | 'read'
  | 'write'
  | 'sync'
  | 'delete-snapshot'
  | 'delete-volume'
  | 'logout';

export interface HostBackendErrorOptions {
  /** The operation that failed. */
  op: HostBackendOp;
  /** The locator (or volume name, for provision) the operation was about. */
  locator?: string;
  /** The native error, kept for messages and debugging; never for decisions. */
  cause?: unknown;
}

export class HostBackendError extends Error {
  override readonly name = 'HostBackendError';
  readonly kind: HostBackendErrorKind;
  readonly op: HostBackendOp;
  readonly locator: string | undefined;

  constructor(kind: HostBackendErrorKind, message: string, options: HostBackendErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.op = options.op;
    this.locator = options.locator;
  }
}

/**
 * An operation given up because the caller aborted its signal: an open, or a snapshot's copy. It has no kind
 * of its own (`io`): the caller is the one who aborted, so it already knows; the signal's reason is the cause.
 * `doing` starts the message: `opening <locator> was cancelled`.
 */
export function cancelled(
  op: HostBackendOp,
  locator: string,
  signal: AbortSignal,
  doing = 'opening',
): HostBackendError {
  return new HostBackendError('io', `${doing} ${locator} was cancelled`, {
    op,
    locator,
    cause: signal.reason,
  });
}

export function isHostBackendError(error: unknown, kind?: HostBackendErrorKind): error is HostBackendError {
  return error instanceof HostBackendError && (kind === undefined || error.kind === kind);
}

/** The kind a native filesystem error becomes. */
export function errnoKind(code: string | undefined): HostBackendErrorKind {
  switch (code) {
    case 'ENOENT':
    case 'ENXIO':
    case 'ENODEV':
      return 'not-found';
    case 'EEXIST':
      return 'exists';
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EFBIG':
      return 'no-space';
    case 'EBUSY':
    case 'ETXTBSY':
      return 'busy';
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ENAMETOOLONG':
    case 'ELOOP':
      return 'invalid-locator';
    default:
      return 'io';
  }
}

const DETAILS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENXIO: 'no such device',
  ENODEV: 'no such device',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'larger than the filesystem allows',
  EBUSY: 'device is busy (mounted or in use)',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EIO: 'input/output error',
  ELOOP: 'too many levels of symbolic links',
};

/** Wraps a native error: `<what> <locator>: <plain reason>`, with the kind its errno code maps to. */
export function fromNative(
  error: unknown,
  what: string,
  op: HostBackendOp,
  locator: string | undefined,
): HostBackendError {
  if (error instanceof HostBackendError) return error;
  const code = (error as { code?: string } | undefined)?.code;
  const detail =
    (code !== undefined ? DETAILS[code] : undefined) ?? (error as Error)?.message ?? String(error);
  const subject = locator === undefined ? what : `${what} ${locator}`;
  return new HostBackendError(errnoKind(code), `${subject}: ${detail}`, { op, locator, cause: error });
}
