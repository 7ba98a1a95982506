import { HostBackendError, type HostBackendOp } from './errors.js';

export interface VolumeInfo {
  /** What to hand back to the backend to name this volume: an absolute path (image file or device). */
  readonly locator: string;
  /** A short name for messages and listings: the file or device name. */
  readonly name: string;
  /** Size in bytes. */
  readonly size: number;
}

export interface SnapshotInfo {
  /** What to hand back to `openReader` and `deleteSnapshot`. */
  readonly locator: string;
  /** The locator of the volume it was taken of. */
  readonly volume: string;
  /** The snapshot's name, as given to `snapshot`. */
  readonly name: string;
  /** Size in bytes: the volume's size when the snapshot was taken. */
  readonly size: number;
}

/** How a snapshot was made: a reflink shares the volume's blocks (instant, point in time); a copy does not. */
export const SNAPSHOT_METHODS = ['reflink', 'copy'] as const;
export type SnapshotMethod = (typeof SNAPSHOT_METHODS)[number];

export interface SnapshotResult extends SnapshotInfo {
  readonly method: SnapshotMethod;
}

export interface SnapshotOptions {
  /**
   * A copy is acceptable where the backend cannot take a point-in-time snapshot (default false: such a
   * snapshot fails with `unsupported` rather than silently being a copy). A copy is point in time only when
   * nothing writes the volume while it is made; `SnapshotResult.method` says which kind was made.
   */
  readonly allowCopy?: boolean;
  /**
   * Stops a snapshot that takes time (a copy) within a second; it then fails (`io`, "cancelled", the
   * signal's reason as `cause`) and leaves nothing behind. One aborted already stops any snapshot before it
   * starts.
   */
  readonly signal?: AbortSignal;
  /**
   * Bytes copied so far of `total`, for a snapshot that takes time (a copy): `(0, total)` first, then at most
   * four times a second, and `(total, total)` once the copy is whole. A reflink does not report. Called on
   * the copy's path: an exception thrown here fails the snapshot.
   */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface ProvisionRequest {
  /** A volume name (see `validateVolumeName`); it becomes the file name. */
  readonly name: string;
  /** Size in bytes; a positive safe integer. */
  readonly size: number;
}

/**
 * A volume or snapshot opened for streaming reads. Structurally the engine's `VolumeSource`, so it can be
 * handed to a backup as is.
 */
export interface VolumeReader {
  readonly path: string;
  readonly size: number;
  /** Fills `into` from `position`; answers how many bytes it read, fewer only at the end of the volume. */
  read(into: Uint8Array, position: number): Promise<number>;
  close(): Promise<void>;
}

/** A volume opened for positioned writes, e.g. as a restore target. */
export interface VolumeWriter {
  readonly path: string;
  readonly size: number;
  /** The open descriptor, for writers in other threads (`fs.writeSync(fd, …, position)`). */
  readonly fd: number;
  /** Writes all of `data` at `position`; a range past `size` fails with `invalid-argument`, nothing written. */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Makes every write so far durable (fsync); a late ENOSPC shows up here as `no-space`. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /**
   * Gives up opening when aborted (an iSCSI open stops waiting for its login and its device); the open then
   * fails and leaves nothing behind. It governs the open only: a reader or writer already handed out stays
   * usable until its caller closes it.
   */
  readonly signal?: AbortSignal;
}

export interface HostBackendCapabilities {
  /** `provision` and `deleteVolume` work; otherwise both fail with `unsupported`. */
  readonly provision: boolean;
  /** `snapshot` works; otherwise it fails with `unsupported` and there are never snapshots to list. */
  readonly snapshot: boolean;
}

/**
 * Where the volumes the agent backs up and restores live on its host: image files under configured roots,
 * allow-listed block devices, allow-listed iSCSI LUNs.
 *
 * Contract (the conformance suite in `@stowage/host-backends/testing` checks all of it):
 * - A locator is an absolute path the backend handed out (`VolumeInfo.locator`, `SnapshotInfo.locator`) or
 *   an operator named. Every locator is confined to the backend's roots or allow-list, symlinks, `..` and
 *   hard links included: one outside fails with `outside-roots` and nothing behind it is opened, let alone
 *   read, and so does a file with a second hard link (it may be outside; writing one writes both). A
 *   malformed one (relative, empty, NUL, a `..` segment) fails with `invalid-locator` before any I/O.
 * - Every failure is a `HostBackendError`; its `kind` says what happened. A missing volume or snapshot is
 *   `not-found` for every operation (deletes too: they are not idempotent, so a caller learns it named the
 *   wrong thing); a full filesystem is `no-space`, from whichever operation met it.
 * - `provision` creates an empty volume of exactly `size` bytes that reads as zeros and takes no space until
 *   written (sparse), or fails with `exists` and leaves the existing one alone. A name is unique across the
 *   backend's roots: `exists` too when another root holds it.
 * - `snapshot` captures the volume's content at one instant and reports how (`reflink` or `copy`). Later
 *   writes to the volume do not show in the snapshot. A copy is point in time only when nothing writes the
 *   volume meanwhile, so it is made only when asked for: where the backend has no point-in-time snapshot, a
 *   snapshot without `allowCopy` fails with `unsupported` (saying how to ask for a copy) and leaves nothing.
 *   A copy reports progress and stops within a second of its signal aborting, leaving nothing (see
 *   `SnapshotOptions`). Snapshots are for reading and then deleting; they are not made durable, and after a
 *   host crash `listSnapshots` shows what to clean up.
 * - `openReader` takes a snapshot or a volume locator (reading a live volume is the caller's choice);
 *   `openWriter` takes only a volume locator. Readers and writers must be closed by the caller.
 * - `deleteVolume` refuses a volume that still has snapshots (`busy`).
 * - Backends do no retrying and keep no state between calls but their configuration.
 */
export interface HostBackend {
  /** Which backend this is, for messages: `local-file`, `block`, `iscsi`. */
  readonly kind: string;
  readonly capabilities: HostBackendCapabilities;
  provision(request: ProvisionRequest): Promise<VolumeInfo>;
  /** Every volume the backend manages, in locator order. */
  list(): Promise<VolumeInfo[]>;
  stat(locator: string): Promise<VolumeInfo>;
  snapshot(volume: string, name: string, options?: SnapshotOptions): Promise<SnapshotResult>;
  /** The volume's snapshots, in name order. */
  listSnapshots(volume: string): Promise<SnapshotInfo[]>;
  openReader(locator: string, options?: OpenOptions): Promise<VolumeReader>;
  openWriter(volume: string, options?: OpenOptions): Promise<VolumeWriter>;
  deleteSnapshot(snapshot: string): Promise<void>;
  deleteVolume(volume: string): Promise<void>;
  /**
   * Releases what the backend holds beyond single calls when the agent shuts down (iSCSI: logs out of every
   * session still open, even under readers and writers not closed yet, and makes later opens fail). Safe to
   * call twice. Optional so that test doubles may leave it out; the backends here all have it (a no-op for
   * `local-file` and `block`), so call it as `backend.close?.()`.
   */
  close?(): Promise<void>;
}

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;

/**
 * The reason `name` is not a valid volume or snapshot name, or `undefined` when it is one: 1–200 of
 * `A–Z a–z 0–9 . _ -`, not starting with `.` or `-` (hidden files and snapshots are the backend's own).
 */
export function nameProblem(name: string): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'name is empty';
  if (!NAME_PATTERN.test(name)) {
    return `name ${JSON.stringify(name)} must be 1–200 of A–Z a–z 0–9 . _ - and not start with . or -`;
  }
  return undefined;
}

/** Throws `invalid-locator` when `name` is not a valid volume or snapshot name. */
export function validateName(name: string, op: HostBackendOp): void {
  const problem = nameProblem(name);
  if (problem !== undefined) throw new HostBackendError('invalid-locator', problem, { op, locator: name });
}

/** Throws `invalid-argument` unless `size` is a positive safe integer. */
export function validateSize(size: number, op: HostBackendOp, locator?: string): void {
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new HostBackendError('invalid-argument', `size ${String(size)} must be a positive integer`, {
      op,
      locator,
    });
  }
}
