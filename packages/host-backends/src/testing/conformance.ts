import { dirname } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type HostBackendErrorKind, isHostBackendError } from '../errors.js';
import type {
  HostBackend,
  SnapshotMethod,
  SnapshotResult,
  VolumeInfo,
  VolumeReader,
} from '../host-backend.js';

export interface HostBackendConformanceSubject {
  /** A backend with no volumes of its own yet (or only `existing`), used by one test only. */
  readonly backend: HostBackend;
  /** A well-formed locator inside the backend's roots (or allow-list) that names nothing. */
  readonly missing: string;
  /**
   * For backends that cannot provision: the locator of an existing volume of at least 4 MiB that the suite
   * may overwrite.
   */
  readonly existing?: string;
  /** Called after the test, pass or fail. */
  readonly dispose?: () => Promise<void> | void;
}

export type HostBackendConformanceFactory = () =>
  | Promise<HostBackendConformanceSubject>
  | HostBackendConformanceSubject;

export interface HostBackendConformanceOptions {
  /**
   * The method snapshots are made by here: `reflink`, every snapshot, copies allowed or not; `copy`, a
   * snapshot is refused (`unsupported`) unless a copy is allowed, and is then a copy. Unset, either is
   * accepted.
   */
  readonly snapshotMethod?: SnapshotMethod;
  /**
   * The size of a volume bigger than the free space, for the no-space test: the suite fills it and expects
   * `no-space`. Leave unset only with `noSpaceUntestable`.
   */
  readonly fillSize?: number;
  /** Why the no-space test cannot run against this subject; printed in the skipped test's name. */
  readonly noSpaceUntestable?: string;
}

const MiB = 1024 * 1024;

/**
 * The one test body every HostBackend runs: local-file on the plain filesystem, on btrfs and on XFS, block on
 * a loop device. Everything the `HostBackend` doc comment promises is checked here.
 */
export function describeHostBackendConformance(
  name: string,
  factory: HostBackendConformanceFactory,
  options: HostBackendConformanceOptions = {},
): void {
  describe(`HostBackend conformance: ${name}`, () => {
    let subject: HostBackendConformanceSubject | undefined;
    const current = (): HostBackendConformanceSubject => {
      if (subject === undefined) throw new Error('conformance backend not created');
      return subject;
    };
    const backend = (): HostBackend => current().backend;
    /** A 4 MiB volume of zeros: provisioned, or the existing one cleared. */
    const freshVolume = async (volumeName = 'vol-a', size = 4 * MiB): Promise<VolumeInfo> => {
      if (backend().capabilities.provision) return backend().provision({ name: volumeName, size });
      const existing = current().existing;
      if (existing === undefined) throw new Error('a backend that cannot provision needs `existing`');
      const info = await backend().stat(existing);
      const writer = await backend().openWriter(existing);
      try {
        await writer.write(new Uint8Array(4 * MiB), 0);
        await writer.sync();
      } finally {
        await writer.close();
      }
      return info;
    };

    beforeEach(async () => {
      subject = await factory();
    });
    afterEach(async () => {
      await subject?.dispose?.();
      subject = undefined;
    });

    it('provisions a sparse, zero-filled volume of the size asked, and lists and stats it', async () => {
      if (!backend().capabilities.provision) {
        await expectKind(backend().provision({ name: 'vol-a', size: MiB }), 'unsupported');
        const listed = await backend().list();
        expect(listed.map((v) => v.locator)).toContain(current().existing);
        return;
      }
      expect(await backend().list()).toEqual([]);
      const size = 3 * MiB + 512;
      const info = await backend().provision({ name: 'vol-a', size });
      expect(info).toMatchObject({ name: 'vol-a', size });
      expect(await backend().stat(info.locator)).toEqual(info);
      await backend().provision({ name: 'vol-b.img', size: 1 });
      expect((await backend().list()).map((v) => [v.name, v.size])).toEqual([
        ['vol-a', size],
        ['vol-b.img', 1],
      ]);
      expectBytes(await readAll(await backend().openReader(info.locator)), new Uint8Array(size));
    });

    it('refuses to provision over an existing volume, with a bad name or a bad size', async (context) => {
      if (!backend().capabilities.provision) {
        context.skip(
          `${backend().kind} does not provision volumes (provision is unsupported, checked above)`,
        );
      }
      const info = await backend().provision({ name: 'vol-a', size: MiB });
      await writeAt(backend(), info.locator, 0, pattern(100, 1));
      await expectKind(backend().provision({ name: 'vol-a', size: 2 * MiB }), 'exists');
      expect(await backend().stat(info.locator)).toMatchObject({ size: MiB });
      expectBytes(await readRange(backend(), info.locator, 0, 100), pattern(100, 1));
      for (const bad of ['', '.hidden', '-flag', '../escape', 'a/b', '/etc/passwd', 'x@y', 'nul\0']) {
        await expectKind(backend().provision({ name: bad, size: MiB }), 'invalid-locator');
      }
      for (const size of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
        await expectKind(backend().provision({ name: 'vol-c', size }), 'invalid-argument');
      }
      expect((await backend().list()).map((v) => v.name)).toEqual(['vol-a']);
    });

    it('writes at positions, syncs, and reads back what it wrote', async () => {
      const volume = await freshVolume();
      const writer = await backend().openWriter(volume.locator);
      try {
        expect(writer.size).toBe(volume.size);
        await writer.write(pattern(5000, 2), MiB + 17);
        await writer.write(pattern(4096, 3), 0);
        await writer.write(pattern(10, 4), volume.size - 10);
        await writer.sync();
        // Nothing of a write past the end lands, not even the part that would fit.
        await expectKind(writer.write(pattern(20, 5), volume.size - 10), 'invalid-argument');
        await expectKind(writer.write(pattern(1, 5), -1), 'invalid-argument');
      } finally {
        await writer.close();
      }
      const reader = await backend().openReader(volume.locator);
      try {
        expect(reader.size).toBe(volume.size);
        const head = new Uint8Array(4096 + 100);
        expect(await reader.read(head, 0)).toBe(head.length);
        expectBytes(head.subarray(0, 4096), pattern(4096, 3));
        expectBytes(head.subarray(4096), new Uint8Array(100));
        const middle = new Uint8Array(5002);
        await reader.read(middle, MiB + 16);
        expectBytes(middle, new Uint8Array([0, ...pattern(5000, 2), 0]));
        // A read running past the end answers the bytes there were.
        const tail = new Uint8Array(64);
        expect(await reader.read(tail, volume.size - 10)).toBe(10);
        expectBytes(tail.subarray(0, 10), pattern(10, 4));
        expect(await reader.read(tail, volume.size)).toBe(0);
      } finally {
        await reader.close();
      }
      expect((await backend().stat(volume.locator)).size).toBe(volume.size);
    });

    it('snapshots a volume at one instant: later writes do not show in the snapshot', async () => {
      const volume = await freshVolume();
      if (!backend().capabilities.snapshot) {
        await expectKind(backend().snapshot(volume.locator, 'snap-1'), 'unsupported');
        expect(await backend().listSnapshots(volume.locator)).toEqual([]);
        return;
      }
      await writeAt(backend(), volume.locator, 0, pattern(MiB, 6));
      await writeAt(backend(), volume.locator, 3 * MiB, pattern(1000, 7));
      // Nothing writes the volume meanwhile, so even a copy is point in time.
      const snapshot = await backend().snapshot(volume.locator, 'snap-1', { allowCopy: true });
      expect(snapshot).toMatchObject({ volume: volume.locator, name: 'snap-1', size: volume.size });
      if (options.snapshotMethod !== undefined) expect(snapshot.method).toBe(options.snapshotMethod);
      else expect(['reflink', 'copy']).toContain(snapshot.method);
      await writeAt(backend(), volume.locator, 0, pattern(MiB, 8));

      const read = await readAll(await backend().openReader(snapshot.locator));
      expect(read.length).toBe(volume.size);
      expectBytes(read.subarray(0, MiB), pattern(MiB, 6));
      expectBytes(read.subarray(MiB, 3 * MiB), new Uint8Array(2 * MiB));
      expectBytes(read.subarray(3 * MiB, 3 * MiB + 1000), pattern(1000, 7));
      expectBytes(await readRange(backend(), volume.locator, 0, MiB), pattern(MiB, 8));

      const { method: _method, ...info } = snapshot;
      expect(await backend().listSnapshots(volume.locator)).toEqual([info]);
      // Snapshots are not volumes: not listed, not writable.
      expect((await backend().list()).map((v) => v.locator)).toEqual([volume.locator]);
      await expectKind(backend().openWriter(snapshot.locator), 'invalid-locator');
      await expectKind(backend().snapshot(volume.locator, 'snap-1', { allowCopy: true }), 'exists');
      await expectKind(backend().snapshot(volume.locator, '../snap'), 'invalid-locator');
      await expectKind(
        backend().snapshot(snapshot.locator, 'snap-2', { allowCopy: true }),
        'invalid-locator',
      );
    });

    it('makes a copy only when allowed to, and reports its progress up to the whole', async () => {
      const volume = await freshVolume();
      if (!backend().capabilities.snapshot) {
        await expectKind(backend().snapshot(volume.locator, 'snap-1', { allowCopy: true }), 'unsupported');
        return;
      }
      await writeAt(backend(), volume.locator, MiB, pattern(MiB, 10));
      const progress: [number, number][] = [];
      const onProgress = (done: number, total: number) => progress.push([done, total]);
      const first = await backend()
        .snapshot(volume.locator, 'snap-1', { onProgress })
        .catch((error: unknown) => error);
      if (isHostBackendError(first)) {
        // No point-in-time snapshot here: refused rather than silently a copy, and nothing left behind.
        expect(first.kind, String(first)).toBe('unsupported');
        expect(options.snapshotMethod).not.toBe('reflink');
        expect(await backend().listSnapshots(volume.locator)).toEqual([]);
        const copy = await backend().snapshot(volume.locator, 'snap-1', { allowCopy: true, onProgress });
        expect(copy.method).toBe('copy');
        expect(progress.length).toBeGreaterThan(0);
        expect(progress.at(-1)).toEqual([volume.size, volume.size]);
        for (const [index, [done, total]] of progress.entries()) {
          expect(total).toBe(volume.size);
          if (index > 0) expect(done).toBeGreaterThanOrEqual(progress[index - 1]![0]);
        }
        expectBytes(await readRange(backend(), copy.locator, MiB, MiB), pattern(MiB, 10));
      } else {
        expect((first as SnapshotResult).method).toBe('reflink');
        expect(options.snapshotMethod).not.toBe('copy');
      }
    });

    it('gives up a snapshot whose signal is aborted, leaving nothing behind', async () => {
      const volume = await freshVolume();
      const reason = new Error('job cancelled');
      const attempt = () =>
        backend().snapshot(volume.locator, 'snap-1', { allowCopy: true, signal: AbortSignal.abort(reason) });
      if (!backend().capabilities.snapshot) {
        await expectKind(attempt(), 'unsupported');
        return;
      }
      const error = await attempt().catch((caught: unknown) => caught);
      expect(error).toMatchObject({ kind: 'io', message: expect.stringMatching(/cancelled/), cause: reason });
      expect(await backend().listSnapshots(volume.locator)).toEqual([]);
      // The name was not taken.
      expect(await backend().snapshot(volume.locator, 'snap-1', { allowCopy: true })).toMatchObject({
        name: 'snap-1',
      });
    });

    it('deletes snapshots, then the volume; both are not-found afterwards', async () => {
      const volume = await freshVolume();
      if (!backend().capabilities.provision) {
        await expectKind(backend().deleteVolume(volume.locator), 'unsupported');
        expect(await backend().stat(volume.locator)).toEqual(volume);
        return;
      }
      const first = await backend().snapshot(volume.locator, 'snap-1', { allowCopy: true });
      const second = await backend().snapshot(volume.locator, 'snap-2', { allowCopy: true });
      await expectKind(backend().deleteVolume(volume.locator), 'busy');
      await expectKind(backend().deleteSnapshot(volume.locator), 'invalid-locator');
      await backend().deleteSnapshot(first.locator);
      expect((await backend().listSnapshots(volume.locator)).map((s) => s.name)).toEqual(['snap-2']);
      await expectKind(backend().deleteSnapshot(first.locator), 'not-found');
      await expectKind(backend().openReader(first.locator), 'not-found');
      await backend().deleteSnapshot(second.locator);
      expect(await backend().listSnapshots(volume.locator)).toEqual([]);

      await backend().deleteVolume(volume.locator);
      expect(await backend().list()).toEqual([]);
      await expectKind(backend().stat(volume.locator), 'not-found');
      await expectKind(backend().deleteVolume(volume.locator), 'not-found');
      // The name is free again.
      expect(await backend().provision({ name: volume.name, size: MiB })).toMatchObject({ size: MiB });
    });

    it('reports a missing volume as not-found from every operation', async () => {
      const missing = current().missing;
      await expectKind(backend().stat(missing), 'not-found');
      await expectKind(backend().openReader(missing), 'not-found');
      await expectKind(backend().openWriter(missing), 'not-found');
      await expectKind(backend().listSnapshots(missing), 'not-found');
      if (backend().capabilities.snapshot) await expectKind(backend().snapshot(missing, 'snap'), 'not-found');
      if (backend().capabilities.provision) await expectKind(backend().deleteVolume(missing), 'not-found');
    });

    it('refuses locators outside its roots, and malformed ones, before touching them', async () => {
      // Started one at a time: promises made up front would reject before anything awaits them.
      const everyOperation = (locator: string) => [
        () => backend().stat(locator),
        () => backend().openReader(locator),
        () => backend().openWriter(locator),
        () => backend().snapshot(locator, 'snap'),
        () => backend().listSnapshots(locator),
        () => backend().deleteSnapshot(locator),
        () => backend().deleteVolume(locator),
      ];
      for (const outside of ['/etc/passwd', '/etc/shadow', '/', '/nonexistent/volume']) {
        for (const attempt of everyOperation(outside)) await expectKind(attempt(), 'outside-roots');
      }
      const inside = dirname(current().missing);
      const malformed = [
        '',
        'etc/passwd',
        '../etc/passwd',
        `${inside}/../../../../etc/passwd`,
        `${inside}/a/../b`,
        `${inside}/nul\0`,
      ];
      for (const locator of malformed) {
        for (const attempt of everyOperation(locator)) await expectKind(attempt(), 'invalid-locator');
      }
    });

    it.skipIf(options.noSpaceUntestable !== undefined)(
      `reports a full filesystem as no-space${options.noSpaceUntestable === undefined ? '' : ` (skipped: ${options.noSpaceUntestable})`}`,
      async () => {
        const fillSize = options.fillSize;
        if (fillSize === undefined) throw new Error('set fillSize, or noSpaceUntestable with a reason');
        const volume = await backend().provision({ name: 'too-big', size: fillSize });
        const writer = await backend().openWriter(volume.locator);
        const block = pattern(8 * MiB, 9);
        let failure: unknown;
        try {
          for (let position = 0; position + block.length <= fillSize; position += block.length) {
            await writer.write(block, position);
          }
          await writer.sync();
        } catch (error) {
          failure = error;
        } finally {
          await writer.close().catch(() => {});
        }
        expect(failure, 'filling the volume should run out of space').toBeDefined();
        expect(isHostBackendError(failure, 'no-space'), String(failure)).toBe(true);
        await backend().deleteVolume(volume.locator);
      },
    );
  });
}

/**
 * Byte-for-byte equality that stays fast on megabytes (deep equality walks them one element at a time) and
 * names the first differing offset.
 */
export function expectBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  if (a.equals(b)) return;
  let at = 0;
  while (at < Math.min(a.length, b.length) && a[at] === b[at]) at++;
  expect.fail(`${what}: ${a.length} bytes where ${b.length} were expected, first difference at offset ${at}`);
}

async function expectKind(promise: Promise<unknown>, kind: HostBackendErrorKind): Promise<void> {
  const error = await promise.then(
    (value) => new Error(`expected a ${kind} error, got ${JSON.stringify(value)}`),
    (caught: unknown) => caught,
  );
  if (!isHostBackendError(error, kind)) {
    throw new Error(`expected a HostBackendError of kind ${kind}, got ${String(error)}`, { cause: error });
  }
}

/** `length` bytes of a pattern that differs by `seed` and never is all zeros. */
export function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed * 17 + 1) % 251 || 1;
  return bytes;
}

/** Reads the whole of a reader and closes it. */
export async function readAll(reader: VolumeReader): Promise<Uint8Array> {
  try {
    const out = new Uint8Array(reader.size);
    const read = await reader.read(out, 0);
    return out.subarray(0, read);
  } finally {
    await reader.close();
  }
}

async function readRange(
  backend: HostBackend,
  locator: string,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const reader = await backend.openReader(locator);
  try {
    const out = new Uint8Array(length);
    const read = await reader.read(out, position);
    return out.subarray(0, read);
  } finally {
    await reader.close();
  }
}

async function writeAt(
  backend: HostBackend,
  locator: string,
  position: number,
  data: Uint8Array,
): Promise<void> {
  const writer = await backend.openWriter(locator);
  try {
    await writer.write(data, position);
    await writer.sync();
  } finally {
    await writer.close();
  }
}
