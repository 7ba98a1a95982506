// Worker thread fixture for index.test.ts: hashes what it is sent with its own kernel instance.
import { parentPort } from 'node:worker_threads';
import { blake3, blake3Keyed } from '../index.js';

parentPort!.on('message', (msg: { data: Uint8Array; key: Uint8Array }) => {
  parentPort!.postMessage({ hash: blake3(msg.data), keyed: blake3Keyed(msg.key, msg.data, 100) });
});
