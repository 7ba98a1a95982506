import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBackend } from './block.js';
import { isHostBackendError } from './errors.js';
import {
  createLoopDevice,
  describeHostBackendConformance,
  expectBytes,
  type LoopDevice,
  loopUnavailableReason,
  mountLoopFilesystem,
  pattern,
  readAll,
} from './testing/index.js';

// CI sets STOWAGE_REQUIRE_LOOP=1: there missing root or loop devices are a failure, never a skip.
const required = process.env.STOWAGE_REQUIRE_LOOP === '1';
const unavailable = await loopUnavailableReason();
const btrfsUnavailable = await loopUnavailableReason('btrfs');
const MiB = 1024 * 1024;
const MISSING_DEVICE = '/dev/stowage-test-missing-device';

describe.runIf(required && unavailable !== undefined)(
  'block on a loop device (required by STOWAGE_REQUIRE_LOOP=1)',
  () => {
    it('can attach a loop device', () => {
      expect.fail(`STOWAGE_REQUIRE_LOOP=1 but loop devices cannot be attached here: ${unavailable}`);
    });
  },
);

describe.skipIf(unavailable !== undefined)(
  `block on a loop device${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    let loop: LoopDevice | undefined;
    beforeAll(async () => {
      loop = await createLoopDevice('16M');
    });
    afterAll(async () => {
      await loop?.dispose();
    });
    const device = (): string => {
      if (loop === undefined) throw new Error('the loop device is not attached');
      return loop.device;
    };

    describeHostBackendConformance(
      'block',
      () => ({
        backend: new BlockBackend({ devices: [device(), MISSING_DEVICE] }),
        existing: device(),
        missing: MISSING_DEVICE,
      }),
      {
        noSpaceUntestable:
          'a block device has no free space to run out of; writes past its end are invalid-argument',
      },
    );

    it('stats the device size from sysfs, and lists only devices that are there', async () => {
      const backend = new BlockBackend({ devices: [MISSING_DEVICE, device()] });
      const name = device().slice('/dev/'.length);
      expect(await backend.stat(device())).toEqual({ locator: device(), name, size: 16 * MiB });
      expect(await backend.list()).toEqual([{ locator: device(), name, size: 16 * MiB }]);
    });

    it('reads what was written through the device, to its last byte', async () => {
      const backend = new BlockBackend({ devices: [device()] });
      const writer = await backend.openWriter(device());
      await writer.write(pattern(MiB, 3), 15 * MiB);
      await writer.sync();
      await writer.close();
      const read = await readAll(await backend.openReader(device()));
      expect(read.length).toBe(16 * MiB);
      expectBytes(read.subarray(15 * MiB), pattern(MiB, 3));
    });

    it.skipIf(btrfsUnavailable !== undefined)(
      `refuses to write a mounted device: busy${btrfsUnavailable === undefined ? '' : ` (skipped: ${btrfsUnavailable})`}`,
      async () => {
        const mount = await mountLoopFilesystem('btrfs', '128M');
        try {
          const backend = new BlockBackend({ devices: [mount.device] });
          const error = await backend.openWriter(mount.device).catch((caught: unknown) => caught);
          expect(isHostBackendError(error, 'busy'), String(error)).toBe(true);
          // Reading a mounted device is allowed: a crash-consistent read is the caller's choice.
          await (await backend.openReader(mount.device)).close();
        } finally {
          await mount.dispose();
        }
      },
    );

    it('stops an open whose signal is aborted already; close is a no-op', async () => {
      const backend = new BlockBackend({ devices: [device()] });
      for (const open of [
        () => backend.openReader(device(), { signal: AbortSignal.abort() }),
        () => backend.openWriter(device(), { signal: AbortSignal.abort() }),
      ]) {
        const error = await open().catch((caught: unknown) => caught);
        expect(isHostBackendError(error, 'io') && /cancelled/.test(error.message), String(error)).toBe(true);
      }
      await backend.close();
      await (await backend.openReader(device(), { signal: new AbortController().signal })).close();
    });

    it('refuses an allow-listed path that is not a block device', async () => {
      const backend = new BlockBackend({ devices: ['/etc/hostname'] });
      for (const attempt of [backend.stat('/etc/hostname'), backend.openReader('/etc/hostname')]) {
        const error = await attempt.catch((caught: unknown) => caught);
        expect(isHostBackendError(error, 'invalid-locator'), String(error)).toBe(true);
      }
    });

    it('wants absolute device paths', () => {
      expect(() => new BlockBackend({ devices: ['loop0'] })).toThrow(/absolute/);
    });
  },
);
