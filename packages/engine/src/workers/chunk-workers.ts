import { defaultWorkerCount, WorkerPool } from './pool.js';
import { reviveFormatError } from './revive-error.js';

const script = new URL(
  import.meta.url.endsWith('.ts') ? './chunk-worker.ts' : './chunk-worker.js',
  import.meta.url,
);

/** Typed front of the worker pool that does the per-chunk CPU work for one repository key. */
export class ChunkWorkers {
  readonly #pool: WorkerPool;

  /**
   * Starts the threads. `targetKey` may be left out to start them early (thread start-up overlaps with
   * opening the repository); then `useKey` must be called before any chunk work.
   */
  constructor(targetKey?: Uint8Array, options: { threads?: number } = {}) {
    this.#pool = new WorkerPool({
      script,
      workerData: targetKey ? { targetKey } : {},
      size: options.threads ?? defaultWorkerCount(),
      reviveError: reviveFormatError,
    });
  }

  /** Gives every thread the repository's target key; work sent after this call uses it. */
  useKey(targetKey: Uint8Array): Promise<void> {
    return this.#pool.broadcast('init', { targetKey });
  }

  get threads(): number {
    return this.#pool.size;
  }

  /** Keyed chunk id of a slice of a shared block, or no id when the slice is all zeros (a hole). */
  identify(block: SharedArrayBuffer, offset: number, length: number): Promise<{ id?: Uint8Array }> {
    return this.#pool.run('id', { block, offset, length });
  }

  /**
   * Seals a slice of a shared block into its chunk object (compressed where it helps, encrypted), written at
   * the start of `out`, which moves to the worker and back: the result's `out` is the same memory.
   */
  seal(
    block: SharedArrayBuffer,
    offset: number,
    length: number,
    chunkId: Uint8Array,
    out: ArrayBuffer,
  ): Promise<{ out: ArrayBuffer; length: number; padding: number }> {
    return this.#pool.run('seal', { block, offset, length, chunkId, out }, [out]);
  }

  /**
   * Authenticates, decrypts, decompresses and re-hashes a chunk object; throws IntegrityError on mismatch,
   * naming the object `name` (default `chunks/<hh>/<id>`; a packed chunk's pack and range).
   */
  check(object: Uint8Array, chunkId: Uint8Array, length: number, name?: string): Promise<void> {
    const [payload, transfer] = movable(object);
    return this.#pool.run('open', { object: payload, chunkId, length, name }, transfer);
  }

  /** As `check`, then writes the plaintext to `fd` at `position` from the worker thread. */
  restoreTo(
    object: Uint8Array,
    chunkId: Uint8Array,
    length: number,
    fd: number,
    position: number,
    name?: string,
  ): Promise<void> {
    const [payload, transfer] = movable(object);
    return this.#pool.run('open-write', { object: payload, chunkId, length, fd, position, name }, transfer);
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
