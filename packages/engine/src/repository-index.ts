import {
  decodePackIndex,
  PACK_INDEX_PREFIX,
  type PackIndexEntries,
  type PackLocation,
  packObjectKey,
  parsePackIndexObjectKey,
} from '@stowage/format';
import { isObjectStoreError, type OperationOptions } from '@stowage/object-store';
import { ChunkLocations } from './chunk-locations.js';
import type { Repository } from './repository.js';

/** Chunks of the repository's index held by one backup at most: 2^19 (512 GiB stored), about 26 MiB. */
export const MAX_INDEX_CHUNKS = 1 << 19;
/** Index objects fetched at once (each is one GET; S3 latency dominates). */
const FETCH_CONCURRENCY = 8;

/** Which index objects to read: all, or one volume's, less the backups `skip` says. */
export interface IndexScope {
  volumeId?: string;
  skip?: (backupId: string) => boolean;
}

/** What loading the index found, for the backup's summary. */
export interface IndexLoad {
  /** Index objects read. */
  objects: number;
  /** Chunks they named (repeats counted once). */
  chunks: number;
  /** Index objects that did not decode (skipped: an index is a hint, never needed to restore). */
  unreadable: number;
  /** True when the repository knows more chunks than fit, so some were left out (newest objects first). */
  truncated: boolean;
}

/**
 * The repository's index objects (`index/…`, docs/format.md §5.3) read into one map: where every chunk some
 * backup stored lies, for the chunks a backup does not find in its volume's previous manifest — a cloned
 * volume's first backup, data copied between volumes, or a backup resumed after a crash. Newest objects are
 * read first, so when the map is full (`MAX_INDEX_CHUNKS`) what is left out is the oldest; a chunk it does not
 * know is only stored again.
 */
export async function loadRepositoryIndex(
  repository: Repository,
  call: OperationOptions,
  scope: IndexScope = {},
  capacity = MAX_INDEX_CHUNKS,
): Promise<{ locations: ChunkLocations; load: IndexLoad }> {
  const locations = new ChunkLocations(capacity);
  const load: IndexLoad = { objects: 0, chunks: 0, unreadable: 0, truncated: false };
  for await (const read of readIndexObjects(repository, call, scope)) {
    // Another object to read with the map full: what it names is left out (breaking ends the reads).
    if (locations.full) load.truncated = true;
    if (load.truncated) break;
    if (read.entries === undefined) {
      if (read.unreadable) load.unreadable++;
      continue;
    }
    load.objects++;
    const { entries } = read;
    for (let e = 0; e < entries.count && !load.truncated; e++) {
      if (!locations.add(entries.idAt(e), entries.locationAt(e))) load.truncated = true;
    }
  }
  load.chunks = locations.size;
  return { locations, load };
}

/**
 * The index objects in `scope`, newest first (by last-modified time), each decoded — or, for one gone since
 * the listing or that does not decode, no entries (`unreadable` for the second): an index is a hint, never
 * worth failing for. Fetched up to FETCH_CONCURRENCY ahead but handed over strictly in order, so a chunk
 * stored twice (a repair's new copy beside the copy a lost pack held) is met at its newer location first,
 * whatever answer comes back first. Only an abort ends it with an error.
 */
export async function* readIndexObjects(
  repository: Repository,
  call: OperationOptions,
  scope: IndexScope = {},
): AsyncGenerator<{ key: string; entries?: PackIndexEntries; unreadable?: boolean }, void, undefined> {
  const keys: { key: string; at: number }[] = [];
  const prefix = scope.volumeId === undefined ? PACK_INDEX_PREFIX : `${PACK_INDEX_PREFIX}${scope.volumeId}/`;
  for await (const info of repository.store.list(prefix, call)) {
    const parsed = parsePackIndexObjectKey(info.key);
    if (!parsed || scope.skip?.(parsed.backupId)) continue;
    keys.push({ key: info.key, at: info.lastModified?.getTime() ?? 0 });
  }
  keys.sort((a, b) => b.at - a.at);
  type Fetched = { bytes?: Uint8Array; unreadable: boolean };
  const fetches: Array<Promise<Fetched>> = [];
  const fetch = (i: number) => {
    const p = repository.store.get(keys[i]!.key, undefined, call).then(
      (bytes): Fetched => ({ bytes, unreadable: false }),
      (error: unknown): Fetched => {
        if (isObjectStoreError(error, 'aborted')) throw error;
        return { unreadable: !isObjectStoreError(error, 'not-found') };
      },
    );
    p.catch(() => {}); // awaited in order below; this only keeps a rejection from going unhandled
    fetches[i] = p;
  };
  try {
    for (let i = 0; i < Math.min(FETCH_CONCURRENCY, keys.length); i++) fetch(i);
    for (let i = 0; i < keys.length; i++) {
      if (i + FETCH_CONCURRENCY < keys.length) fetch(i + FETCH_CONCURRENCY);
      const { key } = keys[i]!;
      const { bytes, unreadable } = await fetches[i]!;
      fetches[i] = Promise.resolve({ unreadable: false }); // let the object go
      if (bytes === undefined) {
        yield { key, unreadable };
        continue;
      }
      let entries: PackIndexEntries;
      try {
        entries = decodePackIndex(repository.keys, key, bytes);
      } catch {
        yield { key, unreadable: true };
        continue;
      }
      yield { key, entries };
    }
  } finally {
    // Requests started ahead of a reader that stopped early are left to settle, not left unhandled.
    await Promise.allSettled(fetches);
  }
}

/** The index, loaded the first time a backup needs it (most backups find everything in their previous one). */
export class LazyIndex {
  #loaded: Promise<{ locations: ChunkLocations; load: IndexLoad }> | undefined;

  constructor(
    private readonly repository: Repository,
    private readonly call: OperationOptions,
    private readonly scope: IndexScope = {},
  ) {}

  /**
   * Where the index says `id` is, once its pack is confirmed to exist (one HEAD per distinct pack, cached): an
   * index object outlives a pack lost behind Stowage's back, and a location in a lost pack must not go into a
   * new manifest. (A manifest's own locations need no such check: the previous manifest is trusted only while
   * no damage record says otherwise.)
   */
  async find(id: Uint8Array): Promise<PackLocation | undefined> {
    this.#loaded ??= loadRepositoryIndex(this.repository, this.call, this.scope);
    const location = (await this.#loaded).locations.get(id);
    if (!location) return undefined;
    const key = packObjectKey(location.pack);
    let exists = this.#packs.get(key);
    if (!exists) {
      exists = this.repository.store.head(key, this.call).then((info) => info !== undefined);
      this.#packs.set(key, exists);
    }
    return (await exists) ? location : undefined;
  }

  readonly #packs = new Map<string, Promise<boolean>>();

  /** What was loaded, or undefined when the index was never needed. */
  async summary(): Promise<IndexLoad | undefined> {
    return this.#loaded === undefined ? undefined : (await this.#loaded).load;
  }
}
