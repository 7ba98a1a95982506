// A restore that stalls part-way, run in its own process by partial-files.test.ts (which then kills it, or
// lets it run while restoring beside it). Prints "stalled <pid>" once a pack GET hangs: by then the
// restore's partial file exists, the size of the volume, and some of it is written.
//   node --conditions=source --import tsx stalling-restore.ts <fs store root> <target key hex> <backup ref JSON> <target>
import { FsObjectStore, type ObjectStore } from '@stowage/object-store';
import { Repository } from '../repository.js';
import { restoreBackup } from '../restore.js';
import { ChunkWorkers } from '../workers/chunk-workers.js';

const [root, keyHex, refJson, target] = process.argv.slice(2);
if (root === undefined || keyHex === undefined || refJson === undefined || target === undefined) {
  throw new Error('usage: stalling-restore.ts <root> <key hex> <backup ref JSON> <target>');
}
const fs = new FsObjectStore({ root });
let answered = 0;
const stalling: ObjectStore = {
  location: fs.location,
  head: (k) => fs.head(k),
  list: (p) => fs.list(p),
  put: (k, b, o) => fs.put(k, b, o),
  delete: (k) => fs.delete(k),
  deleteMany: (k) => fs.deleteMany(k),
  get: (k, r) => {
    if (!k.startsWith('packs/') || answered++ < 2) return fs.get(k, r);
    process.stdout.write(`stalled ${process.pid}\n`);
    return new Promise<Uint8Array>(() => {});
  },
};
const repository = await Repository.openWithKey(stalling, Buffer.from(keyHex, 'hex'));
const workers = new ChunkWorkers(repository.targetKey, { threads: 1 });
await restoreBackup({ repository, workers, backup: JSON.parse(refJson), targetPath: target, concurrency: 1 });
