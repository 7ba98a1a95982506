import { isObjectStoreError, type ObjectStore } from '@stowage/object-store';
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
): Promise<void> {
  // Fallback for stores that ignore If-None-Match (s3rver, some S3 clones), and done everywhere since the
  // engine cannot tell which store it has: a HEAD right before the put. It leaves a race window between the
  // HEAD and the put in which another writer's manifest of this id could still be overwritten there; only a
  // store that honours the condition (memory, filesystem, AWS S3, Ceph RGW) closes it.
  if (await store.head(manifestKey)) throw backupExists(backupId, manifestKey);
  try {
    await store.put(manifestKey, encoded, { ifNoneMatch: true });
  } catch (error) {
    if (!isObjectStoreError(error, 'precondition-failed')) throw error;
    const existing = await store.get(manifestKey);
    if (!Buffer.from(existing).equals(Buffer.from(encoded))) throw backupExists(backupId, manifestKey);
  }
}
