import type { VolumeWriter } from '@stowage/host-backends';
import { describe, expect, it } from 'vitest';
import { writerTarget } from './writer-target.js';

function fakeWriter(calls: string[], failClose = false): VolumeWriter {
  return {
    path: '/volumes/v',
    size: 4096,
    fd: 42,
    write: async () => {},
    sync: async () => {
      calls.push('sync');
    },
    close: async () => {
      calls.push('close');
      if (failClose) throw new Error('EIO on close');
    },
  };
}

describe('writerTarget', () => {
  it('commits with sync then close, and closes once however often it is discarded', async () => {
    const calls: string[] = [];
    const target = writerTarget(fakeWriter(calls), { holesAreZero: false });
    expect(target).toMatchObject({
      path: '/volumes/v',
      fd: 42,
      size: 4096,
      holesAreZero: false,
      closed: false,
    });
    await target.commit();
    await target.discard();
    expect(calls).toEqual(['sync', 'close']);
    expect(target.closed).toBe(true);
  });

  it('never throws from discard, so the restore’s own error is the one reported', async () => {
    const calls: string[] = [];
    const seen: unknown[] = [];
    const target = writerTarget(fakeWriter(calls, true), {
      holesAreZero: true,
      onDiscard: (e) => seen.push(e),
    });
    await target.discard();
    await target.discard();
    expect(calls).toEqual(['close']);
    expect(seen.map((e) => (e as Error).message)).toEqual(['EIO on close']);
  });
});
