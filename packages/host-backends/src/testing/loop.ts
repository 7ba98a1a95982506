import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const LOOP_FILESYSTEMS = ['btrfs', 'xfs'] as const;
export type LoopFilesystem = (typeof LOOP_FILESYSTEMS)[number];

const MKFS: Record<LoopFilesystem, { binary: string; args: string[]; package: string }> = {
  btrfs: { binary: 'mkfs.btrfs', args: ['-q', '-f'], package: 'btrfs-progs' },
  // XFS has had reflinks on by default since xfsprogs 5.1; asking keeps older ones honest.
  xfs: { binary: 'mkfs.xfs', args: ['-q', '-f', '-m', 'reflink=1'], package: 'xfsprogs' },
};

/**
 * The reason loop devices (and, when named, a filesystem on one) cannot be made here, or undefined when they
 * can: root, /dev/loop-control, losetup, mount, umount and the mkfs.
 */
export async function loopUnavailableReason(filesystem?: LoopFilesystem): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'loop devices need Linux';
  if (process.getuid?.() !== 0) return 'loop devices need root';
  const missing: string[] = [];
  const binaries = ['losetup', 'mount', 'umount'];
  if (filesystem !== undefined) binaries.push(MKFS[filesystem].binary);
  for (const binary of binaries) {
    try {
      await run('sh', ['-c', `command -v ${binary}`]);
    } catch {
      missing.push(binary);
    }
  }
  if (missing.length > 0) {
    const packages = missing.map((binary) =>
      binary.startsWith('mkfs.') && filesystem !== undefined ? MKFS[filesystem].package : 'mount',
    );
    return `${missing.join(', ')} not installed (Debian: apt-get install ${[...new Set(packages)].join(' ')})`;
  }
  try {
    await access('/dev/loop-control');
  } catch {
    return '/dev/loop-control is missing (no loop driver, or a container without it)';
  }
  return undefined;
}

export interface LoopDevice {
  /** `/dev/loopN`. */
  readonly device: string;
  /** The temp directory holding the backing image (and the mount point, for filesystems). */
  readonly directory: string;
  /** Detaches the device and removes the directory; safe to call twice. */
  dispose(): Promise<void>;
}

export interface LoopMount extends LoopDevice {
  /** Where the filesystem is mounted. */
  readonly mountPoint: string;
  readonly filesystem: LoopFilesystem;
}

/**
 * Attaches a sparse image of `size` (truncate syntax, e.g. `64M`) to a free loop device. If this process
 * dies before `dispose`, a watchdog detaches it (and unmounts, for filesystems) and removes the directory.
 */
export async function createLoopDevice(size: string): Promise<LoopDevice> {
  return attach(size, undefined);
}

/**
 * Makes a `filesystem` on a fresh loop device and mounts it under a temp directory; `dispose` unmounts,
 * detaches and removes everything, and is what an afterAll must call however the tests went.
 */
export async function mountLoopFilesystem(filesystem: LoopFilesystem, size = '512M'): Promise<LoopMount> {
  const loop = await attach(size, filesystem);
  return loop as LoopMount;
}

async function attach(size: string, filesystem: LoopFilesystem | undefined): Promise<LoopDevice | LoopMount> {
  const directory = await mkdtemp(join(tmpdir(), `stowage-loop-${filesystem ?? 'block'}-`));
  const image = join(directory, 'image');
  const mountPoint = join(directory, 'mnt');
  let device: string | undefined;
  let mounted = false;
  let watchdog: ChildProcess | undefined;
  let disposed = false;

  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    if (watchdog?.pid !== undefined) {
      try {
        process.kill(-watchdog.pid); // its whole group: sh and the tail it waits on
      } catch {}
    }
    const problems: string[] = [];
    if (mounted) {
      await run('umount', [mountPoint]).catch(async (error: unknown) => {
        // Something still holds it (a leaked handle): detach it lazily rather than leave it behind.
        problems.push(`umount ${mountPoint}: ${(error as Error).message}`);
        await run('umount', ['-l', mountPoint]).catch(() => {});
      });
    }
    if (device !== undefined) {
      await run('losetup', ['-d', device]).catch((error: unknown) => {
        problems.push(`losetup -d ${device}: ${(error as Error).message}`);
      });
    }
    await rm(directory, { recursive: true, force: true }).catch(() => {});
    if (problems.length > 0) throw new Error(`loop cleanup: ${problems.join('; ')}`);
  };

  try {
    await run('truncate', ['-s', size, image]);
    device = (await run('losetup', ['-f', '--show', image])).stdout.trim();
    // Killed test runs must not leave devices and mounts behind; a normal dispose kills the watchdog first,
    // so it never touches a device number another run has taken since.
    watchdog = spawn(
      'sh',
      [
        '-c',
        'tail --pid="$1" -f /dev/null; umount "$3" 2>/dev/null; losetup -d "$2"; rm -rf "$4"',
        'stowage-loop-watchdog',
        String(process.pid),
        device,
        mountPoint,
        directory,
      ],
      { detached: true, stdio: 'ignore' },
    );
    watchdog.unref();
    if (filesystem === undefined) return { device, directory, dispose };
    const mkfs = MKFS[filesystem];
    await run(mkfs.binary, [...mkfs.args, device]);
    await mkdir(mountPoint);
    await run('mount', ['-t', filesystem, device, mountPoint]);
    mounted = true;
    return { device, directory, mountPoint, filesystem, dispose };
  } catch (error) {
    await dispose().catch(() => {});
    throw error;
  }
}
