import type { Manifest, ManifestSegment, PackLocation } from '@stowage/format';
import { isObjectStoreError, type OperationOptions } from '@stowage/object-store';
import { ChunkLocations } from './chunk-locations.js';
import type { RepositoryDamage } from './damage.js';
import { MANIFESTS_PREFIX, type Repository } from './repository.js';

/** Chunks of the previous manifest held at once: 2^18 (256 GiB of volume at 1 MiB), about 14 MiB. */
export const DEFAULT_WINDOW_CHUNKS = 1 << 18;

/**
 * The chunks of the volume's latest committed manifest and where they are stored, so that a backup stores
 * again only what changed, with no request per chunk. By the GC invariant nothing a committed manifest names
 * is deleted, so its locations are as good as a lookup, for as long as no verify or check found otherwise
 * (a manifest with a damage record is not used at all, and chunks any record lists are never taken from it).
 *
 * Memory is bounded whatever the volume: segments are read ahead of the backup until `windowChunks` chunks
 * are held (a manifest that small is held whole), and past that the segments wholly behind what the backup
 * has recorded (`passed`) are let go — a chunk that moved further than the window is stored again. A manifest
 * that cannot be read stops being used from that point; the backup does not fail for it.
 */
export class PreviousManifest {
  readonly #segments: AsyncGenerator<ManifestSegment, void, undefined>;
  readonly #segmentIds: ReadonlySet<string>;
  /** Loaded segments in volume order: [start, end) and their chunks. */
  readonly #window: Array<{ start: number; end: number; chunks: ChunkLocations }> = [];
  #held = 0;
  /** Every chunk before this volume offset has been located (the backup says so as it records entries). */
  #lowWater = 0;
  #done = false;
  #loading: Promise<void> = Promise.resolve();

  private constructor(
    readonly manifestKey: string,
    root: Manifest,
    repository: Repository,
    call: OperationOptions,
    private readonly committed: ReadonlySet<string>,
    private readonly windowChunks: number,
  ) {
    this.#segments = repository.readManifestSegments(root, call);
    const ids = new Set<string>();
    for (let at = 0; at < root.segments.length; at += 32)
      ids.add(Buffer.from(root.segments.subarray(at, at + 32)).toString('hex'));
    this.#segmentIds = ids;
  }

  /** Undefined when the volume has no manifest, or its latest one is marked damaged or does not decode. */
  static async load(
    repository: Repository,
    volumeId: string,
    damage: RepositoryDamage,
    call: OperationOptions,
    windowChunks = DEFAULT_WINDOW_CHUNKS,
  ): Promise<PreviousManifest | undefined> {
    let latest: { key: string; at: number } | undefined;
    const committed = new Set<string>();
    for await (const info of repository.store.list(`${MANIFESTS_PREFIX}${volumeId}/`, call)) {
      const at = info.lastModified?.getTime() ?? 0;
      committed.add(info.key.slice(info.key.lastIndexOf('/') + 1));
      if (latest === undefined || at > latest.at) latest = { key: info.key, at };
    }
    if (latest === undefined || damage.isMarked(latest.key)) return undefined;
    try {
      const backupId = latest.key.slice(latest.key.lastIndexOf('/') + 1);
      const root = await repository.loadManifest({ volumeId, backupId, manifestKey: latest.key }, call);
      return new PreviousManifest(latest.key, root, repository, call, committed, windowChunks);
    } catch (error) {
      if (isObjectStoreError(error, 'aborted')) throw error; // the backup's cancel, not the manifest's fault
      return undefined; // a damaged or unreadable manifest is verify's business; the chunks get stored again
    }
  }

  /** Whether the volume had a committed backup of this id when the backup began. */
  isCommitted(backupId: string): boolean {
    return this.committed.has(backupId);
  }

  /** Whether the manifest's root names this segment. */
  hasSegment(id: Uint8Array): boolean {
    return this.#segmentIds.has(Buffer.from(id).toString('hex'));
  }

  /** Where the chunk `id`, found at `offset` in the volume now, is stored, if the manifest names it nearby. */
  async find(id: Uint8Array, offset: number): Promise<PackLocation | undefined> {
    await this.#reach(offset);
    for (const segment of this.#window) {
      const location = segment.chunks.get(id);
      if (location) return location;
    }
    return undefined;
  }

  /**
   * The backup has located every chunk before `offset`: segments wholly behind it may go once the window is
   * full. (Not the offset of the latest lookup: lookups run out of order, and an earlier chunk may still ask.)
   */
  passed(offset: number): void {
    this.#lowWater = Math.max(this.#lowWater, offset);
    this.#trim();
  }

  #trim(): void {
    // The newest segment always stays.
    while (
      this.#held > this.windowChunks &&
      this.#window.length > 1 &&
      this.#window[0]!.end <= this.#lowWater
    ) {
      this.#held -= this.#window.shift()!.chunks.size;
    }
  }

  /**
   * Reads segments until one starts past `offset` and the window is full: the window reaches ahead as far as
   * it can, for chunks that moved towards the start of the volume.
   */
  #reach(offset: number): Promise<void> {
    const covered = () => {
      const last = this.#window.at(-1);
      return this.#done || (last !== undefined && last.start > offset && this.#held >= this.windowChunks);
    };
    if (covered()) return this.#loading;
    this.#loading = this.#loading.then(async () => {
      while (!covered()) await this.#loadNext();
    });
    return this.#loading;
  }

  async #loadNext(): Promise<void> {
    let next: IteratorResult<ManifestSegment, void>;
    try {
      next = await this.#segments.next();
    } catch (error) {
      if (isObjectStoreError(error, 'aborted')) throw error;
      this.#done = true; // unreadable from here: what is left of it is not used
      return;
    }
    if (next.done || next.value.damaged || next.value.offset === undefined) {
      this.#done = true;
      return;
    }
    const { entries } = next.value;
    const chunks = new ChunkLocations(Math.max(1, entries.chunkCount));
    for (let i = 0; i < entries.count; i++) {
      if (entries.isChunkAt(i)) chunks.add(entries.idAt(i), entries.locationAt(i));
    }
    this.#window.push({ start: entries.offset, end: entries.offset + entries.totalLength, chunks });
    this.#held += chunks.size;
    this.#trim();
  }
}
