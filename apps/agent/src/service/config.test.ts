import { describe, expect, it } from 'vitest';
import { ConfigError, configHelp, loadAgentConfig, redactConfig, SETTINGS } from './config.js';

const TOKEN = 'a'.repeat(40);
const files: Record<string, string> = {
  '/etc/stowage/agent.json': JSON.stringify({
    listen: '0.0.0.0:9000',
    token_file: '/etc/stowage/token',
    backends: { local_file: { roots: ['/srv/images'] } },
    concurrency: 3,
  }),
  '/etc/stowage/token': `${'t'.repeat(48)}\n`,
  '/etc/stowage/short': 'short\n',
};
const readFile = async (path: string) => {
  const text = files[path];
  if (text === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
  return text;
};

async function load(env: Record<string, string>, configPath?: string) {
  return loadAgentConfig({ env, readFile, ...(configPath === undefined ? {} : { configPath }) });
}

async function problem(env: Record<string, string>, configPath?: string): Promise<string> {
  const error = await load(env, configPath).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return (error as Error).message;
}

describe('agent serve configuration', () => {
  it('takes defaults, then the file, then AGENT_* variables', async () => {
    const { config } = await load({ AGENT_CONCURRENCY: '5' }, '/etc/stowage/agent.json');
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(config.token).toBe('t'.repeat(48));
    expect(config.concurrency).toBe(5);
    expect(config.backends.localFile).toEqual({ roots: ['/srv/images'], snapshotMode: 'auto' });
    expect(config.shutdownGraceSeconds).toBe(30);
    expect(config.manager).toBeUndefined();

    const fromEnv = await load({
      AGENT_CONFIG: '/etc/stowage/agent.json',
      AGENT_LISTEN: '[::1]:7481',
      AGENT_BLOCK_DEVICES: '/dev/vdb:/dev/vdc',
      AGENT_MANAGER_URL: 'https://manager.example:7470/',
      AGENT_MANAGER_TOKEN: TOKEN,
    });
    expect(fromEnv.config.listen).toEqual({ host: '::1', port: 7481 });
    expect(fromEnv.config.backends.block).toEqual({ devices: ['/dev/vdb', '/dev/vdc'] });
    expect(fromEnv.config.manager).toEqual({ url: 'https://manager.example:7470', token: TOKEN });
  });

  it('checks host paths when it can: a root must be a directory, a missing device is a warning', async () => {
    const kinds: Record<string, 'dir' | 'file' | 'block'> = {
      '/srv/images': 'dir',
      '/srv/file.img': 'file',
      '/dev/vdb': 'block',
    };
    const stat = async (path: string) => {
      const kind = kinds[path];
      if (kind === undefined) throw Object.assign(new Error('missing'), { code: 'ENOENT' });
      return { isDirectory: () => kind === 'dir', isBlockDevice: () => kind === 'block' };
    };
    const checked = (env: Record<string, string>) => loadAgentConfig({ env, readFile, stat });
    const ok = await checked({
      AGENT_TOKEN: TOKEN,
      AGENT_LOCAL_FILE_ROOTS: '/srv/images',
      AGENT_BLOCK_DEVICES: '/dev/vdb:/dev/vdz',
    });
    expect(ok.warnings).toEqual(['backends.block.devices: /dev/vdz is not there (yet)']);
    const bad = await checked({
      AGENT_TOKEN: TOKEN,
      AGENT_LOCAL_FILE_ROOTS: '/srv/missing:/srv/file.img',
    }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ConfigError);
    expect((bad as Error).message).toContain('/srv/missing: cannot use it (ENOENT)');
    expect((bad as Error).message).toContain('/srv/file.img is not a directory');
  });

  it('names each bad setting and where it came from', async () => {
    expect(await problem({ AGENT_LOCAL_FILE_ROOTS: '/srv' })).toMatch(/token: required/);
    expect(await problem({ AGENT_TOKEN: TOKEN })).toMatch(/backends: configure at least one/);
    expect(await problem({ AGENT_TOKEN: 'short', AGENT_LOCAL_FILE_ROOTS: '/srv' })).toMatch(
      /AGENT_TOKEN: must be at least 32/,
    );
    expect(await problem({ AGENT_TOKEN: TOKEN, AGENT_LOCAL_FILE_ROOTS: 'relative' })).toMatch(
      /must be an absolute path/,
    );
    expect(
      await problem({ AGENT_TOKEN: TOKEN, AGENT_LOCAL_FILE_ROOTS: '/srv', AGENT_CONCURRENCY: 'two' }),
    ).toMatch(/AGENT_CONCURRENCY: must be an integer, got "two"/);
    expect(
      await problem({ AGENT_TOKEN: TOKEN, AGENT_LOCAL_FILE_ROOTS: '/srv', AGENT_LISTEN: 'localhost' }),
    ).toMatch(/AGENT_LISTEN: must be HOST:PORT/);
    expect(
      await problem({
        AGENT_TOKEN: TOKEN,
        AGENT_LOCAL_FILE_ROOTS: '/srv',
        AGENT_MANAGER_URL: 'https://m.example',
      }),
    ).toMatch(/manager.token: required with a manager URL/);
    expect(await problem({ AGENT_TOKEN: TOKEN }, '/nope.json')).toMatch(
      /cannot read the config file \/nope.json: ENOENT/,
    );
    files['/typo.json'] = JSON.stringify({ token: TOKEN, backend: {} });
    expect(await problem({}, '/typo.json')).toMatch(/Unrecognized key.*backend/);
    files['/iscsi.json'] = JSON.stringify({
      token: TOKEN,
      backends: {
        iscsi: { targets: [{ portal: 'san.example:3260', iqn: 'iqn.2001-05.com.example:v', lun: 0 }] },
      },
    });
    expect(await problem({}, '/iscsi.json')).toMatch(/backends.iscsi.targets.0.portal.*must be IP:PORT/);
    files['/bad.json'] = '{ "token": ';
    expect(await problem({}, '/bad.json')).toMatch(/not valid JSON/);
  });

  it('reads secrets from files, refuses both forms at once, and warns of unknown AGENT_ variables', async () => {
    const base = { AGENT_LOCAL_FILE_ROOTS: '/srv' };
    expect((await load({ ...base, AGENT_TOKEN_FILE: '/etc/stowage/token' })).config.token).toBe(
      't'.repeat(48),
    );
    expect(await problem({ ...base, AGENT_TOKEN: TOKEN, AGENT_TOKEN_FILE: '/etc/stowage/token' })).toMatch(
      /not both/,
    );
    expect(await problem({ ...base, AGENT_TOKEN_FILE: '/etc/stowage/short' })).toMatch(/at least 32/);
    expect(await problem({ ...base, AGENT_TOKEN_FILE: '/etc/stowage/gone' })).toMatch(
      /cannot read \/etc\/stowage\/gone/,
    );
    const { warnings } = await load({ ...base, AGENT_TOKEN: TOKEN, AGENT_CONCURENCY: '4' });
    expect(warnings).toEqual(['unknown environment variable AGENT_CONCURENCY is ignored']);
  });

  it('takes an allow-list of S3 endpoints as origins', async () => {
    const base = { AGENT_CONFIG: '/etc/stowage/agent.json' };
    const { config } = await load({
      ...base,
      AGENT_S3_ENDPOINTS: 'https://s3.example.com, http://10.0.0.5:7480/',
    });
    expect(config.s3Endpoints).toEqual(['https://s3.example.com', 'http://10.0.0.5:7480']);
    expect(await problem({ ...base, AGENT_S3_ENDPOINTS: 'https://s3.example.com/bucket' })).toMatch(
      /AGENT_S3_ENDPOINTS.*scheme:\/\/host/,
    );
    expect((await load(base)).config.s3Endpoints).toBeUndefined();
  });

  it('redacts every secret from what it logs', async () => {
    const { config } = await load({
      AGENT_TOKEN: TOKEN,
      AGENT_LOCAL_FILE_ROOTS: '/srv',
      AGENT_MANAGER_URL: 'https://m.example',
      AGENT_MANAGER_TOKEN: 'm'.repeat(40),
    });
    const logged = JSON.stringify(redactConfig(config));
    expect(logged).not.toContain(TOKEN);
    expect(logged).not.toContain('m'.repeat(40));
    expect(logged).toContain('https://m.example');
  });

  it('documents every environment variable in --help', () => {
    const help = configHelp();
    for (const setting of SETTINGS) {
      expect(help).toContain(setting.env);
      expect(help).toContain(`(config file: ${setting.key})`);
    }
  });
});
