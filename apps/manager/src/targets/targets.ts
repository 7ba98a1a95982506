import { randomBytes, randomUUID } from 'node:crypto';
import { ApiError, type TargetSettings } from '@stowage/api';
import { DEFAULT_CHUNKER_PARAMS, validateChunkerParams } from '@stowage/chunker';
import { EngineError, Repository } from '@stowage/engine';
import { IntegrityError, type KdfParams, StowageFormatError, WrongPassphraseError } from '@stowage/format';
import { createDefaultStoreStack, type ObjectStore, openObjectStore } from '@stowage/object-store';
import { type Insertable, type Kysely, sql } from 'kysely';
import { uniqueViolation } from '../db/conn.js';
import type { BackupTargetRow, BackupTargetTable, Database } from '../db/schema.js';
import { insertTarget } from '../db/targets.js';
import { type SecretBox, secretPlace } from '../secrets/envelope.js';
import {
  type ApiCredentials,
  locationOf,
  repositoryUrl,
  type TargetLocation,
  toS3Credentials,
} from './locations.js';
import { type ProbeResult, probeStore } from './probe.js';

export interface TargetDeps {
  readonly db: Kysely<Database>;
  readonly secrets: SecretBox;
  readonly now: () => Date;
  /** The key file's scrypt cost (tests use a cheap one; the default costs 128 MiB and ~0.5 s). */
  readonly kdf?: KdfParams;
}

export interface NewTarget {
  name: string;
  location: TargetLocation;
  credentials: ApiCredentials | undefined;
  passphrase: string | undefined;
  avgChunkSize: number | undefined;
  /** The GC's and verify's settings given (absent: the columns' defaults). */
  settings: TargetScheduleSettings;
}

/** A target's GC and verify settings, by column: what create and update may set. */
export interface TargetScheduleSettings {
  gc_hour?: number;
  timezone?: string;
  gc_enabled?: boolean;
  gc_grace_seconds?: number;
  verify_every_days?: number | null;
  verify_sample_percent?: number;
}

/** The settings a request gave, dropping the absent ones. */
export function scheduleSettingsOf(body: {
  gc_hour?: number | undefined;
  timezone?: string | undefined;
  gc_enabled?: boolean | undefined;
  gc_grace_seconds?: number | undefined;
  verify_every_days?: number | null | undefined;
  verify_sample_percent?: number | undefined;
}): TargetScheduleSettings {
  const settings: TargetScheduleSettings = {};
  if (body.gc_hour !== undefined) settings.gc_hour = body.gc_hour;
  if (body.timezone !== undefined) settings.timezone = body.timezone;
  if (body.gc_enabled !== undefined) settings.gc_enabled = body.gc_enabled;
  if (body.gc_grace_seconds !== undefined) settings.gc_grace_seconds = body.gc_grace_seconds;
  if (body.verify_every_days !== undefined) settings.verify_every_days = body.verify_every_days;
  if (body.verify_sample_percent !== undefined) settings.verify_sample_percent = body.verify_sample_percent;
  return settings;
}

/** 26 characters of Crockford base32 in groups of five: 130 bits, easy to read aloud and to type. */
export function generatePassphrase(): string {
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  const bytes = randomBytes(26);
  const chars = Array.from(bytes, (b) => alphabet[b & 31]).join('');
  return chars.match(/.{1,5}/g)!.join('-');
}

/** The chunker of a new target: the default proportions (min = avg / 4, max = avg × 4) around its average. */
function chunkerFor(avgSize: number | undefined) {
  if (avgSize === undefined) return DEFAULT_CHUNKER_PARAMS;
  return validateChunkerParams({
    ...DEFAULT_CHUNKER_PARAMS,
    minSize: avgSize / 4,
    avgSize,
    maxSize: avgSize * 4,
  });
}

/** The bare store of a location: what the manager writes `config`, key files and probes through. */
export function openLocation(location: TargetLocation, credentials: ApiCredentials | undefined): ObjectStore {
  const url = repositoryUrl(location);
  return openObjectStore(url, credentials === undefined ? {} : { credentials: toS3Credentials(credentials) });
}

/**
 * Creates a target: writes the repository (key file, then config) into the bucket, then the row with its
 * secrets sealed. A bucket that already holds a repository is refused (`importTarget` takes one in with its
 * recovery passphrase), so a second manager never re-keys a repository another one uses.
 */
export async function createTarget(
  deps: TargetDeps,
  input: NewTarget,
): Promise<{ row: BackupTargetRow; recoveryPassphrase: string | null }> {
  await refuseTakenName(deps, input.name);
  if (input.location.kind === 's3' && input.credentials === undefined) {
    throw new ApiError('invalid_request', 'credentials: an S3 target needs credentials');
  }
  const store = openLocation(input.location, input.credentials);
  const stack = createDefaultStoreStack(store, { retry: { attempts: 3 } });
  const passphrase = input.passphrase ?? generatePassphrase();
  let repository: Repository;
  try {
    repository = await Repository.init(stack, {
      passphrase: passphrase.normalize('NFC'),
      chunker: chunkerFor(input.avgChunkSize),
      ...(deps.kdf === undefined ? {} : { kdf: deps.kdf }),
    });
  } catch (error) {
    if (error instanceof EngineError && error.code === 'repository-exists') {
      throw new ApiError(
        'conflict',
        `${repositoryUrl(input.location)} already holds a Stowage repository; import it with its recovery passphrase instead of creating a new one (POST /v1/backup_targets/import, "manager target import")`,
        { repository: repositoryUrl(input.location), hint: 'import' },
      );
    }
    throw storeApiError(error, 'cannot create the repository');
  } finally {
    destroyStore(store);
  }
  try {
    const row = await insertTarget(deps.db, targetRowValues(deps, input, repository));
    return { row, recoveryPassphrase: input.passphrase === undefined ? passphrase : null };
  } catch (error) {
    if (uniqueViolation(error) !== undefined) {
      throw new ApiError('conflict', `a target named ${JSON.stringify(input.name)} exists`);
    }
    throw error;
  }
}

/** A new target row for an opened repository: its location, its secrets sealed to the new row's id. */
function targetRowValues(
  deps: Pick<TargetDeps, 'secrets' | 'now'>,
  input: Pick<NewTarget, 'name' | 'location' | 'credentials' | 'settings'>,
  repository: Repository,
): Insertable<BackupTargetTable> {
  const id = randomUUID();
  const now = deps.now();
  const location = input.location;
  const chunker = repository.config.chunker;
  return {
    id,
    name: input.name,
    kind: location.kind,
    endpoint: location.kind === 's3' ? location.endpoint : null,
    region: location.kind === 's3' ? location.region : null,
    bucket: location.kind === 's3' ? location.bucket : null,
    prefix: location.kind === 's3' ? location.prefix : '',
    path_style: location.kind === 's3' ? location.pathStyle : false,
    path: location.kind === 'filesystem' ? location.path : null,
    credentials:
      input.credentials === undefined
        ? null
        : deps.secrets.sealText(
            JSON.stringify(input.credentials),
            secretPlace('backup_target', 'credentials', id),
          ),
    target_key: deps.secrets.seal(repository.targetKey, secretPlace('backup_target', 'target_key', id)),
    repository_id: repository.config.repositoryId,
    chunker: JSON.stringify({
      min_size: chunker.minSize,
      avg_size: chunker.avgSize,
      max_size: chunker.maxSize,
    }),
    ...input.settings,
    created_at: now,
    updated_at: now,
  };
}

export interface ImportedTarget {
  name: string;
  location: TargetLocation;
  credentials: ApiCredentials | undefined;
  /** Opens one of the repository's key files; never stored. */
  passphrase: string;
  settings: TargetScheduleSettings;
}

/**
 * Re-creates a target from a repository already in a bucket (disaster recovery: the database is lost, the
 * bucket is not): opens it with its recovery passphrase (key files, docs/format.md §8; the unwrapped key
 * checked against `config`'s MAC), then records the row with the key sealed as `createTarget` seals a new
 * one, and the repository's own id and chunker. Nothing is written to the bucket, and nothing is stored
 * unless the passphrase opens the repository. A repository already recorded as a target is refused: two
 * rows over one repository would collect its garbage twice and list its backups twice.
 */
export async function importTarget(deps: TargetDeps, input: ImportedTarget): Promise<BackupTargetRow> {
  await refuseTakenName(deps, input.name);
  if (input.location.kind === 's3' && input.credentials === undefined) {
    throw new ApiError('invalid_request', 'credentials: an S3 target needs credentials');
  }
  const url = repositoryUrl(input.location);
  const store = openLocation(input.location, input.credentials);
  const stack = createDefaultStoreStack(store, { retry: { attempts: 3 } });
  let repository: Repository;
  try {
    repository = await Repository.open(stack, { passphrase: input.passphrase.normalize('NFC') });
  } catch (error) {
    throw importApiError(error, url);
  } finally {
    destroyStore(store);
  }
  const repositoryId = repository.config.repositoryId;
  try {
    return await deps.db.transaction().execute(async (trx) => {
      // Two imports of one repository at once (two replicas, a retried request) must not both pass the check.
      await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`stowage target import ${repositoryId}`}, 0))`.execute(
        trx,
      );
      const known = await trx
        .selectFrom('backup_target')
        .select(['id', 'name'])
        .where('repository_id', '=', repositoryId)
        .executeTakeFirst();
      if (known) {
        throw new ApiError(
          'conflict',
          `the repository at ${url} (${repositoryId}) is already target ${known.id} ${JSON.stringify(known.name)}`,
          { target_id: known.id, repository_id: repositoryId },
        );
      }
      return insertTarget(trx, targetRowValues(deps, input, repository));
    });
  } catch (error) {
    if (uniqueViolation(error) !== undefined) {
      throw new ApiError('conflict', `a target named ${JSON.stringify(input.name)} exists`);
    }
    throw error;
  }
}

async function refuseTakenName(deps: Pick<TargetDeps, 'db'>, name: string): Promise<void> {
  const existing = await deps.db
    .selectFrom('backup_target')
    .select('id')
    .where('name', '=', name)
    .executeTakeFirst();
  if (existing)
    throw new ApiError('conflict', `a target named ${JSON.stringify(name)} exists`, {
      target_id: existing.id,
    });
}

/** Why a repository could not be opened for an import, as the API's error: the passphrase, or its absence. */
function importApiError(error: unknown, url: string): ApiError {
  if (error instanceof WrongPassphraseError) {
    return new ApiError(
      'wrong_key',
      `the recovery passphrase does not open the repository at ${url}: no key file opens with it`,
      { repository: url },
    );
  }
  if (error instanceof EngineError && error.code === 'repository-not-found') {
    return new ApiError(
      'not_found',
      `${url} holds no Stowage repository (no config object): nothing to import; check the location, or create a new target`,
      { repository: url, hint: 'create' },
    );
  }
  if (error instanceof IntegrityError) {
    // A key file opened, but the key it holds does not authenticate `config`: another repository's key file
    // copied here, or an altered config. Either way this key must not be trusted with the bucket.
    return new ApiError(
      'wrong_key',
      `a key file at ${url} opened, but its key does not match the repository's config: ${error.message}`,
      { repository: url },
    );
  }
  if (error instanceof StowageFormatError) {
    return new ApiError('unsupported', `cannot import the repository at ${url}: ${error.message}`, {
      repository: url,
    });
  }
  return storeApiError(error, `cannot open the repository at ${url}`);
}

export function targetCredentials(
  deps: Pick<TargetDeps, 'secrets'>,
  row: BackupTargetRow,
): ApiCredentials | undefined {
  if (row.credentials === null) return undefined;
  return JSON.parse(
    deps.secrets.openText(row.credentials, secretPlace('backup_target', 'credentials', row.id)),
  );
}

export function targetKey(deps: Pick<TargetDeps, 'secrets'>, row: BackupTargetRow): Uint8Array {
  return deps.secrets.open(row.target_key, secretPlace('backup_target', 'target_key', row.id));
}

/** What an agent's job carries to reach the target: held in memory for the job only. */
export function targetSettings(deps: Pick<TargetDeps, 'secrets'>, row: BackupTargetRow): TargetSettings {
  const credentials = targetCredentials(deps, row);
  return {
    repository: repositoryUrl(locationOf(row)),
    ...(credentials === undefined ? {} : { credentials }),
    target_key: Buffer.from(targetKey(deps, row)).toString('base64'),
  };
}

/** Opens the target's repository with its key, for the manager's own reads and deletes (manifests). */
export async function openTargetRepository(
  deps: Pick<TargetDeps, 'secrets'>,
  row: BackupTargetRow,
): Promise<{ repository: Repository; close: () => void }> {
  const store = openLocation(locationOf(row), targetCredentials(deps, row));
  const stack = createDefaultStoreStack(store);
  try {
    const repository = await Repository.openWithKey(stack, targetKey(deps, row));
    return { repository, close: () => destroyStore(store) };
  } catch (error) {
    destroyStore(store);
    throw storeApiError(error, `cannot open the repository of target ${row.name}`);
  }
}

/**
 * The connection test: the probe's four steps, then whether the repository is still there and opens with
 * the target's key (a bucket emptied or swapped underneath is `not_a_repository`).
 */
export async function testTarget(
  deps: Pick<TargetDeps, 'secrets'>,
  row: BackupTargetRow,
): Promise<ProbeResult> {
  const store = openLocation(locationOf(row), targetCredentials(deps, row));
  try {
    const result = await probeStore(store);
    if (!result.ok) return result;
    try {
      await Repository.openWithKey(store, targetKey(deps, row), { signal: AbortSignal.timeout(15_000) });
    } catch (error) {
      return {
        ok: false,
        steps: result.steps,
        error: {
          cause: 'not_a_repository',
          message: error instanceof Error ? error.message.split('\n')[0]!.slice(0, 300) : String(error),
          s3_code: null,
          status: null,
        },
      };
    }
    return result;
  } finally {
    destroyStore(store);
  }
}

/** Probes a location before any target is saved there: what the create form asks first. Records nothing. */
export async function testLocation(
  location: TargetLocation,
  credentials: ApiCredentials | undefined,
): Promise<ProbeResult> {
  const store = openLocation(location, credentials);
  try {
    return await probeStore(store);
  } finally {
    destroyStore(store);
  }
}

function destroyStore(store: ObjectStore): void {
  (store as { destroy?: () => void }).destroy?.();
}

/** An object-store or engine failure as the API's error: the store's message, which never holds a secret. */
export function storeApiError(error: unknown, what: string): ApiError {
  if (error instanceof ApiError) return error;
  const message = error instanceof Error ? error.message.split('\n')[0]!.slice(0, 300) : String(error);
  return new ApiError('unavailable', `${what}: ${message}`);
}
