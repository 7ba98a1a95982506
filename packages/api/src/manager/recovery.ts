import { z } from 'zod';
import { BackendKind } from '../agent.js';
import { Bytes, Uuid } from './primitives.js';
import { BackupTarget, CreateFilesystemTargetRequest, CreateS3TargetRequest } from './targets.js';

/**
 * Disaster recovery (docs/operations.md, the DR runbook): a target re-created from its bucket alone, and the
 * backup index rebuilt from the manifests in it. The bucket is the source of truth; these routes only read it.
 */

/** A recovery passphrase as it was set: any length the writer accepted (create asks for 12 at least, a
 * standalone repository may have a shorter one). */
const RecoveryPassphrase = z.string().min(1).max(1024);

/**
 * `POST /v1/backup_targets/import`: where an existing repository lives, its credentials and its recovery
 * passphrase. The chunker is not given: it is the repository's (its `config`). The passphrase opens the key
 * file and is never stored; the target key it unwraps is sealed as `createTarget` seals a new one.
 */
export const ImportS3TargetRequest = CreateS3TargetRequest.omit({ chunker: true, passphrase: true }).extend({
  passphrase: RecoveryPassphrase,
});
export type ImportS3TargetRequest = z.infer<typeof ImportS3TargetRequest>;

export const ImportFilesystemTargetRequest = CreateFilesystemTargetRequest.omit({
  chunker: true,
  passphrase: true,
}).extend({ passphrase: RecoveryPassphrase });
export type ImportFilesystemTargetRequest = z.infer<typeof ImportFilesystemTargetRequest>;

export const ImportBackupTargetRequest = z.discriminatedUnion('kind', [
  ImportS3TargetRequest,
  ImportFilesystemTargetRequest,
]);
export type ImportBackupTargetRequest = z.infer<typeof ImportBackupTargetRequest>;

export const ImportedBackupTarget = z.strictObject({ target: BackupTarget });
export type ImportedBackupTarget = z.infer<typeof ImportedBackupTarget>;

/** Most manifests one rebuild call reads; the default keeps a call to seconds on a real bucket. */
export const INDEX_REBUILD_MAX_LIMIT = 10_000;
export const INDEX_REBUILD_DEFAULT_LIMIT = 2_000;

/**
 * `POST /v1/backup_targets/{id}/index_rebuild`: one bounded batch of the bucket's manifests, in key order,
 * after `start_after` (the previous batch's `next_start_after`). A caller loops until `next_start_after` is
 * null; each call is idempotent, so an interrupted rebuild is resumed or simply run again.
 */
export const IndexRebuildRequest = z.strictObject({
  /** A manifest key (`manifests/<volume-id>/<backup-id>`): read only the manifests after it. */
  start_after: z.string().min(1).max(1024).startsWith('manifests/').optional(),
  limit: z.number().int().min(1).max(INDEX_REBUILD_MAX_LIMIT).default(INDEX_REBUILD_DEFAULT_LIMIT),
  /** The bucket does not record which backend a volume lived on: volume rows the rebuild creates get this
   * one, which a restore uses unless it names another. */
  volume_backend: BackendKind.default('local-file'),
});
export type IndexRebuildRequest = z.infer<typeof IndexRebuildRequest>;

/** Why a manifest found in the bucket gave no backup row. */
export const INDEX_REBUILD_PROBLEMS = [
  /** A key under `manifests/` that is not `manifests/<uuid>/<uuid>`. */
  'bad_key',
  /** The root does not open: corrupt, truncated, another repository's key, or copied under another backup's
   * or volume's key (the AEAD binds both ids). */
  'integrity',
  /** The root opens but is not a valid version-2 manifest (an unsupported version, a malformed document). */
  'format',
  /** A backup row of this id exists, of another volume or target: left as it is. */
  'conflict',
] as const;
export const IndexRebuildProblemKind = z.enum(INDEX_REBUILD_PROBLEMS);
export type IndexRebuildProblemKind = z.infer<typeof IndexRebuildProblemKind>;

export const IndexRebuildProblem = z.strictObject({
  manifest_key: z.string(),
  kind: IndexRebuildProblemKind,
  message: z.string(),
});
export type IndexRebuildProblem = z.infer<typeof IndexRebuildProblem>;

export const IndexRebuildResult = z.strictObject({
  backup_target_id: Uuid,
  /** Keys under `manifests/` this call looked at. */
  manifests: Bytes,
  /** Backup rows inserted (state `completed`, figures from the root). */
  inserted: Bytes,
  /** Manifests whose backup row was already there (of this volume and target): left untouched, not even
   * read (whether they still open is for verify to say). */
  existing: Bytes,
  /** Listed, but gone when read (a delete or a prune ran meanwhile): no row. */
  vanished: Bytes,
  /** Volume rows created as `archived` (no host, no locator) for backups whose volume was unknown. */
  volumes_created: Bytes,
  /** Roots that could not be read as manifests (`bad_key`, `integrity`, `format`); each one is in `problems`. */
  damaged: Bytes,
  /** Rows of another volume or target under a manifest's backup id; each one is in `problems`. */
  conflicts: Bytes,
  problems: z.array(IndexRebuildProblem),
  /** Pass as `start_after` for the next batch; null when the listing reached the end. */
  next_start_after: z.string().nullable(),
  duration_seconds: z.number().min(0),
});
export type IndexRebuildResult = z.infer<typeof IndexRebuildResult>;
