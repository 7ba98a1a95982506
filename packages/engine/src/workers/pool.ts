import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** A request to a pool worker; `transfer` lists buffers whose ownership moves to the worker. */
interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  inFlight: number;
}

export interface WorkerPoolOptions {
  /** Worker script; a `.ts` file is started through tsx (tests and development), a `.js` file directly. */
  script: URL;
  /** Passed to every worker as `workerData`. */
  workerData?: unknown;
  size?: number;
  /** Rebuilds typed errors from the plain data that crosses the thread boundary. */
  reviveError?: (e: SerializedError) => Error | undefined;
}

/** Default worker count: one per core, at least one and at most eight. */
export function defaultWorkerCount(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

/**
 * A fixed set of worker threads answering `{ id, op, ... }` messages with `{ id, ok, value | error }`.
 * Requests go to the least busy worker. A worker that dies fails its pending requests and the pool.
 */
export class WorkerPool {
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, Pending & { slot: Slot }>();
  #nextId = 1;
  #failure: Error | undefined;
  #closed = false;
  readonly #reviveError: (e: SerializedError) => Error | undefined;

  constructor(options: WorkerPoolOptions) {
    this.#reviveError = options.reviveError ?? (() => undefined);
    const size = options.size ?? defaultWorkerCount();
    for (let i = 0; i < size; i++) {
      const worker = startWorker(options.script, options.workerData);
      const slot: Slot = { worker, inFlight: 0 };
      worker.on('message', (msg: { id: number; ok: boolean; value?: unknown; error?: SerializedError }) => {
        const pending = this.#pending.get(msg.id);
        if (!pending) return;
        this.#pending.delete(msg.id);
        slot.inFlight--;
        if (msg.ok) pending.resolve(msg.value);
        else pending.reject(this.#deserializeError(msg.error));
      });
      worker.on('error', (error) => this.#fail(error));
      worker.on('exit', (code) => {
        if (!this.#closed) this.#fail(new Error(`worker thread exited unexpectedly with code ${code}`));
      });
      this.#slots.push(slot);
    }
  }

  get size(): number {
    return this.#slots.length;
  }

  run<T>(op: string, payload: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<T> {
    let slot = this.#slots[0]!;
    for (const s of this.#slots) if (s.inFlight < slot.inFlight) slot = s;
    return this.#send(slot, op, payload, transfer);
  }

  /** Sends one request to every worker; each handles it before anything sent to it later. */
  async broadcast(op: string, payload: Record<string, unknown>): Promise<void> {
    await Promise.all(this.#slots.map((slot) => this.#send(slot, op, payload, [])));
  }

  #send<T>(slot: Slot, op: string, payload: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error('worker pool is closed'));
    const id = this.#nextId++;
    slot.inFlight++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, slot });
      slot.worker.postMessage({ id, op, ...payload }, transfer);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
    for (const p of this.#pending.values()) p.reject(new Error('worker pool closed'));
    this.#pending.clear();
  }

  #deserializeError(e: SerializedError | undefined): Error {
    if (!e) return new Error('worker failed without an error');
    const revived = this.#reviveError(e);
    if (revived) return revived;
    const error = new Error(e.message) as Error & { code?: string };
    error.name = e.name;
    if (e.code) error.code = e.code;
    return error;
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    // Stop every worker before failing its requests: a request still running elsewhere may be writing to a
    // file descriptor that the caller closes (and the process may reuse) as soon as it sees the failure.
    this.#closed = true;
    void Promise.allSettled(this.#slots.map((s) => s.worker.terminate())).then(() => {
      for (const p of this.#pending.values()) p.reject(error);
      this.#pending.clear();
    });
  }
}

/**
 * Starts a worker. A `.ts` script (tests, development) is loaded through tsx's loader, registered inside the
 * worker because Node 20 ignores `--import` loaders in worker execArgv; the `source` export condition makes
 * workers see the same package sources as the tests. Built `.js` scripts start directly.
 */
function startWorker(script: URL, workerData: unknown): Worker {
  if (!script.pathname.endsWith('.ts')) return new Worker(script, { workerData });
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(script.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData, execArgv: ['--conditions=source'] });
}

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  objectKey?: string;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const e = error as Error & { code?: unknown; objectKey?: unknown };
    return {
      name: e.name,
      message: e.message,
      ...(typeof e.code === 'string' ? { code: e.code } : {}),
      ...(typeof e.objectKey === 'string' ? { objectKey: e.objectKey } : {}),
    };
  }
  return { name: 'Error', message: String(error) };
}
