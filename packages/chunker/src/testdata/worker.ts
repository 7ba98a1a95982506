// Runs in a worker thread (through tsx): chunks the bytes it is given and posts the chunks back.
import { parentPort, workerData } from 'node:worker_threads';
import { chunkBuffer } from '../index.js';

const { data, params } = workerData as { data: Uint8Array; params: Parameters<typeof chunkBuffer>[1] };
parentPort!.postMessage(chunkBuffer(data, params));
