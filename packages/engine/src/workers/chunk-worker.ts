// Worker thread for the CPU-heavy per-chunk work: zero detection, keyed ids, sealing (compress, encrypt) and
// opening (authenticate, decrypt, decompress, re-hash). Chunk bytes arrive as views of shared blocks or as
// transferred buffers, so nothing large is copied between threads.
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { chunkId, deriveTargetKeys, openChunk, sealChunk } from '@stowage/format';
import { serializeError } from './pool.js';

export interface ChunkWorkerData {
  targetKey: Uint8Array;
}

const keys = deriveTargetKeys((workerData as ChunkWorkerData).targetKey);
let zeros = new Uint8Array(0);

function isAllZero(data: Uint8Array): boolean {
  if (zeros.length < data.length) zeros = new Uint8Array(Math.max(data.length, 1 << 20));
  return Buffer.from(data.buffer, data.byteOffset, data.length).equals(zeros.subarray(0, data.length));
}

type Request =
  | { id: number; op: 'id'; block: SharedArrayBuffer; offset: number; length: number }
  | { id: number; op: 'seal'; block: SharedArrayBuffer; offset: number; length: number; chunkId: Uint8Array }
  | { id: number; op: 'open'; object: Uint8Array; chunkId: Uint8Array; length: number }
  | {
      id: number;
      op: 'open-write';
      object: Uint8Array;
      chunkId: Uint8Array;
      length: number;
      fd: number;
      position: number;
    };

function handle(req: Request): { value: unknown; transfer: ArrayBuffer[] } {
  switch (req.op) {
    case 'id': {
      const data = new Uint8Array(req.block, req.offset, req.length);
      if (isAllZero(data)) return { value: { zero: true }, transfer: [] };
      return { value: { zero: false, id: chunkId(keys, data) }, transfer: [] };
    }
    case 'seal': {
      const data = new Uint8Array(req.block, req.offset, req.length);
      const sealed = sealChunk(keys, data, { id: req.chunkId });
      const object = sealed.object;
      return {
        value: { object, compressed: sealed.compressed },
        transfer: ownsBuffer(object) ? [object.buffer as ArrayBuffer] : [],
      };
    }
    case 'open': {
      openChunk(keys, req.chunkId, req.object, req.length);
      return { value: undefined, transfer: [] };
    }
    case 'open-write': {
      const plain = openChunk(keys, req.chunkId, req.object, req.length);
      let done = 0;
      while (done < plain.length) {
        done += writeSync(req.fd, plain, done, plain.length - done, req.position + done);
      }
      return { value: undefined, transfer: [] };
    }
  }
}

function ownsBuffer(view: Uint8Array): boolean {
  return (
    view.byteOffset === 0 &&
    view.byteLength === view.buffer.byteLength &&
    !(view.buffer instanceof SharedArrayBuffer)
  );
}

parentPort!.on('message', (req: Request) => {
  try {
    const { value, transfer } = handle(req);
    parentPort!.postMessage({ id: req.id, ok: true, value }, transfer);
  } catch (error) {
    parentPort!.postMessage({ id: req.id, ok: false, error: serializeError(error) });
  }
});
