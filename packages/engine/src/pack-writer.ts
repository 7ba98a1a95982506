import {
  CHUNK_ID_LENGTH,
  DEFAULT_PACK_TARGET,
  encodePackIndex,
  newPackId,
  PACK_INDEX_ENTRY_LENGTH,
  PackIndexEntries,
  type PackLocation,
  packIndexObjectKey,
  packObjectKey,
  type TargetKeys,
  writeLocation,
} from '@stowage/format';
import type { ObjectStore, OperationOptions } from '@stowage/object-store';

export interface PackWriterOptions {
  store: ObjectStore;
  keys: TargetKeys;
  volumeId: string;
  backupId: string;
  /** Largest chunk object that will be appended (sizes the buffers). */
  maxObjectLength: number;
  /** A pack is closed before an object would take it past this many bytes (default 8 MiB). */
  target?: number;
  /** Pack buffers: one filling, the rest uploading (default 3). They bound the writer's memory. */
  buffers?: number;
  /** Packs named by one index object (default 64: one index PUT per ~512 MiB stored). */
  packsPerIndex?: number;
  call: OperationOptions;
}

interface OpenPack {
  buffer: Uint8Array;
  id: Uint8Array;
  used: number;
  /** Index entries of the chunks in it: chunk id ‖ location. */
  entries: Uint8Array;
  count: number;
}

/**
 * Appends a backup's new chunk objects into packs (docs/format.md §5) and stores them, one PUT per pack, with
 * `deferred` durability like the chunks they hold (the backup's flush makes them durable before its root).
 * Every `packsPerIndex` stored packs, and at `finish`, an index object names the chunks of the packs stored
 * since the last one — written only after those packs are, so an index never names a pack that was not stored,
 * and a crashed backup leaves index objects that let its re-run skip what it had stored.
 */
export class PackWriter {
  readonly #o: Required<Omit<PackWriterOptions, 'call'>> & { call: OperationOptions };
  readonly #free: Uint8Array[] = [];
  readonly #waiting: Array<(b: Uint8Array) => void> = [];
  readonly #uploads = new Set<Promise<void>>();
  #open: OpenPack | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #failure: unknown;
  #indexed: Uint8Array = new Uint8Array(0);
  #indexedCount = 0;
  #packsSinceIndex = 0;
  readonly stats = { packs: 0, packBytes: 0, indexObjects: 0, indexBytes: 0 };

  constructor(options: PackWriterOptions) {
    this.#o = {
      target: DEFAULT_PACK_TARGET,
      buffers: 3,
      packsPerIndex: 64,
      ...options,
    };
    const size = Math.max(this.#o.target, options.maxObjectLength);
    for (let i = 0; i < Math.max(2, this.#o.buffers); i++) this.#free.push(new Uint8Array(size));
  }

  /**
   * Appends one chunk object (copied: the caller's buffer is free when this resolves) and returns where it
   * will be. Waits while every buffer is uploading; throws once an upload has failed.
   */
  append(id: Uint8Array, object: Uint8Array): Promise<PackLocation> {
    const step = this.#chain.then(() => this.#append(id, object));
    this.#chain = step.catch(() => {});
    return step;
  }

  /** Stores the last pack and the last index object; resolves when everything appended is stored. */
  async finish(): Promise<void> {
    await this.#chain;
    this.#throwIfFailed();
    if (this.#open && this.#open.used > 0) this.#close();
    await this.#settle();
    this.#throwIfFailed();
    if (this.#indexedCount > 0) await this.#writeIndex();
  }

  /** Waits for every upload to settle (after a failure, so no buffer is still being read). */
  async #settle(): Promise<void> {
    while (this.#uploads.size > 0) await Promise.allSettled([...this.#uploads]);
  }

  /** Settles everything in flight; for the backup's failure path. */
  async abandon(): Promise<void> {
    await this.#chain;
    await this.#settle();
  }

  async #append(id: Uint8Array, object: Uint8Array): Promise<PackLocation> {
    this.#throwIfFailed();
    if (this.#open && this.#open.used > 0 && this.#open.used + object.length > this.#o.target) this.#close();
    if (!this.#open) {
      const buffer = await this.#acquire();
      this.#throwIfFailed();
      this.#open = { buffer, id: newPackId(), used: 0, entries: new Uint8Array(0), count: 0 };
    }
    const pack = this.#open;
    if (object.length > pack.buffer.length) throw new RangeError('chunk object larger than a pack buffer');
    const location: PackLocation = { pack: pack.id, offset: pack.used, length: object.length };
    pack.buffer.set(object, pack.used);
    pack.used += object.length;
    pack.entries = grow(pack.entries, (pack.count + 1) * PACK_INDEX_ENTRY_LENGTH);
    pack.entries.set(id, pack.count * PACK_INDEX_ENTRY_LENGTH);
    writeLocation(pack.entries, pack.count * PACK_INDEX_ENTRY_LENGTH + CHUNK_ID_LENGTH, location);
    pack.count++;
    return location;
  }

  #close(): void {
    const pack = this.#open!;
    this.#open = undefined;
    const upload = (async () => {
      try {
        await this.#o.store.put(packObjectKey(pack.id), pack.buffer.subarray(0, pack.used), {
          durability: 'deferred',
          ...this.#o.call,
        });
        this.stats.packs++;
        this.stats.packBytes += pack.used;
        this.#indexed = grow(this.#indexed, (this.#indexedCount + pack.count) * PACK_INDEX_ENTRY_LENGTH);
        this.#indexed.set(
          pack.entries.subarray(0, pack.count * PACK_INDEX_ENTRY_LENGTH),
          this.#indexedCount * PACK_INDEX_ENTRY_LENGTH,
        );
        this.#indexedCount += pack.count;
        // Every `packsPerIndex` packs, or sooner when tiny (very compressible) chunks would make the object
        // large: an index object must stay far under the format's 64 MiB (§5.3).
        if (++this.#packsSinceIndex >= this.#o.packsPerIndex || this.#indexedCount >= MAX_INDEX_ENTRIES)
          await this.#writeIndex();
      } catch (error) {
        this.#failure ??= error;
      } finally {
        // Once the put has settled, even aborted, the store reads the buffer no more.
        this.#release(pack.buffer);
      }
    })();
    this.#uploads.add(upload);
    void upload.finally(() => this.#uploads.delete(upload));
  }

  async #writeIndex(): Promise<void> {
    const records = this.#indexed.slice(0, this.#indexedCount * PACK_INDEX_ENTRY_LENGTH);
    this.#indexedCount = 0;
    this.#packsSinceIndex = 0;
    const key = packIndexObjectKey(this.#o.volumeId, this.#o.backupId);
    const object = encodePackIndex(this.#o.keys, key, new PackIndexEntries(records));
    // The packs it names durable first (format §5.3): after a crash an index object never names a pack whose
    // name was lost, which a re-run would otherwise take as stored and commit a manifest naming.
    await this.#o.store.flush?.();
    await this.#o.store.put(key, object, { durability: 'deferred', ...this.#o.call });
    this.stats.indexObjects++;
    this.stats.indexBytes += object.length;
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  #acquire(): Promise<Uint8Array> {
    const b = this.#free.pop();
    return b ? Promise.resolve(b) : new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(b: Uint8Array): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter(b);
    else this.#free.push(b);
  }
}

/** Entries one index object holds at most: 18 MiB of them, a quarter of what a reader accepts. */
const MAX_INDEX_ENTRIES = 1 << 18;

function grow(bytes: Uint8Array, need: number): Uint8Array {
  if (need <= bytes.length) return bytes;
  const grown = new Uint8Array(Math.max(need, bytes.length * 2, 1024));
  grown.set(bytes);
  return grown;
}
