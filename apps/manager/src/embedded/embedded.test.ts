import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config.js';
import { silentLogger } from '../log.js';
import {
  AGENT_SOURCE_ARGS,
  AGENT_SOURCE_MAIN,
  startTestSystem,
  TEST_KDF,
  type TestSystem,
} from '../testing/embedded.js';
import { startEmbedded } from './start.js';

describe('the embedded system (npm start)', () => {
  let system: TestSystem | undefined;
  afterAll(async () => system?.stop());

  it('makes a local host, target and demo volume with real data once, and finds them again after a restart', async () => {
    system = await startTestSystem({ demo: true });
    const { client, embedded, home } = system;
    const mode = (path: string) => statSync(path).mode & 0o777;
    expect(mode(join(home, 'admin-token'))).toBe(0o600);
    expect(mode(join(home, 'master.key'))).toBe(0o600);
    // The console's first user signs in with the password kept in admin-password.
    expect(mode(join(home, 'admin-password'))).toBe(0o600);
    const password = readFileSync(join(home, 'admin-password'), 'utf8').trim();
    expect(embedded.consoleUser).toEqual({
      name: 'admin',
      passwordFile: join(home, 'admin-password'),
      password,
    });
    expect((await client.signIn({ name: 'admin', password })).user.role).toBe('admin');
    expect(readFileSync(join(home, 'recovery-passphrase'), 'utf8').trim()).toBe(embedded.recoveryPassphrase);

    const hosts = (await client.listHosts()).items;
    expect(hosts).toMatchObject([{ name: 'local', status: 'up' }]);
    expect(hosts[0]!.backends.map((b) => b.backend)).toContain('local-file');
    const targets = (await client.listTargets()).items;
    expect(targets).toMatchObject([{ name: 'local', kind: 'filesystem' }]);
    const volumes = (await client.listVolumes()).items;
    expect(volumes).toMatchObject([
      { name: 'demo', state: 'available', snapshot: 'copy', backup_target_id: targets[0]!.id },
    ]);
    const demo = readFileSync(volumes[0]!.locator!);
    expect(demo.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46])); // the node binary's ELF header
    // A first backup of the demo volume works out of the box.
    const { job } = await client.backupNow(volumes[0]!.id);
    for await (const _ of client.jobEvents(job.id)) {
      // follow the job to its end
    }
    expect((await client.getJob(job.id)).state).toBe('succeeded');

    const firstAgentUrl = hosts[0]!.url;
    await embedded.stop();
    const again = await startEmbedded(parseConfig({ STOWAGE_HOME: home, PORT: '0' }), {
      logger: silentLogger,
      kdf: TEST_KDF,
      agentBin: AGENT_SOURCE_MAIN,
      agentNodeArgs: AGENT_SOURCE_ARGS,
      agentStderr: () => {},
    });
    try {
      expect(again.adminToken).toBe(embedded.adminToken);
      expect(again.recoveryPassphrase).toBeUndefined();
      expect(again.consoleUser.password).toBeUndefined();
      const { ManagerClient } = await import('@stowage/api');
      const restarted = new ManagerClient({ baseUrl: again.manager.url, token: again.adminToken });
      const [host] = (await restarted.listHosts()).items;
      expect(host).toMatchObject({ id: hosts[0]!.id, status: 'up' });
      expect(host!.url === firstAgentUrl || /^http:\/\/127\.0\.0\.1:\d+$/.test(host!.url)).toBe(true);
      expect((await restarted.listTargets()).items.map((t) => t.id)).toEqual([targets[0]!.id]);
      expect((await restarted.listVolumes()).items.map((v) => v.id)).toEqual([volumes[0]!.id]);
      expect((await restarted.listBackups()).items).toMatchObject([
        { state: 'completed', volume_id: volumes[0]!.id },
      ]);
    } finally {
      await again.stop();
    }
    // The database lost (db/ deleted): the next start imports the local repository with the kept passphrase
    // and records its backups again; the passphrase file is left as it was.
    const passphrase = readFileSync(join(home, 'recovery-passphrase'), 'utf8');
    rmSync(join(home, 'db'), { recursive: true, force: true });
    const recovered = await startEmbedded(parseConfig({ STOWAGE_HOME: home, PORT: '0' }), {
      logger: silentLogger,
      kdf: TEST_KDF,
      agentBin: AGENT_SOURCE_MAIN,
      agentNodeArgs: AGENT_SOURCE_ARGS,
      agentStderr: () => {},
    });
    try {
      expect(recovered.recoveryPassphrase).toBeUndefined();
      expect(readFileSync(join(home, 'recovery-passphrase'), 'utf8')).toBe(passphrase);
      const { ManagerClient } = await import('@stowage/api');
      const c = new ManagerClient({ baseUrl: recovered.manager.url, token: recovered.adminToken });
      // The console's admin is made again with the kept password.
      const kept = readFileSync(join(home, 'admin-password'), 'utf8').trim();
      expect((await c.signIn({ name: 'admin', password: kept })).user.name).toBe('admin');
      expect((await c.listTargets()).items).toMatchObject([
        {
          name: 'local',
          repository_id: targets[0]!.repository_id,
          filesystem: { path: join(home, 'targets', 'local') },
        },
      ]);
      expect((await c.listBackups()).items).toMatchObject([
        { state: 'completed', volume_id: volumes[0]!.id },
      ]);
    } finally {
      await recovered.stop();
    }
  }, 180_000);
});
