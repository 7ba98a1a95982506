import { mkdir, mkdtemp, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHostBackendError } from './errors.js';
import { type CommandResult, type CommandRunner, IscsiBackend, type IscsiTarget } from './iscsi.js';
import { describeHostBackendConformance, expectBytes, pattern, readAll } from './testing/index.js';

// The kernel initiator cannot run here (no iSCSI target, no iscsi_tcp module in this VM), so iscsiadm is
// replaced by a recording fake: on --login it creates the LUN's /dev/disk/by-path link, pointing at an image
// file that stands in for the block device; on --logout it removes it. The backend under test is the real
// one; what is asserted is the exact iscsiadm command sequence on every path.

const MiB = 1024 * 1024;
const TARGET: IscsiTarget = { portal: '10.0.0.5:3260', iqn: 'iqn.2001-05.com.example:vol1', lun: 0 };
const SECOND_LUN: IscsiTarget = { ...TARGET, lun: 1 };

interface FakeIscsiadm {
  run: CommandRunner;
  calls: string[];
  /** Exit code of the next login (then 0 again). */
  loginExit?: number;
  /** Log in without the device ever appearing. */
  noDevice?: boolean;
}

async function fakeIscsiadm(byPath: string, images: string, luns: IscsiTarget[]): Promise<FakeIscsiadm> {
  for (const lun of luns) {
    const image = join(images, `${lun.iqn}-${lun.lun}.img`);
    await writeFile(image, '');
    await truncate(image, 8 * MiB);
  }
  const fake: FakeIscsiadm = {
    calls: [],
    run: async (argv): Promise<CommandResult> => {
      fake.calls.push(argv.join(' '));
      const iqn = argv[argv.indexOf('-T') + 1]!;
      const portal = argv[argv.indexOf('-p') + 1]!;
      const mine = luns.filter((l) => l.iqn === iqn && l.portal === portal);
      if (argv.includes('--login')) {
        const code = fake.loginExit ?? 0;
        fake.loginExit = undefined;
        if (code !== 0)
          return { exitCode: code, stdout: '', stderr: 'iscsiadm: Could not log into all portals\n' };
        if (!fake.noDevice) {
          for (const lun of mine) {
            await symlink(join(images, `${lun.iqn}-${lun.lun}.img`), linkOf(byPath, lun)).catch(() => {});
          }
        }
        return {
          exitCode: 0,
          stdout: `Login to [iface: default, target: ${iqn}, portal: ${portal}] successful.\n`,
          stderr: '',
        };
      }
      if (argv.includes('--logout')) {
        for (const lun of mine) await unlink(linkOf(byPath, lun)).catch(() => {});
        return { exitCode: 0, stdout: '', stderr: '' };
      }
      return { exitCode: 7, stdout: '', stderr: 'unexpected command' };
    },
  };
  return fake;
}

function linkOf(byPath: string, lun: IscsiTarget): string {
  return join(byPath, `ip-${lun.portal}-iscsi-${lun.iqn}-lun-${lun.lun}`);
}

const login = `iscsiadm -m node -T ${TARGET.iqn} -p ${TARGET.portal} --login`;
const logout = `iscsiadm -m node -T ${TARGET.iqn} -p ${TARGET.portal} --logout`;

let dir: string;
let byPath: string;
let fake: FakeIscsiadm;
let backend: IscsiBackend;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-iscsi-'));
  byPath = join(dir, 'by-path');
  await mkdir(byPath);
  await mkdir(join(dir, 'images'));
  fake = await fakeIscsiadm(byPath, join(dir, 'images'), [TARGET, SECOND_LUN]);
  backend = new IscsiBackend({
    targets: [TARGET, SECOND_LUN],
    run: fake.run,
    byPathDir: byPath,
    acceptRegularFiles: true,
    deviceTimeoutMs: 200,
    pollIntervalMs: 5,
  });
});

afterEach(() => rm(dir, { recursive: true, force: true }));

describe('iscsi backend (iscsiadm is a recording fake; the LUN is an image file)', () => {
  it('logs in, reads, and logs out when the reader closes', async () => {
    const locator = linkOf(byPath, TARGET);
    const reader = await backend.openReader(locator);
    expect(reader.size).toBe(8 * MiB);
    expect(fake.calls).toEqual([login]);
    await reader.close();
    expect(fake.calls).toEqual([login, logout]);
  });

  it('writes, and logs out when the writer closes', async () => {
    const locator = linkOf(byPath, TARGET);
    const writer = await backend.openWriter(locator);
    await writer.write(pattern(4096, 1), 0);
    await writer.sync();
    await writer.close();
    const reader = await backend.openReader(locator);
    expectBytes((await readAll(reader)).subarray(0, 4096), pattern(4096, 1));
    await reader.close();
    expect(fake.calls).toEqual([login, logout, login, logout]);
  });

  it('shares one login between LUNs of a target and logs out after the last close', async () => {
    const a = await backend.openReader(linkOf(byPath, TARGET));
    const b = await backend.openReader(linkOf(byPath, SECOND_LUN));
    await a.close();
    expect(fake.calls).toEqual([login]);
    await b.close();
    expect(fake.calls).toEqual([login, logout]);
  });

  it('logs out when the device never appears (timeout)', async () => {
    fake.noDevice = true;
    const error = await backend.openReader(linkOf(byPath, TARGET)).catch((e: unknown) => e);
    expect(isHostBackendError(error, 'io')).toBe(true);
    expect((error as Error).message).toMatch(/did not appear within 0.2 s/);
    expect(fake.calls).toEqual([login, logout]);
  });

  it('logs out when cancelled while waiting for the device, and after a cancelled job closes its reader', async () => {
    fake.noDevice = true;
    const controller = new AbortController();
    const opening = backend.openReader(linkOf(byPath, TARGET), { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(opening).rejects.toThrow(/cancelled/);
    expect(fake.calls).toEqual([login, logout]);

    fake.noDevice = false;
    const reader = await backend.openReader(linkOf(byPath, TARGET), { signal: new AbortController().signal });
    await reader.close(); // what a cancelled job's clean-up does
    expect(fake.calls).toEqual([login, logout, login, logout]);
  });

  it('fails a login with the cause, without a logout it does not need', async () => {
    fake.loginExit = 24;
    const error = await backend.openReader(linkOf(byPath, TARGET)).catch((e: unknown) => e);
    expect(isHostBackendError(error, 'io')).toBe(true);
    expect((error as Error).message).toContain('Could not log into all portals (exit code 24)');
    fake.loginExit = 21;
    const missing = await backend.openReader(linkOf(byPath, TARGET)).catch((e: unknown) => e);
    expect(isHostBackendError(missing, 'not-found')).toBe(true);
    expect((missing as Error).message).toContain('iscsiadm -m discovery');
    expect(fake.calls).toEqual([login, login]);
  });

  it("uses a session that was already there but never logs it out (it is someone else's)", async () => {
    fake.loginExit = 15;
    const reader = await backend.openReader(linkOf(byPath, TARGET)).catch((e: unknown) => e);
    expect(isHostBackendError(reader, 'io')).toBe(true); // the fake made no device for an existing session
    expect(fake.calls).toEqual([login]);
  });

  it('logs out of every open session when the agent shuts down, and refuses opens after', async () => {
    const reader = await backend.openReader(linkOf(byPath, TARGET));
    await backend.close();
    expect(fake.calls).toEqual([login, logout]);
    await reader.close(); // the late close of a job being torn down does not log out twice
    expect(fake.calls).toEqual([login, logout]);
    await expect(backend.openReader(linkOf(byPath, TARGET))).rejects.toThrow(/shut down/);
  });

  it('refuses LUNs it was not given before running any command', async () => {
    for (const locator of [
      '/dev/sda',
      join(byPath, 'ip-10.0.0.9:3260-iscsi-iqn.x:y-lun-0'),
      `${byPath}/../x`,
      'rel',
    ]) {
      const error = await backend.openReader(locator).catch((e: unknown) => e);
      expect(isHostBackendError(error)).toBe(true);
      expect(['outside-roots', 'invalid-locator']).toContain((error as { kind: string }).kind);
    }
    expect(fake.calls).toEqual([]);
    await expect(backend.provision({ name: 'x', size: MiB })).rejects.toMatchObject({ kind: 'unsupported' });
    await expect(backend.snapshot(linkOf(byPath, TARGET), 's')).rejects.toMatchObject({
      kind: 'unsupported',
    });
  });
});

describeHostBackendConformance(
  'iscsi (iscsiadm is a recording fake; the LUN is an image file)',
  async () => {
    const base = await mkdtemp(join(tmpdir(), 'stowage-iscsi-conf-'));
    const links = join(base, 'by-path');
    await mkdir(links);
    await mkdir(join(base, 'images'));
    const lun: IscsiTarget = { portal: '10.0.0.7:3260', iqn: 'iqn.2001-05.com.example:conf', lun: 3 };
    const missingLun: IscsiTarget = { ...lun, iqn: 'iqn.2001-05.com.example:gone' };
    const conformance = await fakeIscsiadm(links, join(base, 'images'), [lun]);
    const run: CommandRunner = async (argv, options) =>
      argv.includes(missingLun.iqn)
        ? { exitCode: 21, stdout: '', stderr: 'No records found' }
        : conformance.run(argv, options);
    return {
      backend: new IscsiBackend({
        targets: [lun, missingLun],
        run,
        byPathDir: links,
        acceptRegularFiles: true,
        deviceTimeoutMs: 500,
        pollIntervalMs: 5,
      }),
      missing: linkOf(links, missingLun),
      existing: linkOf(links, lun),
      dispose: () => rm(base, { recursive: true, force: true }),
    };
  },
  { noSpaceUntestable: 'a LUN has a fixed size; writes past it are invalid-argument, never no-space' },
);
