import { mkdtemp, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFileBackend } from './local-file.js';
import {
  describeHostBackendConformance,
  expectBytes,
  LOOP_FILESYSTEMS,
  type LoopMount,
  loopUnavailableReason,
  mountLoopFilesystem,
  pattern,
  readAll,
} from './testing/index.js';

// CI sets STOWAGE_REQUIRE_LOOP=1: there missing root, loop devices or mkfs are a failure, never a skip.
const required = process.env.STOWAGE_REQUIRE_LOOP === '1';
const MiB = 1024 * 1024;

for (const filesystem of LOOP_FILESYSTEMS) {
  const unavailable = await loopUnavailableReason(filesystem);

  describe.runIf(required && unavailable !== undefined)(
    `local-file on ${filesystem} (required by STOWAGE_REQUIRE_LOOP=1)`,
    () => {
      it(`can make a ${filesystem} filesystem on a loop device`, () => {
        expect.fail(
          `STOWAGE_REQUIRE_LOOP=1 but a ${filesystem} loop filesystem cannot be made here: ${unavailable}`,
        );
      });
    },
  );

  describe.skipIf(unavailable !== undefined)(
    `local-file on ${filesystem} on a loop device${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
    () => {
      let mount: LoopMount | undefined;
      beforeAll(async () => {
        mount = await mountLoopFilesystem(filesystem, '512M');
      });
      afterAll(async () => {
        await mount?.dispose();
      });
      const freshRoot = async (): Promise<string> => {
        if (mount === undefined) throw new Error(`the ${filesystem} loop filesystem is not mounted`);
        return mkdtemp(join(mount.mountPoint, 'root-'));
      };

      describeHostBackendConformance(
        `local-file on ${filesystem}`,
        async () => {
          const root = await freshRoot();
          return {
            backend: new LocalFileBackend({ roots: [root] }),
            missing: join(root, 'missing.img'),
            dispose: () => rm(root, { recursive: true, force: true }),
          };
        },
        // Reflinks are the reason to run on these filesystems: a copy here would be a bug.
        { snapshotMethod: 'reflink', fillSize: 1024 * MiB },
      );

      it('shares the volume’s blocks with a reflink snapshot, and a sparse copy still works when asked', async () => {
        const root = await freshRoot();
        try {
          const backend = new LocalFileBackend({ roots: [root] });
          const info = await backend.provision({ name: 'v', size: 64 * MiB });
          const writer = await backend.openWriter(info.locator);
          for (let at = 0; at < 32 * MiB; at += 8 * MiB) await writer.write(pattern(8 * MiB, at), at);
          await writer.sync();
          await writer.close();
          const before = await freeBytes(root);
          const reflink = await backend.snapshot(info.locator, 'instant');
          expect(reflink.method).toBe('reflink');
          // 32 MiB of data shared, not copied: the filesystem lost far less than that.
          expect(before - (await freeBytes(root))).toBeLessThan(8 * MiB);

          const copying = new LocalFileBackend({ roots: [root], snapshotMode: 'copy' });
          const copy = await copying.snapshot(info.locator, 'copied', { allowCopy: true });
          expect(copy.method).toBe('copy');
          expect((await stat(copy.locator)).blocks * 512).toBeLessThan(40 * MiB);
          const [a, b] = [
            await readAll(await backend.openReader(reflink.locator)),
            await readAll(await backend.openReader(copy.locator)),
          ];
          expectBytes(a, b, 'the copy against the reflink');
          expectBytes(a.subarray(8 * MiB, 9 * MiB), pattern(8 * MiB, 8 * MiB).subarray(0, MiB));
        } finally {
          await rm(root, { recursive: true, force: true });
        }
      });
    },
  );
}

async function freeBytes(path: string): Promise<number> {
  const stats = await statfs(path);
  return stats.bavail * stats.bsize;
}
