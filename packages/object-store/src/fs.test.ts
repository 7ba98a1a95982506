import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isObjectStoreError } from './errors.js';
import { FS_TEMP_PREFIX, FsObjectStore, fsErrorKind } from './fs.js';
import { bytes, collect, describeObjectStoreConformance } from './testing/index.js';

describeObjectStoreConformance('filesystem', async () => {
  const root = await mkdtemp(join(tmpdir(), 'stowage-fs-conformance-'));
  return {
    store: new FsObjectStore({ root: join(root, 'objects') }),
    dispose: () => rm(root, { recursive: true, force: true }),
  };
});

describe('FsObjectStore', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-fs-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('never shows the files a crashed write leaves behind', async () => {
    const store = new FsObjectStore({ root });
    await store.put('chunks/ab/one', new Uint8Array([1]));
    // What a process killed between write and rename leaves: a temp file beside the object.
    await writeFile(join(root, 'chunks', 'ab', `${FS_TEMP_PREFIX}0123456789abcdef`), 'half an objec');
    expect((await collect(store.list(''))).map((info) => info.key)).toEqual(['chunks/ab/one']);
    await expect(store.head(`chunks/ab/${FS_TEMP_PREFIX}0123456789abcdef`)).rejects.toMatchObject({
      kind: 'invalid-key',
    });
    await store.put('chunks/ab/two', new Uint8Array([2]));
    expect((await collect(store.list('chunks/'))).map((info) => info.key)).toEqual([
      'chunks/ab/one',
      'chunks/ab/two',
    ]);
  });

  it('leaves nothing visible when a put fails before the rename, and cleans its temp file', async () => {
    const tempPaths: string[] = [];
    const failing = new FsObjectStore({
      root,
      beforeCommit: async (tempPath) => {
        tempPaths.push(tempPath);
        throw Object.assign(new Error('simulated crash'), { code: 'EIO' });
      },
    });
    await expect(failing.put('chunks/cd/x', new Uint8Array(100_000))).rejects.toMatchObject({
      kind: 'permanent',
      key: 'chunks/cd/x',
    });
    expect(tempPaths).toHaveLength(1);
    expect(await failing.head('chunks/cd/x')).toBeUndefined();
    expect(await collect(failing.list(''))).toEqual([]);
    expect(await readdir(join(root, 'chunks', 'cd'))).toEqual([]);

    // An existing object survives a failed overwrite untouched.
    const store = new FsObjectStore({ root });
    await store.put('chunks/cd/x', new Uint8Array([1, 2, 3]));
    await expect(failing.put('chunks/cd/x', new Uint8Array(10))).rejects.toThrow('simulated crash');
    expect(await store.get('chunks/cd/x')).toEqual(new Uint8Array([1, 2, 3]));
  });

  it('an aborted put leaves no temporary file and the key as it was', async () => {
    const controller = new AbortController();
    const store = new FsObjectStore({ root });
    await store.put('chunks/ef/x', new Uint8Array([1, 2, 3]));
    let tempPath: string | undefined;
    // Aborted once the temporary file is written and synced: the last moment before the rename.
    const aborting = new FsObjectStore({
      root,
      beforeCommit: async (path) => {
        tempPath = path;
        controller.abort();
      },
    });
    await expect(
      aborting.put('chunks/ef/x', new Uint8Array(100_000), { signal: controller.signal }),
    ).rejects.toMatchObject({ kind: 'aborted', op: 'put', key: 'chunks/ef/x' });
    expect(tempPath).toBeDefined();
    expect(await readdir(join(root, 'chunks', 'ef'))).toEqual(['x']);
    expect(await store.get('chunks/ef/x')).toEqual(new Uint8Array([1, 2, 3]));

    // Aborted at any moment, into directories still to be made: never a temporary file left, never half.
    const body = bytes(4 << 20, 9);
    const keys = Array.from({ length: 24 }, (_, index) => `fresh/${index.toString(16).padStart(2, '0')}/k`);
    const outcomes = new Set<string>();
    for (const [index, key] of keys.entries()) {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), index);
      await store.put(key, body, { signal: abort.signal }).then(
        () => outcomes.add('landed'),
        (error: unknown) => outcomes.add(isObjectStoreError(error) ? error.kind : String(error)),
      );
      clearTimeout(timer);
    }
    expect([...outcomes].filter((outcome) => outcome !== 'landed' && outcome !== 'aborted')).toEqual([]);
    for (const key of keys) {
      const directory = join(root, ...key.split('/').slice(0, -1));
      const names = await readdir(directory).catch(() => []);
      expect(names.filter((name) => name.startsWith(FS_TEMP_PREFIX))).toEqual([]);
      const info = await store.head(key);
      if (info !== undefined) expect(Buffer.compare(await store.get(key), body)).toBe(0);
    }
  });

  it('reports a key that is also a directory of other keys as permanent, not as a half object', async () => {
    const store = new FsObjectStore({ root });
    await store.put('a/b/c', new Uint8Array([1]));
    const error = await store.put('a/b', new Uint8Array([2])).catch((caught: unknown) => caught);
    expect(isObjectStoreError(error, 'permanent')).toBe(true);
    expect(await store.head('a/b')).toBeUndefined();
    await expect(store.get('a/b')).rejects.toMatchObject({ kind: 'not-found' });
    await store.delete('a/b');
    expect(await store.get('a/b/c')).toEqual(new Uint8Array([1]));
  });

  it('defers directory syncs of deferred puts to flush, and syncs there what head found too', async () => {
    const synced: string[] = [];
    const store = new FsObjectStore({ root, onDirectorySynced: (directory) => synced.push(directory) });
    await store.put('chunks/aa/first', new Uint8Array([1]));
    await store.put('chunks/bb/other', new Uint8Array([3]));
    synced.length = 0;
    await store.put('chunks/aa/one', new Uint8Array([2]), { durability: 'deferred' });
    expect(await store.get('chunks/aa/one')).toEqual(new Uint8Array([2])); // visible before the flush
    expect(synced).toEqual([]);
    expect(await store.head('chunks/bb/other')).toBeDefined(); // someone's object this writer relies on
    await store.put('manifests/m', new Uint8Array([9])); // immediate: synced at once (and its new parent)
    expect(synced).toContain(join(root, 'manifests'));
    expect(synced.filter((d) => d.includes('chunks'))).toEqual([]);
    synced.length = 0;
    await store.flush();
    expect(synced.sort()).toEqual([join(root, 'chunks', 'aa'), join(root, 'chunks', 'bb')]);
    synced.length = 0;
    await store.flush();
    expect(synced).toEqual([]);
  });

  it('maps errno codes to kinds: ENOSPC is no-space', () => {
    expect(fsErrorKind('ENOSPC')).toBe('no-space');
    expect(fsErrorKind('EDQUOT')).toBe('no-space');
    expect(fsErrorKind('EACCES')).toBe('auth');
    expect(fsErrorKind('EMFILE')).toBe('transient');
    expect(fsErrorKind('EIO')).toBe('permanent');
    expect(fsErrorKind(undefined)).toBe('permanent');
  });

  it('names its location as a file URL and wants an absolute root', () => {
    expect(new FsObjectStore({ root: '/srv/backups' }).location).toBe('file:///srv/backups');
    expect(() => new FsObjectStore({ root: 'relative' })).toThrow(/absolute/);
  });
});

describe('FsObjectStore and symbolic links below its root', () => {
  let base: string;
  let root: string;
  let outside: string;
  const one = `${'ab'.padEnd(64, '1')}`;
  const two = `${'ab'.padEnd(64, '2')}`;
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'stowage-fs-links-'));
    root = join(base, 'repo');
    outside = join(base, 'outside');
    await mkdir(join(outside, 'ab'), { recursive: true });
    await writeFile(join(outside, 'ab', one), 'not the store’s');
    await writeFile(join(outside, one), 'not the store’s either');
    // A store that has been used: its directories exist (and may have been checked already).
    const store = new FsObjectStore({ root });
    await store.put('config', bytes(10, 1));
    await store.put(`chunks/ef/${'ef'.padEnd(64, '0')}`, bytes(10, 2));
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  /** Every file and directory under `directory`, relative, directories with a trailing slash. */
  const tree = async (directory: string): Promise<string[]> => {
    const entries = await readdir(directory, { recursive: true, withFileTypes: true });
    return entries
      .map((entry) => {
        const path = join(entry.parentPath, entry.name).slice(directory.length + 1);
        return entry.isDirectory() ? `${path}/` : path;
      })
      .sort();
  };
  const outsideTree = ['ab/', `ab/${one}`, one];

  async function expectRefused(attempt: Promise<unknown>): Promise<void> {
    const error = await attempt.then(
      (value) => new Error(`expected a refusal, got ${JSON.stringify(value)}`),
      (caught: unknown) => caught,
    );
    expect(isObjectStoreError(error, 'permanent'), String(error)).toBe(true);
    expect(String(error)).toMatch(/symbolic link/);
  }

  /** get, head, put (plain and ifNoneMatch), delete, deleteMany and list of `key` are all refused. */
  async function expectEveryOperationRefused(store: FsObjectStore, key: string): Promise<void> {
    await expectRefused(store.get(key));
    await expectRefused(store.get(key, { offset: 0, length: 1 }));
    await expectRefused(store.head(key));
    await expectRefused(store.put(key, bytes(100, 3)));
    await expectRefused(store.put(key, bytes(100, 3), { ifNoneMatch: true }));
    await expectRefused(store.put(key, bytes(100, 3), { durability: 'deferred' }));
    await expectRefused(store.delete(key));
    await expectRefused(store.deleteMany([key]));
    for (const prefix of ['', 'chunks/', 'chunks/ab', 'chunks/ab/', key]) {
      await expectRefused(collect(store.list(prefix)));
    }
  }

  for (const fresh of [false, true]) {
    const which = fresh ? 'a fresh store' : 'a store that has used the directories already';
    const open = async () => {
      const store = new FsObjectStore({ root });
      if (!fresh) {
        await store.put(`chunks/ab/${'ab'.padEnd(64, '9')}`, bytes(10, 4));
        await store.head(`chunks/ab/${'ab'.padEnd(64, '9')}`);
        await collect(store.list(''));
      }
      return store;
    };

    it(`refuses a chunks directory that is a symbolic link, touching nothing behind it (${which})`, async () => {
      const store = await open();
      await rm(join(root, 'chunks'), { recursive: true });
      await symlink(outside, join(root, 'chunks'));
      await expectEveryOperationRefused(store, `chunks/ab/${one}`);
      await expectEveryOperationRefused(store, `chunks/ab/${two}`);
      // A directory to be made there is not made through the link.
      await expectRefused(store.put(`chunks/cd/${'cd'.padEnd(64, '0')}`, bytes(100, 5)));
      expect(await tree(outside)).toEqual(outsideTree);
      expect(await readFile(join(outside, 'ab', one), 'utf8')).toBe('not the store’s');
      // The rest of the store works.
      expect(await store.get('config')).toEqual(bytes(10, 1));
      await store.put('manifests/v/b', bytes(10, 6));
      expect((await collect(store.list('manifests/'))).map((info) => info.key)).toEqual(['manifests/v/b']);
    });

    it(`refuses a chunk subdirectory that is a symbolic link (${which})`, async () => {
      const store = await open();
      await rm(join(root, 'chunks', 'ab'), { recursive: true, force: true });
      await symlink(join(outside, 'ab'), join(root, 'chunks', 'ab'));
      await expectEveryOperationRefused(store, `chunks/ab/${one}`);
      await expectEveryOperationRefused(store, `chunks/ab/${two}`);
      expect(await tree(outside)).toEqual(outsideTree);
      // Its neighbours still work.
      expect((await collect(store.list('chunks/e'))).map((info) => info.key)).toEqual([
        `chunks/ef/${'ef'.padEnd(64, '0')}`,
      ]);
    });

    it(`refuses an object file that is a symbolic link, dangling or not (${which})`, async () => {
      const store = await open();
      await mkdir(join(root, 'chunks', 'ab'), { recursive: true });
      await symlink(join(outside, one), join(root, 'chunks', 'ab', one));
      await symlink(join(outside, 'missing'), join(root, 'chunks', 'ab', two));
      for (const key of [`chunks/ab/${one}`, `chunks/ab/${two}`]) {
        await expectRefused(store.get(key));
        await expectRefused(store.head(key));
        await expectRefused(store.put(key, bytes(100, 3), { ifNoneMatch: true }));
        await expectRefused(store.delete(key));
        await expectRefused(store.deleteMany([key]));
        await expectRefused(collect(store.list(key)));
      }
      await expectRefused(collect(store.list('chunks/')));
      expect(await tree(outside)).toEqual(outsideTree);
      expect(await readFile(join(outside, one), 'utf8')).toBe('not the store’s either');
      // A plain put replaces the link itself (rename never follows one), writing nothing outside.
      await store.put(`chunks/ab/${one}`, bytes(100, 7));
      expect(await store.get(`chunks/ab/${one}`)).toEqual(bytes(100, 7));
      expect(await readFile(join(outside, one), 'utf8')).toBe('not the store’s either');
    });
  }

  it('accepts a root that is itself reached through a symbolic link', async () => {
    await symlink(root, join(base, 'repo-link'));
    const store = new FsObjectStore({ root: join(base, 'repo-link') });
    expect(await store.get('config')).toEqual(bytes(10, 1));
    await store.put(`chunks/ab/${one}`, bytes(100, 8));
    expect(await store.head(`chunks/ab/${one}`)).toMatchObject({ size: 100 });
    expect((await collect(store.list('chunks/'))).map((info) => info.key)).toContain(`chunks/ab/${one}`);
    await store.delete(`chunks/ab/${one}`);
    expect(await store.head(`chunks/ab/${one}`)).toBeUndefined();
    const fresh = new FsObjectStore({ root: join(base, 'new-link', 'repo') });
    await symlink(join(base, 'new-target'), join(base, 'new-link')).then(() =>
      mkdir(join(base, 'new-target')),
    );
    await fresh.put('config', bytes(10, 9));
    expect(await readFile(join(base, 'new-target', 'repo', 'config'))).toEqual(Buffer.from(bytes(10, 9)));
  });
});
