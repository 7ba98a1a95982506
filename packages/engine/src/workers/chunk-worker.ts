// Worker thread for the CPU-heavy per-chunk work: zero detection, keyed ids, sealing (compress, encrypt) and
// opening (authenticate, decrypt, decompress, re-hash). Chunk bytes arrive as views of shared blocks or as
// transferred buffers, so nothing large is copied between threads.
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { chunkId, deriveTargetKeys, openChunk, sealChunkInto, type TargetKeys } from '@stowage/format';
import { serializeError } from './pool.js';

export interface ChunkWorkerData {
  /** May be absent when the pool is started before the key is known; an 'init' request brings it. */
  targetKey?: Uint8Array;
}

const initialKey = (workerData as ChunkWorkerData | undefined)?.targetKey;
let targetKeys: TargetKeys | undefined = initialKey ? deriveTargetKeys(initialKey) : undefined;

function keysOrThrow(): TargetKeys {
  if (!targetKeys) throw new Error('chunk worker has no key yet');
  return targetKeys;
}
const ZERO_STRIDE = 64 << 10;
const zeros = Buffer.alloc(ZERO_STRIDE);

/** memcmp against a small zero buffer, stride by stride: as fast as one big compare, far less memory. */
function isAllZero(data: Uint8Array): boolean {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.length);
  for (let at = 0; at < bytes.length; at += ZERO_STRIDE) {
    const n = Math.min(ZERO_STRIDE, bytes.length - at);
    if (!bytes.subarray(at, at + n).equals(n === ZERO_STRIDE ? zeros : zeros.subarray(0, n))) return false;
  }
  return true;
}

// Shared buffers handed over once ('attach'); requests then name them by number (see ChunkWorkers.attach).
const attached = new Map<number, SharedArrayBuffer>();

/** A block as a request names it: the buffer itself, or the number it was attached under. */
type BlockRef = SharedArrayBuffer | number;

function blockOf(ref: BlockRef): SharedArrayBuffer {
  if (typeof ref !== 'number') return ref;
  const buffer = attached.get(ref);
  if (!buffer) throw new Error(`chunk worker: no shared buffer attached as ${ref}`);
  return buffer;
}

type Request =
  | { id: number; op: 'init'; targetKey: Uint8Array }
  | { id: number; op: 'attach'; handle: number; buffer: SharedArrayBuffer }
  | { id: number; op: 'detach'; handle: number }
  | { id: number; op: 'ids'; block: BlockRef; slices: number[] }
  | {
      id: number;
      op: 'seal';
      block: BlockRef;
      offset: number;
      length: number;
      chunkId: Uint8Array;
      out: ArrayBuffer;
    }
  | { id: number; op: 'open'; object: Uint8Array; chunkId: Uint8Array; length: number; name?: string }
  | {
      id: number;
      op: 'open-write';
      object: Uint8Array;
      chunkId: Uint8Array;
      length: number;
      name?: string;
      fd: number;
      position: number;
    };

function handle(req: Request): { value: unknown; transfer: ArrayBuffer[] } {
  switch (req.op) {
    case 'init':
      targetKeys = deriveTargetKeys(req.targetKey);
      return { value: undefined, transfer: [] };
    case 'attach':
      attached.set(req.handle, req.buffer);
      return { value: undefined, transfer: [] };
    case 'detach':
      attached.delete(req.handle);
      return { value: undefined, transfer: [] };
  }
  const keys = keysOrThrow();
  switch (req.op) {
    case 'ids': {
      // Every chunk of one request in one answer: an id, or null for an all-zero chunk (a hole).
      const block = blockOf(req.block);
      const ids: Array<Uint8Array | null> = [];
      for (let i = 0; i < req.slices.length; i += 2) {
        const data = new Uint8Array(block, req.slices[i], req.slices[i + 1]);
        ids.push(isAllZero(data) ? null : chunkId(keys, data));
      }
      return { value: ids, transfer: [] };
    }
    case 'seal': {
      const data = new Uint8Array(blockOf(req.block), req.offset, req.length);
      const sealed = sealChunkInto(keys, data, new Uint8Array(req.out), { id: req.chunkId });
      return { value: { out: req.out, length: sealed.length, padding: sealed.padding }, transfer: [req.out] };
    }
    case 'open': {
      openChunk(keys, req.chunkId, req.object, req.length, req.name);
      return { value: undefined, transfer: [] };
    }
    case 'open-write': {
      const plain = openChunk(keys, req.chunkId, req.object, req.length, req.name);
      let done = 0;
      while (done < plain.length) {
        done += writeSync(req.fd, plain, done, plain.length - done, req.position + done);
      }
      return { value: undefined, transfer: [] };
    }
  }
}

parentPort!.on('message', (req: Request) => {
  try {
    const { value, transfer } = handle(req);
    parentPort!.postMessage({ id: req.id, ok: true, value }, transfer);
  } catch (error) {
    parentPort!.postMessage({ id: req.id, ok: false, error: serializeError(error) });
  }
});
