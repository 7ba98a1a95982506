import { defaultWorkerCount, WorkerPool } from './pool.js';
import { reviveFormatError } from './revive-error.js';

const script = new URL(
  import.meta.url.endsWith('.ts') ? './chunk-worker.ts' : './chunk-worker.js',
  import.meta.url,
);

/** Typed front of the worker pool that does the per-chunk CPU work for one repository key. */
export class ChunkWorkers {
  readonly #pool: WorkerPool;

  constructor(targetKey: Uint8Array, options: { threads?: number } = {}) {
    this.#pool = new WorkerPool({
      script,
      workerData: { targetKey },
      size: options.threads ?? defaultWorkerCount(),
      reviveError: reviveFormatError,
    });
  }

  get threads(): number {
    return this.#pool.size;
  }

  /** Keyed chunk id of a slice of a shared block, or no id when the slice is all zeros (a hole). */
  identify(block: SharedArrayBuffer, offset: number, length: number): Promise<{ id?: Uint8Array }> {
    return this.#pool.run('id', { block, offset, length });
  }

  /** The chunk object (compressed where it helps, encrypted) for a slice of a shared block. */
  async seal(
    block: SharedArrayBuffer,
    offset: number,
    length: number,
    chunkId: Uint8Array,
  ): Promise<Uint8Array> {
    const r = await this.#pool.run<{ object: Uint8Array }>('seal', { block, offset, length, chunkId });
    return r.object;
  }

  /** Authenticates, decrypts, decompresses and re-hashes a chunk object; throws IntegrityError on mismatch. */
  check(object: Uint8Array, chunkId: Uint8Array, length: number): Promise<void> {
    const [payload, transfer] = movable(object);
    return this.#pool.run('open', { object: payload, chunkId, length }, transfer);
  }

  /** As `check`, then writes the plaintext to `fd` at `position` from the worker thread. */
  restoreTo(
    object: Uint8Array,
    chunkId: Uint8Array,
    length: number,
    fd: number,
    position: number,
  ): Promise<void> {
    const [payload, transfer] = movable(object);
    return this.#pool.run('open-write', { object: payload, chunkId, length, fd, position }, transfer);
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

/** Transfers a buffer the view owns whole; anything else is copied by structured clone. */
function movable(view: Uint8Array): [Uint8Array, ArrayBuffer[]] {
  const owns = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength;
  if (owns && view.buffer instanceof ArrayBuffer) return [view, [view.buffer]];
  return [view, []];
}
