import { describe, expect, it } from 'vitest';
import { MemoryObjectStore } from './memory.js';
import { describeObjectStoreConformance } from './testing/index.js';

describeObjectStoreConformance('memory', () => ({ store: new MemoryObjectStore() }));

describe('MemoryObjectStore', () => {
  it('copies bodies in and out', async () => {
    const store = new MemoryObjectStore({ now: () => new Date(1000) });
    const body = new Uint8Array([1, 2, 3]);
    await store.put('k', body);
    body[0] = 9;
    const read = await store.get('k');
    read[1] = 9;
    expect(await store.get('k')).toEqual(new Uint8Array([1, 2, 3]));
    expect((await store.head('k'))?.lastModified).toEqual(new Date(1000));
  });
});
