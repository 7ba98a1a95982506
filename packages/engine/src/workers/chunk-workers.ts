import { defaultWorkerCount, WorkerPool } from './pool.js';
import { reviveFormatError } from './revive-error.js';

const script = new URL(
  import.meta.url.endsWith('.ts') ? './chunk-worker.ts' : './chunk-worker.js',
  import.meta.url,
);

/** Typed front of the worker pool that does the per-chunk CPU work for one repository key. */
export class ChunkWorkers {
  readonly #pool: WorkerPool;
  /** Buffers every thread holds (`attach`), and the numbers requests name them by. */
  readonly #attached = new Map<SharedArrayBuffer, number>();
  #nextHandle = 1;

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

  /**
   * Hands every thread `buffer` once; requests about it then carry a number instead (cloning a
   * SharedArrayBuffer into each message cost the sending thread ~0.1 ms a message, measured). Until `detach`,
   * the threads keep the buffer alive.
   */
  async attach(buffer: SharedArrayBuffer): Promise<void> {
    if (this.#attached.has(buffer)) return;
    const handle = this.#nextHandle++;
    this.#attached.set(buffer, handle);
    await this.#pool.broadcast('attach', { handle, buffer });
  }

  /** Lets the threads drop `buffer`: after every request about it sent before this (each thread answers in order). */
  async detach(buffer: SharedArrayBuffer): Promise<void> {
    const handle = this.#attached.get(buffer);
    if (handle === undefined) return;
    this.#attached.delete(buffer);
    await this.#pool.broadcast('detach', { handle });
  }

  /** Buffers attached and not yet detached (a backup attaches one and detaches it however it ends). */
  get attachedBuffers(): number {
    return this.#attached.size;
  }

  #ref(block: SharedArrayBuffer): SharedArrayBuffer | number {
    return this.#attached.get(block) ?? block;
  }

  /**
   * Keyed chunk ids of slices of a shared block, no id for a slice that is all zeros (a hole). One request
   * per thread, not one per slice: the slices are split into contiguous runs of about equal bytes. One
   * promise per slice, in order; a run that fails rejects the promises of all its slices.
   */
  identifyAll(
    block: SharedArrayBuffer,
    slices: ReadonlyArray<{ offset: number; length: number }>,
  ): Array<Promise<{ id?: Uint8Array }>> {
    const ref = this.#ref(block);
    const total = slices.reduce((sum, s) => sum + s.length, 0);
    const share = total / this.#pool.size;
    const results: Array<Promise<{ id?: Uint8Array }>> = [];
    let first = 0;
    let bytes = 0;
    for (let i = 0; i < slices.length; i++) {
      bytes += slices[i]!.length;
      const last = i === slices.length - 1;
      if (!last && bytes < share) continue;
      const run = slices.slice(first, i + 1);
      const answer = this.#pool.run<Array<Uint8Array | null>>('ids', {
        block: ref,
        slices: run.flatMap((s) => [s.offset, s.length]),
      });
      for (let k = 0; k < run.length; k++) {
        const result = answer.then((ids) => {
          const id = ids[k];
          return id ? { id } : {};
        });
        // A caller that stops at the first failure never awaits the rest: theirs must not go unhandled.
        result.catch(() => {});
        results.push(result);
      }
      first = i + 1;
      bytes = 0;
    }
    return results;
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
    return this.#pool.run('seal', { block: this.#ref(block), offset, length, chunkId, out }, [out]);
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
