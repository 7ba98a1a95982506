import type { PackLocation } from '@stowage/format';
import { ChunkLocations } from './chunk-locations.js';

/**
 * Where this backup's chunks were stored or found, to dedup repeats within it: two generations, the older
 * dropped when the newer fills, so memory stays flat on huge volumes (a repeat further back is found in the
 * previous manifest or the index, or stored again).
 */
export class RecentLocations {
  static readonly GENERATION = 1 << 16;
  #current = new ChunkLocations(RecentLocations.GENERATION);
  #older: ChunkLocations | undefined;

  get(id: Uint8Array): PackLocation | undefined {
    return this.#current.get(id) ?? this.#older?.get(id);
  }

  add(id: Uint8Array, location: PackLocation): void {
    if (this.#current.full) {
      this.#older = this.#current;
      this.#current = new ChunkLocations(RecentLocations.GENERATION);
    }
    this.#current.add(id, location);
  }
}
