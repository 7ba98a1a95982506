// FsObjectStore put / head / get / list / deleteMany cost, in the backup's pattern: content-addressed keys
// spread over the 256 `chunks/xx/` directories (made beforehand, as in a used repository), deferred puts,
// 16 requests in flight.
//   npx tsx packages/object-store/bench/fs-store.ts [DIR] [MODULE ...]
// DIR is where the stores go (default: the temp directory; /dev/shm is tmpfs, where fsync costs next to
// nothing and the store's own overhead shows). Each MODULE is an fs.ts to load (default: this package's);
// to compare with an older one, copy it out with the two files it imports:
//   for f in fs errors object-store; do git show <commit>:packages/object-store/src/$f.ts > /tmp/old/$f.ts; done
// Modules run in alternating rounds in one process (ROUNDS=4) and the medians are printed: CPU per object
// (the process's user + system time, the threadpool's included) and objects per second. N=3000 objects of
// SIZE=4096 bytes by default. The machine is shared and noisy: trust CPU per object more than rates.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const directory = process.argv[2] ?? tmpdir();
const modules = process.argv.slice(3).map((path) => resolve(path));
if (modules.length === 0) modules.push(new URL('../src/fs.ts', import.meta.url).pathname);
const count = Number(process.env.N ?? 3000);
const size = Number(process.env.SIZE ?? 4096);
const rounds = Number(process.env.ROUNDS ?? 4);
const inFlight = 16;

interface Store {
  put(key: string, body: Uint8Array, options?: { durability?: 'deferred' }): Promise<void>;
  head(key: string): Promise<unknown>;
  get(key: string): Promise<Uint8Array>;
  list(prefix: string): AsyncIterable<unknown>;
  deleteMany(keys: readonly string[]): Promise<void>;
  flush(): Promise<void>;
}
type StoreClass = new (options: { root: string }) => Store;
const classes: StoreClass[] = [];
for (const path of modules) classes.push((await import(pathToFileURL(path).href)).FsObjectStore);

async function parallel<T>(items: readonly T[], work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

const body = randomBytes(size);
const results = new Map<string, [cpu: number, rate: number][]>();
for (let round = 0; round < rounds; round++) {
  for (const [index, FsObjectStore] of classes.entries()) {
    const root = await mkdtemp(join(directory, 'stowage-fs-bench-'));
    try {
      const store = new FsObjectStore({ root: join(root, 'repo') });
      const keys = Array.from({ length: count }, () => {
        const hex = randomBytes(32).toString('hex');
        return `chunks/${hex.slice(0, 2)}/${hex}`;
      });
      for (let prefix = 0; prefix < 256; prefix++) {
        const hex = prefix.toString(16).padStart(2, '0');
        await store.put(`chunks/${hex}/${hex.padEnd(64, '0')}`, body, { durability: 'deferred' });
      }
      await store.flush();
      const missing = keys.map((key) => `${key.slice(0, -1)}x`);
      const measure = async (what: string, objects: number, run: () => Promise<unknown>) => {
        const cpu = process.cpuUsage();
        const start = performance.now();
        await run();
        const used = process.cpuUsage(cpu);
        const seconds = (performance.now() - start) / 1000;
        const name = `${what.padEnd(14)} ${modules[index]}`;
        results.set(name, [
          ...(results.get(name) ?? []),
          [(used.user + used.system) / objects, objects / seconds],
        ]);
      };
      await measure('put', count, () =>
        parallel(keys, (key) => store.put(key, body, { durability: 'deferred' })),
      );
      await measure('flush', count, () => store.flush());
      await measure('head, present', count, () => parallel(keys, (key) => store.head(key)));
      await measure('head, missing', count, () => parallel(missing, (key) => store.head(key)));
      await measure('get', count, () => parallel(keys, (key) => store.get(key)));
      await measure('list', count + 256, async () => {
        for await (const _ of store.list('chunks/')) {
        }
      });
      await measure('deleteMany', count, () => store.deleteMany(keys));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }
}
const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
console.log(`${count} × ${size} B in ${directory}, ${inFlight} in flight, medians of ${rounds} rounds`);
for (const [name, samples] of [...results].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
  const cpu = median(samples.map(([value]) => value)).toFixed(1);
  const rate = median(samples.map(([, value]) => value)).toFixed(0);
  console.log(`  ${name}  ${cpu.padStart(8)} µs CPU/object  ${rate.padStart(7)} objects/s`);
}
