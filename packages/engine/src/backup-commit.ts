import { isObjectStoreError, type ObjectStore, type OperationOptions } from '@stowage/object-store';
import { EngineError } from './errors.js';

// The commit point of a backup: its manifest root, written once.

export function backupExists(backupId: string, manifestKey: string): EngineError {
  return new EngineError(
    'backup-exists',
    `backup ${backupId} is already committed (${manifestKey}); a backup is written once, so this one was ` +
      'not made and the committed backup is untouched (use a new backup id)',
  );
}

/**
 * Writes a manifest only where none exists: a conditional create (`If-None-Match: *`). A `precondition-failed`
 * answer is success when the object there is byte-identical to ours — a retried put whose first try landed
 * and lost its answer (the nonce is random, so no other writer produces the same bytes) — and `backup-exists`
 * otherwise, the other writer's manifest untouched.
 */
export async function commitManifest(
  store: ObjectStore,
  manifestKey: string,
  encoded: Uint8Array,
  backupId: string,
  /** The fence's limit (BackupOptions.beforeCommit): the whole commit is aborted past it. */
  deadlineMs?: number,
): Promise<void> {
  if (deadlineMs === undefined) return writeOnce(store, manifestKey, encoded, backupId, undefined);
  if (deadlineMs <= 0) throw commitExpired(backupId, manifestKey);
  const signal = AbortSignal.timeout(Math.floor(deadlineMs));
  try {
    await writeOnce(store, manifestKey, encoded, backupId, { signal });
  } catch (error) {
    // The signal is the deadline's alone: once it fired, whatever the store threw is the deadline's doing.
    if (signal.aborted) throw commitExpired(backupId, manifestKey);
    throw error;
  }
}

function commitExpired(backupId: string, manifestKey: string): EngineError {
  return new EngineError(
    'commit-expired',
    `the leave to commit backup ${backupId} ran out before its manifest ${manifestKey} was written; the ` +
      'backup is not committed (unless the aborted write landed, which its manager checks)',
  );
}

async function writeOnce(
  store: ObjectStore,
  manifestKey: string,
  encoded: Uint8Array,
  backupId: string,
  call: OperationOptions | undefined,
): Promise<void> {
  // Fallback for stores that ignore If-None-Match (s3rver, some S3 clones), and done everywhere since the
  // engine cannot tell which store it has: a HEAD right before the put. It leaves a race window between the
  // HEAD and the put in which another writer's manifest of this id could still be overwritten there; only a
  // store that honours the condition (memory, filesystem, AWS S3, Ceph RGW) closes it.
  if (await store.head(manifestKey, call)) throw backupExists(backupId, manifestKey);
  try {
    await store.put(manifestKey, encoded, call ? { ifNoneMatch: true, ...call } : { ifNoneMatch: true });
  } catch (error) {
    if (!isObjectStoreError(error, 'precondition-failed')) throw error;
    const existing = await store.get(manifestKey, undefined, call);
    if (!Buffer.from(existing).equals(Buffer.from(encoded))) throw backupExists(backupId, manifestKey);
  }
}
