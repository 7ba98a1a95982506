import {
  ApiError,
  type BackendKind,
  type IndexRebuildProblem,
  type IndexRebuildResult,
  VolumeName,
} from '@stowage/api';
import { EngineError, type Repository } from '@stowage/engine';
import { IntegrityError, type Manifest, parseManifestObjectKey, StowageFormatError } from '@stowage/format';
import { isObjectStoreError, type ObjectInfo } from '@stowage/object-store';
import { isForeignKeyViolation } from '../db/conn.js';
import {
  backupOwners,
  deleteRebuiltBackup,
  insertMissingBackups,
  insertMissingVolumes,
} from '../db/recovery.js';
import type { BackupTargetRow, NewBackup, NewVolume } from '../db/schema.js';
import { getTarget } from '../db/targets.js';
import { openTargetRepository, storeApiError } from '../targets/targets.js';
import type { ManagerContext } from './context.js';

const MANIFESTS_PREFIX = 'manifests/';
/** Manifests read, then written to the database, at a time: bounds memory whatever the batch's limit. */
const CHUNK = 200;
/** Roots fetched at once (each is one small GET; latency dominates). */
const READ_CONCURRENCY = 8;
/** Tries of one chunk's transaction when a volume it relies on is deleted underneath it, or PostgreSQL picks
 * it as a deadlock's victim (two rebuilds insert in one order, but a writer of other rows may not). */
const CHUNK_TRIES = 3;

/** Postgres's deadlock_detected (40P01). */
function isDeadlock(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '40P01';
}

export interface RebuildOptions {
  /** Read only the manifests whose keys sort after this one (the previous batch's `next_start_after`). */
  startAfter?: string | undefined;
  limit: number;
  /** The backend recorded on volume rows the rebuild creates (the bucket does not say). */
  volumeBackend: BackendKind;
  signal?: AbortSignal;
}

/** A manifest as the rebuild found it: decoded, gone, or a problem to report. */
type Found =
  | { kind: 'manifest'; info: ObjectInfo; manifest: Manifest }
  | { kind: 'vanished'; info: ObjectInfo }
  | { kind: 'problem'; problem: IndexRebuildProblem };

/**
 * One batch of the index rebuild (disaster recovery, docs/operations.md): the target's manifests in key order
 * after `startAfter`, at most `limit` of them. A manifest whose backup row exists is left alone, unread; every
 * other root is decrypted with the target key, and its backup row inserted (completed, with the root's size,
 * chunk count and time), after the volume row (archived: no host, no locator) unless the volume is known.
 * Roots that do not decode are reported and counted, never skipped in silence.
 *
 * Idempotent and safe while the manager serves: rows are only inserted `ON CONFLICT DO NOTHING` on their
 * ids (a running backup's row, a volume on a host, another rebuild's rows are left as they are), and a row
 * inserted for a manifest that a delete or prune removed meanwhile is taken back (its manifest is checked
 * once more after the insert; deletes remove the manifest before the row).
 */
export async function rebuildIndex(
  ctx: ManagerContext,
  targetId: string,
  options: RebuildOptions,
): Promise<IndexRebuildResult> {
  const target = await getTarget(ctx.db, targetId);
  if (!target) throw new ApiError('not_found', `no backup target ${targetId}`);
  const { repository, close } = await openTargetRepository(ctx, target);
  try {
    return await rebuildFromRepository(ctx, target, repository, options);
  } finally {
    close();
  }
}

/** `rebuildIndex` over a repository already open (with the target's key): tests hand it a store of theirs. */
export async function rebuildFromRepository(
  ctx: ManagerContext,
  target: BackupTargetRow,
  repository: Repository,
  options: RebuildOptions,
): Promise<IndexRebuildResult> {
  const started = performance.now();
  const result: IndexRebuildResult = {
    backup_target_id: target.id,
    manifests: 0,
    inserted: 0,
    existing: 0,
    vanished: 0,
    volumes_created: 0,
    damaged: 0,
    conflicts: 0,
    problems: [],
    next_start_after: null,
    duration_seconds: 0,
  };
  const log = { target_id: target.id };
  ctx.logger.info('index rebuild batch started', {
    ...log,
    start_after: options.startAfter ?? null,
    limit: options.limit,
  });
  try {
    const after = options.startAfter === undefined ? undefined : Buffer.from(options.startAfter);
    let chunk: ObjectInfo[] = [];
    let last: string | undefined;
    const listing = repository.store.list(MANIFESTS_PREFIX, { signal: options.signal });
    for await (const info of listing) {
      // Listings run in ascending order of the keys' UTF-8 bytes (the ObjectStore contract), so can the cursor.
      if (after !== undefined && Buffer.compare(Buffer.from(info.key), after) <= 0) continue;
      if (result.manifests === options.limit) {
        // One more key exists past the batch: the caller goes on from the last one read.
        result.next_start_after = last ?? null;
        break;
      }
      chunk.push(info);
      result.manifests++;
      last = info.key;
      if (chunk.length === CHUNK) {
        await rebuildChunk(ctx, repository, target, chunk, options, result);
        chunk = [];
        ctx.logger.info('index rebuild progress', { ...log, ...counts(result), last_key: last });
      }
    }
    await rebuildChunk(ctx, repository, target, chunk, options, result);
  } catch (error) {
    ctx.logger.warn('index rebuild batch failed', {
      ...log,
      ...counts(result),
      error: error instanceof Error ? error.message : String(error),
    });
    // The bucket's failures are the bucket's (503, with the store's message); anything else is ours.
    if (isObjectStoreError(error) || error instanceof EngineError)
      throw storeApiError(error, `the index rebuild of target ${target.name} stopped`);
    throw error;
  }
  result.duration_seconds = (performance.now() - started) / 1000;
  ctx.logger.info('index rebuild batch done', {
    ...log,
    ...counts(result),
    next_start_after: result.next_start_after,
  });
  for (const problem of result.problems) {
    ctx.logger.warn('index rebuild: manifest not recorded', {
      ...log,
      manifest_key: problem.manifest_key,
      problem: problem.kind,
      error: problem.message,
    });
  }
  return result;
}

function counts(result: IndexRebuildResult) {
  const { manifests, inserted, existing, vanished, volumes_created, damaged, conflicts } = result;
  return { manifests, inserted, existing, vanished, volumes_created, damaged, conflicts };
}

async function rebuildChunk(
  ctx: ManagerContext,
  repository: Repository,
  target: BackupTargetRow,
  infos: readonly ObjectInfo[],
  options: RebuildOptions,
  result: IndexRebuildResult,
): Promise<void> {
  if (infos.length === 0) return;
  // A manifest whose backup row is there already is not read: a rerun, or a rebuild beside a serving manager,
  // costs a listing and a query per chunk, not a GET per backup. (Whether such a manifest still opens is for
  // verify to say, not the index.)
  const keyed = infos.map((info) => ({ info, ids: parseManifestObjectKey(info.key) }));
  const known = await ownersOf(
    ctx,
    keyed.flatMap(({ ids }) => (ids === undefined ? [] : [ids.backupId])),
  );
  const unknown: ObjectInfo[] = [];
  for (const { info, ids } of keyed) {
    const owner = ids === undefined ? undefined : known.get(ids.backupId);
    if (ids === undefined || owner === undefined) unknown.push(info);
    else countKnown(result, target, info.key, ids, owner);
  }
  const found = await readManifests(repository, unknown, options.signal);
  const manifests: { info: ObjectInfo; manifest: Manifest }[] = [];
  for (const f of found) {
    if (f.kind === 'manifest') manifests.push(f);
    else if (f.kind === 'vanished') result.vanished++;
    else {
      result.damaged++;
      result.problems.push(f.problem);
    }
  }
  if (manifests.length === 0) return;

  const volumes = new Map<string, NewVolume>();
  for (const { manifest } of manifests) {
    const known = volumes.get(manifest.volumeId);
    // The newest backup of the chunk names the volume and gives its size (rows already there stay as they are).
    if (known !== undefined && (known.created_at as Date) >= manifest.createdAt) continue;
    volumes.set(manifest.volumeId, archivedVolume(manifest, target, options.volumeBackend));
  }
  const backups: NewBackup[] = manifests.map(({ info, manifest }) => rebuiltBackup(manifest, info, target));

  let inserted: string[] = [];
  for (let attempt = 1; ; attempt++) {
    try {
      const written = await ctx.db.transaction().execute(async (trx) => {
        const createdVolumes = await insertMissingVolumes(trx, [...volumes.values()]);
        const createdBackups = await insertMissingBackups(trx, backups);
        return { createdVolumes, createdBackups };
      });
      result.volumes_created += written.createdVolumes.length;
      inserted = written.createdBackups;
      break;
    } catch (error) {
      // A volume deleted between its "already there" and the backup's insert: insert it again.
      const retry = isForeignKeyViolation(error) || isDeadlock(error);
      if (!retry || attempt === CHUNK_TRIES) throw error;
    }
  }

  const insertedIds = new Set(inserted);
  const skipped = backups.filter((b) => !insertedIds.has(b.id));
  const owners = await ownersOf(
    ctx,
    skipped.map((b) => b.id),
  );
  for (const backup of skipped) {
    const owner = owners.get(backup.id);
    // Inserted by no one and there no longer: deleted between the insert and this look. Nothing to keep.
    if (owner === undefined) result.vanished++;
    else
      countKnown(
        result,
        target,
        backup.manifest_key,
        { volumeId: backup.volume_id, backupId: backup.id },
        owner,
      );
  }

  // A delete removes the manifest, then the row: one that ran between this batch's read and its insert left a
  // row behind that no manifest backs. Looking again after the insert closes that window.
  const recheck = backups.filter((b) => insertedIds.has(b.id));
  const gone = await mapLimit(recheck, READ_CONCURRENCY, async (b) => {
    const head = await repository.store.head(b.manifest_key, { signal: options.signal });
    return head === undefined ? b : undefined;
  });
  for (const backup of gone) {
    if (backup === undefined) continue;
    if (await deleteRebuiltBackup(ctx.db, backup.id, target.id)) insertedIds.delete(backup.id);
    result.vanished++;
  }
  result.inserted += insertedIds.size;
}

type Owner = { volume_id: string; backup_target_id: string };

async function ownersOf(ctx: ManagerContext, ids: readonly string[]): Promise<Map<string, Owner>> {
  return new Map((await backupOwners(ctx.db, ids)).map((o) => [o.id, o]));
}

/** A manifest whose backup id has a row: the same backup (left as it is), or another's id (reported). */
function countKnown(
  result: IndexRebuildResult,
  target: BackupTargetRow,
  key: string,
  ids: { volumeId: string; backupId: string },
  owner: Owner,
): void {
  if (owner.volume_id === ids.volumeId && owner.backup_target_id === target.id) {
    result.existing++;
    return;
  }
  result.conflicts++;
  result.problems.push({
    manifest_key: key,
    kind: 'conflict',
    message:
      `backup ${ids.backupId} is already recorded for volume ${owner.volume_id} in target ` +
      `${owner.backup_target_id}; left as it is`,
  });
}

async function readManifests(
  repository: Repository,
  infos: readonly ObjectInfo[],
  signal: AbortSignal | undefined,
): Promise<Found[]> {
  return mapLimit(infos, READ_CONCURRENCY, async (info): Promise<Found> => {
    const ids = parseManifestObjectKey(info.key);
    if (ids === undefined) {
      return {
        kind: 'problem',
        problem: {
          manifest_key: info.key,
          kind: 'bad_key',
          message: `${info.key} is not a manifest key (manifests/<volume-id>/<backup-id>, lower-case UUIDs)`,
        },
      };
    }
    try {
      const manifest = await repository.loadManifest({ ...ids, manifestKey: info.key }, { signal });
      return { kind: 'manifest', info, manifest };
    } catch (error) {
      if (isObjectStoreError(error, 'not-found')) return { kind: 'vanished', info };
      if (error instanceof StowageFormatError) {
        return {
          kind: 'problem',
          problem: {
            manifest_key: info.key,
            kind: error instanceof IntegrityError ? 'integrity' : 'format',
            message: error.message.split('\n')[0]!.slice(0, 500),
          },
        };
      }
      throw error;
    }
  });
}

/** The volume row of a backup whose volume the database does not know: archived, no host, no locator. */
function archivedVolume(manifest: Manifest, target: BackupTargetRow, backend: BackendKind): NewVolume {
  // Restores derive the new volume's default name from this one, so it must be a valid volume name.
  const name = VolumeName.safeParse(manifest.volumeName).success
    ? manifest.volumeName
    : `volume-${manifest.volumeId.slice(0, 8)}`;
  return {
    id: manifest.volumeId,
    name,
    host_id: null,
    backend,
    locator: null,
    size: manifest.volumeSize,
    state: 'archived',
    backup_target_id: target.id,
    provisioned: false,
    created_at: manifest.createdAt,
    updated_at: manifest.createdAt,
  };
}

/** A backup's row from its root: completed, made at the root's `createdAt`, committed when the root was
 * written (the object's time); what the agent alone knew (bytes read and uploaded, new chunks) is unknown. */
function rebuiltBackup(manifest: Manifest, info: ObjectInfo, target: BackupTargetRow): NewBackup {
  const committed = new Date(Math.max(info.lastModified.getTime(), manifest.createdAt.getTime()));
  return {
    id: manifest.backupId,
    volume_id: manifest.volumeId,
    backup_target_id: target.id,
    job_id: null,
    state: 'completed',
    manifest_key: info.key,
    started_at: manifest.createdAt,
    finished_at: committed,
    size: manifest.volumeSize,
    bytes_read: null,
    bytes_uploaded: null,
    chunks: manifest.chunkCount,
    chunks_new: null,
    snapshot: null,
    error: null,
  };
}

/** `fn` over `items`, at most `limit` at a time, answers in the items' order; the first failure fails all. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
