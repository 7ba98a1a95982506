import { randomUUID } from 'node:crypto';
import { blake3DeriveKey, blake3Keyed } from '@stowage/blake3';
import { type ChunkerParams, type GearTable, gearTableFromBytes } from '@stowage/chunker';
import {
  createKeyFile,
  DAMAGE_RECORD_PREFIX,
  type DamagedChunks,
  type DamageRecord,
  damageRecordObjectKey,
  decodeConfig,
  decodeDamageRecord,
  decodeManifest,
  deriveTargetKeys,
  ENTRY_RECORD_LENGTH,
  encodeConfig,
  encodeDamageRecord,
  encodeManifest,
  generateTargetKey,
  IntegrityError,
  type KdfParams,
  type Manifest,
  ManifestEntries,
  type ManifestSegment,
  manifestObjectKey,
  openKeyFile,
  parseDamageRecordObjectKey,
  type RepositoryConfig,
  readConfigVersion,
  readManifestSegments,
  StowageFormatError,
  type TargetKeys,
  WrongPassphraseError,
} from '@stowage/format';
import {
  isObjectStoreError,
  type ObjectStore,
  ObjectStoreError,
  type OperationOptions,
} from '@stowage/object-store';
import { jobSignal } from './abort.js';
import { RepositoryDamage } from './damage.js';
import { EngineError } from './errors.js';

export const CONFIG_KEY = 'config';
export const KEYS_PREFIX = 'keys/';
export const MANIFESTS_PREFIX = 'manifests/';
/** BLAKE3 derive_key context of the key that maps volume names to volume ids (docs/format.md). */
export const VOLUME_ID_CONTEXT = 'stowage 2026-11-22 volume id';

export interface BackupRef {
  volumeId: string;
  backupId: string;
  manifestKey: string;
}

export interface BackupInfo extends BackupRef {
  volumeName: string;
  volumeSize: number;
  createdAt: string;
  chunks: number;
}

/** What `listBackups` found: the backups it could read, and the manifests it could not (never silently). */
export interface BackupListing {
  backups: BackupInfo[];
  /** Manifests that exist but do not decode (corrupt, truncated, wrong key, unknown version). */
  damaged: { ref: BackupRef; error: StowageFormatError }[];
}

/** Key files `open` tries for one passphrase (docs/format.md §8). */
export const MAX_KEY_FILES_TRIED = 64;

/** Segments fetched ahead of the one being read: hides a GET's latency, costs a segment of memory each. */
const MANIFEST_READ_AHEAD = 2;

/** Manifests fetched at once by `listBackups` (each is one GET; S3 latency dominates). */
const LIST_CONCURRENCY = 8;

/**
 * An opened repository: its store, configuration and the keys derived from its target key.
 *
 * Every method that reads or writes the store takes an optional `signal`, handed to each store call it makes:
 * an abort ends the method promptly with the store's `aborted` ObjectStoreError (backup, restore, verify and
 * check report it as their `aborted` EngineError).
 */
export class Repository {
  readonly #volumeIdKey: Uint8Array;
  /** FastCDC's gear table of this target, derived from its key (docs/format.md §4.1). */
  readonly gearTable: GearTable;

  private constructor(
    readonly store: ObjectStore,
    readonly targetKey: Uint8Array,
    readonly keys: TargetKeys,
    readonly config: RepositoryConfig,
  ) {
    this.#volumeIdKey = blake3DeriveKey(VOLUME_ID_CONTEXT, targetKey);
    this.gearTable = gearTableFromBytes(keys.gearTable);
  }

  /**
   * Creates a repository: a random target key, wrapped under the recovery passphrase in `keys/<id>`, then the
   * `config` object. The config is written last, so a repository exists only once it is complete.
   */
  static async init(
    store: ObjectStore,
    options: {
      passphrase: string;
      chunker: ChunkerParams;
      kdf?: KdfParams;
      now?: Date;
      signal?: AbortSignal;
    },
  ): Promise<Repository> {
    const call: OperationOptions = { signal: options.signal };
    if (await store.head(CONFIG_KEY, call)) {
      throw new EngineError('repository-exists', `a repository already exists at ${store.location}`);
    }
    const targetKey = generateTargetKey();
    const keys = deriveTargetKeys(targetKey);
    const keyFile = await createKeyFile(
      targetKey,
      options.passphrase,
      options.kdf ? { kdfParams: options.kdf } : {},
    );
    await store.put(keyFile.objectKey, keyFile.bytes, call);
    const bytes = encodeConfig(keys, {
      repositoryId: randomUUID(),
      chunker: options.chunker,
      createdAt: options.now ?? new Date(),
    });
    try {
      await store.put(CONFIG_KEY, bytes, { ifNoneMatch: true, ...call });
    } catch (error) {
      // A retried put can find its own earlier write, whose answer was lost: that is success. Anything else
      // already at `config` means another init won the race.
      if (!isObjectStoreError(error, 'precondition-failed')) throw error;
      const existing = await store.get(CONFIG_KEY, undefined, call);
      if (!Buffer.from(existing).equals(Buffer.from(bytes))) {
        throw new EngineError('repository-exists', `a repository already exists at ${store.location}`);
      }
    }
    return new Repository(store, targetKey, keys, decodeConfig(keys, bytes));
  }

  /** Opens a repository with its recovery passphrase: tries each key file until one opens. */
  static async open(
    store: ObjectStore,
    options: { passphrase: string; signal?: AbortSignal },
  ): Promise<Repository> {
    const call: OperationOptions = { signal: options.signal };
    const configBytes = await readConfig(store, call);
    readConfigVersion(configBytes); // a newer format is refused before the passphrase is tried
    let targetKey: Uint8Array | undefined;
    let tried = 0;
    for await (const info of store.list(KEYS_PREFIX, call)) {
      // Each try is one scrypt: a bucket stuffed with key files must not keep a reader busy for hours.
      if (++tried > MAX_KEY_FILES_TRIED) {
        throw new WrongPassphraseError(
          `wrong passphrase for the repository at ${store.location} (gave up after ${MAX_KEY_FILES_TRIED} key files)`,
        );
      }
      try {
        const keyFile = await store.get(info.key, undefined, call);
        targetKey = await openKeyFile(keyFile, options.passphrase, { objectKey: info.key });
        break;
      } catch (error) {
        if (!(error instanceof WrongPassphraseError)) throw error;
      }
    }
    if (!targetKey)
      throw new WrongPassphraseError(`wrong passphrase for the repository at ${store.location}`);
    return Repository.#withKey(store, targetKey, configBytes);
  }

  /**
   * Opens a repository with its target key (as the manager does, holding the key itself). A key that is not
   * this repository's fails with `wrong-key`: the config's MAC is the one place a key is checked before use,
   * and "integrity check failed" would send an operator looking for corruption that is not there.
   */
  static async openWithKey(
    store: ObjectStore,
    targetKey: Uint8Array,
    options: OperationOptions = {},
  ): Promise<Repository> {
    const configBytes = await readConfig(store, options);
    readConfigVersion(configBytes); // a newer format says so, rather than looking like a wrong key
    try {
      return Repository.#withKey(store, targetKey, configBytes);
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      throw new EngineError(
        'wrong-key',
        `the key does not open the repository at ${store.location}: it belongs to another repository ` +
          '(or the repository config was altered)',
        { cause: error },
      );
    }
  }

  static #withKey(store: ObjectStore, targetKey: Uint8Array, configBytes: Uint8Array): Repository {
    const keys = deriveTargetKeys(targetKey);
    return new Repository(store, targetKey, keys, decodeConfig(keys, configBytes));
  }

  /**
   * The volume id a standalone backup uses for a volume name: a UUID made from a keyed hash of the name, so
   * the same name always maps to the same id and the bucket never shows the name itself. The name is taken in
   * Unicode NFC, as manifests record it: two spellings of "é" are one volume.
   */
  volumeIdFor(name: string): string {
    const h = blake3Keyed(this.#volumeIdKey, new TextEncoder().encode(name.normalize('NFC')), 16);
    h[6] = (h[6]! & 0x0f) | 0x80; // version 8: custom
    h[8] = (h[8]! & 0x3f) | 0x80; // RFC 4122 variant
    const hex = Buffer.from(h).toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** A manifest's root object (its segments must be stored before it is). */
  encodeManifest(manifest: Manifest): Uint8Array {
    return encodeManifest(this.keys, manifest);
  }

  /**
   * A backup's manifest root: small whatever the backup (32 bytes per segment). Its entries are read with
   * `readManifestSegments`. Throws the format's errors when the root does not decode — among them an
   * `IntegrityError` for a root copied under another backup's or volume's key — and the store's `not-found`
   * when there is none.
   */
  async loadManifest(ref: BackupRef, options: OperationOptions = {}): Promise<Manifest> {
    const bytes = await this.store.get(ref.manifestKey, undefined, options);
    return decodeManifest(this.keys, bytes, {
      volumeId: ref.volumeId,
      backupId: ref.backupId,
      objectKey: ref.manifestKey,
    });
  }

  /**
   * A manifest's entries, one segment at a time, checked as docs/format.md §6.5 says (see the format's
   * `readManifestSegments`). A segment that is missing fails with the store's `not-found`, and one that does
   * not open with an `IntegrityError`, both naming the segment's object and the manifest — unless
   * `tolerateDamage`, which hands such a segment over as `damaged` and goes on (verify and check do, to find
   * everything else that is wrong). Memory: `readAhead` + 1 segments (≈ 5 MiB each at the default size).
   */
  readManifestSegments(
    manifest: Manifest,
    options: {
      /** Gets an object; default `store.get` with `signal` (callers that count the bytes pass their own). */
      get?: (key: string) => Promise<Uint8Array>;
      readAhead?: number;
      tolerateDamage?: boolean;
      signal?: AbortSignal;
    } = {},
  ): AsyncGenerator<ManifestSegment, void, undefined> {
    const manifestKey = manifestObjectKey(manifest.volumeId, manifest.backupId);
    const call: OperationOptions = { signal: options.signal };
    const get = options.get ?? ((key: string) => this.store.get(key, undefined, call));
    return readManifestSegments(this.keys, manifest, {
      manifestKey,
      readAhead: options.readAhead ?? MANIFEST_READ_AHEAD,
      fetch: async (segment) => {
        try {
          return await get(segment.objectKey);
        } catch (error) {
          if (!isObjectStoreError(error, 'not-found')) throw error;
          throw new ObjectStoreError(
            'not-found',
            `segment ${segment.index} of ${manifestKey} is missing: no object ${segment.objectKey}`,
            { op: 'get', key: segment.objectKey, cause: error },
          );
        }
      },
      ...(options.tolerateDamage
        ? { isDamage: (e: unknown) => e instanceof IntegrityError || isObjectStoreError(e, 'not-found') }
        : {}),
    });
  }

  /**
   * All of a manifest's entries in one `ManifestEntries` (80 bytes per entry): for tests and small tools, never
   * for the backup, restore, verify or check paths. Refuses a manifest of more than `maxEntries` (default
   * 2^20, 80 MiB of records).
   */
  async loadManifestEntries(
    from: BackupRef | Manifest,
    options: { maxEntries?: number; signal?: AbortSignal } = {},
  ): Promise<ManifestEntries> {
    const call: OperationOptions = { signal: options.signal };
    const manifest = 'segments' in from ? from : await this.loadManifest(from, call);
    const max = options.maxEntries ?? 1 << 20;
    if (manifest.entryCount > max) {
      throw new RangeError(`the manifest has ${manifest.entryCount} entries, more than the ${max} asked for`);
    }
    const records = new Uint8Array(manifest.entryCount * ENTRY_RECORD_LENGTH);
    let at = 0;
    for await (const segment of this.readManifestSegments(manifest, call)) {
      if (segment.damaged) throw segment.error; // not reached: damage is not tolerated here
      records.set(segment.entries.records, at);
      at += segment.entries.records.length;
    }
    return new ManifestEntries(records, {
      objectKey: manifestObjectKey(manifest.volumeId, manifest.backupId),
    });
  }

  /** Every committed backup (a manifest exists), in key order. */
  async *backupRefs(options: OperationOptions = {}): AsyncIterable<BackupRef> {
    for await (const info of this.store.list(MANIFESTS_PREFIX, options)) {
      const parts = info.key.slice(MANIFESTS_PREFIX.length).split('/');
      if (parts.length !== 2) continue;
      yield { volumeId: parts[0]!, backupId: parts[1]!, manifestKey: info.key };
    }
  }

  /** Bucket key of a backup's damage record (docs/format.md §12): `damage/<volume-id>/<backup-id>`. */
  damageRecordKey(ref: Pick<BackupRef, 'volumeId' | 'backupId'>): string {
    return damageRecordObjectKey(ref.volumeId, ref.backupId);
  }

  /**
   * The backup's damage record, or undefined when it has none. A record that exists but does not decode
   * throws its `StowageFormatError`: callers must treat that backup as damaged in unknown chunks.
   */
  async readDamageRecord(
    ref: Pick<BackupRef, 'volumeId' | 'backupId'>,
    options: OperationOptions = {},
  ): Promise<DamageRecord | undefined> {
    const objectKey = this.damageRecordKey(ref);
    let bytes: Uint8Array;
    try {
      bytes = await this.store.get(objectKey, undefined, options);
    } catch (error) {
      if (isObjectStoreError(error, 'not-found')) return undefined;
      throw error;
    }
    return decodeDamageRecord(this.keys, bytes, {
      volumeId: ref.volumeId,
      backupId: ref.backupId,
      objectKey,
    });
  }

  /**
   * Replaces the backup's damage record with one listing `chunks` (use `deleteDamageRecord` for none). Plain
   * put, last writer wins: records are read-modify-write without a lock (docs/format.md §12.5).
   */
  async writeDamageRecord(
    ref: Pick<BackupRef, 'volumeId' | 'backupId'>,
    chunks: DamagedChunks,
    updatedAt: Date = new Date(),
    options: OperationOptions = {},
  ): Promise<void> {
    const bytes = encodeDamageRecord(this.keys, {
      volumeId: ref.volumeId,
      backupId: ref.backupId,
      updatedAt,
      chunks,
    });
    await this.store.put(this.damageRecordKey(ref), bytes, options);
  }

  /** Removes the backup's damage record; idempotent. */
  async deleteDamageRecord(
    ref: Pick<BackupRef, 'volumeId' | 'backupId'>,
    options: OperationOptions = {},
  ): Promise<void> {
    await this.store.delete(this.damageRecordKey(ref), options);
  }

  /** The backups that have a damage record, in key order (their manifests may be gone: check before use). */
  async *damageRecordRefs(options: OperationOptions = {}): AsyncIterable<BackupRef & { damageKey: string }> {
    for await (const info of this.store.list(DAMAGE_RECORD_PREFIX, options)) {
      const ids = parseDamageRecordObjectKey(info.key);
      if (ids === undefined) continue;
      yield {
        ...ids,
        manifestKey: `${MANIFESTS_PREFIX}${ids.volumeId}/${ids.backupId}`,
        damageKey: info.key,
      };
    }
  }

  /**
   * Every damage record of the repository, merged: which backups are marked damaged and the problem of each
   * chunk id any record lists. One LIST and one GET per record; memory is bounded (see `RepositoryDamage`).
   */
  listDamage(options: OperationOptions = {}): Promise<RepositoryDamage> {
    return RepositoryDamage.load(this, options);
  }

  /**
   * Every committed backup, oldest first; only the manifests' roots are read. A manifest that does not decode
   * is reported in `damaged` and the listing goes on: one bad object must not hide every other backup from
   * someone recovering. One deleted while the listing runs (a prune) is left out; a storage failure fails the
   * listing.
   */
  async listBackups(options: OperationOptions = {}): Promise<BackupListing> {
    // Its own signal for the store: eight manifests in flight would pass Node's listener limit on the caller's.
    const cancel = jobSignal(options.signal);
    try {
      return await this.#listBackups({ signal: cancel.signal });
    } finally {
      cancel.close();
    }
  }

  async #listBackups(call: OperationOptions): Promise<BackupListing> {
    const listing: BackupListing = { backups: [], damaged: [] };
    const refs: BackupRef[] = [];
    for await (const ref of this.backupRefs(call)) refs.push(ref);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      // After a storage failure the others stop too: the listing has failed, nothing more is worth fetching.
      while (!failed && next < refs.length) {
        const ref = refs[next++]!;
        try {
          const m = await this.loadManifest(ref, call);
          listing.backups.push({
            ...ref,
            volumeName: m.volumeName,
            volumeSize: m.volumeSize,
            createdAt: m.createdAt.toISOString(),
            chunks: m.chunkCount,
          });
        } catch (error) {
          if (error instanceof StowageFormatError) listing.damaged.push({ ref, error });
          else if (!isObjectStoreError(error, 'not-found')) {
            failed = true;
            throw error;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, refs.length) }, worker));
    listing.backups.sort(
      (a, b) => a.createdAt.localeCompare(b.createdAt) || a.manifestKey.localeCompare(b.manifestKey),
    );
    listing.damaged.sort((a, b) => a.ref.manifestKey.localeCompare(b.ref.manifestKey));
    return listing;
  }

  /** Finds a backup by its id or a unique prefix of it. */
  async resolveBackup(idOrPrefix: string, options: OperationOptions = {}): Promise<BackupRef> {
    const wanted = idOrPrefix.toLowerCase();
    if (!/^[0-9a-f-]{4,36}$/.test(wanted)) {
      throw new EngineError('invalid-argument', `"${idOrPrefix}" is not a backup id (at least 4 hex digits)`);
    }
    const matches: BackupRef[] = [];
    for await (const ref of this.backupRefs(options)) if (ref.backupId.startsWith(wanted)) matches.push(ref);
    if (matches.length === 0)
      throw new EngineError('backup-not-found', `no backup ${idOrPrefix} in ${this.store.location}`);
    if (matches.length > 1) {
      throw new EngineError(
        'ambiguous-backup-id',
        `${idOrPrefix} matches ${matches.length} backups; give more of the id`,
      );
    }
    return matches[0]!;
  }
}

async function readConfig(store: ObjectStore, call: OperationOptions): Promise<Uint8Array> {
  try {
    return await store.get(CONFIG_KEY, undefined, call);
  } catch (error) {
    if (isObjectStoreError(error, 'not-found')) {
      throw new EngineError(
        'repository-not-found',
        `no repository at ${store.location} (run "agent repo init")`,
      );
    }
    throw error;
  }
}
