import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isObjectStoreError } from './errors.js';
import { FS_TEMP_PREFIX, FsObjectStore, fsErrorKind } from './fs.js';
import { collect, describeObjectStoreConformance } from './testing/index.js';

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
