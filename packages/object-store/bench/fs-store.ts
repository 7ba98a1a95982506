// FsObjectStore put / head / get / list / delete throughput, the backup's pattern: content-addressed keys
// spread over the 256 `chunks/xx/` directories, deferred puts, a flush at the end, 16 requests in flight.
//   npx tsx packages/object-store/bench/fs-store.ts [DIR] [MODULE]
// DIR is where the store goes (default: the temp directory; try /dev/shm for tmpfs, where fsync costs next
// to nothing and the store's own overhead shows); MODULE the fs.ts to load (default: this package's).
// N=4000 puts of SIZE=4096 bytes by default. The machine is shared and noisy: compare runs made one after
// the other, not numbers across days.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const directory = process.argv[2] ?? tmpdir();
const modulePath = resolve(process.argv[3] ?? new URL('../src/fs.ts', import.meta.url).pathname);
const count = Number(process.env.N ?? 4000);
const size = Number(process.env.SIZE ?? 4096);
const inFlight = 16;

const { FsObjectStore } = await import(pathToFileURL(modulePath).href);

async function parallel(items: readonly string[], work: (key: string) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
  return items.length / ((performance.now() - start) / 1000);
}

const root = await mkdtemp(join(directory, 'stowage-fs-bench-'));
try {
  const store = new FsObjectStore({ root: join(root, 'repo') });
  const body = randomBytes(size);
  const keys = Array.from({ length: count }, () => {
    const hex = randomBytes(32).toString('hex');
    return `chunks/${hex.slice(0, 2)}/${hex}`;
  });
  const missing = keys.map((key) => `${key.slice(0, -1)}x`);
  const rates: Record<string, number> = {};
  const putStart = performance.now();
  rates.put = await parallel(keys, (key) => store.put(key, body, { durability: 'deferred' }));
  await store.flush();
  rates['put+flush'] = count / ((performance.now() - putStart) / 1000);
  rates['head (present)'] = await parallel(keys, (key) => store.head(key));
  rates['head (missing)'] = await parallel(missing, (key) => store.head(key));
  rates.get = await parallel(keys, (key) => store.get(key));
  const listStart = performance.now();
  let listed = 0;
  for await (const _ of store.list('chunks/')) listed++;
  if (listed !== count) throw new Error(`listed ${listed} of ${count}`);
  rates.list = count / ((performance.now() - listStart) / 1000);
  rates.delete = await parallel(keys, (key) => store.delete(key));
  console.log(`${modulePath} in ${directory}, ${count} × ${size} B, ${inFlight} in flight (objects/s)`);
  for (const [what, rate] of Object.entries(rates))
    console.log(`  ${what.padEnd(16)} ${rate.toFixed(0).padStart(8)}`);
} finally {
  await rm(root, { recursive: true, force: true });
}
