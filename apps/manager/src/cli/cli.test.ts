import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { API_ERROR_CODES, ApiError, type ManagedJob } from '@stowage/api';
import { describe, expect, it } from 'vitest';
import { runCli } from '../testing/cli.js';
import { parseCommand, parseSize } from './args.js';
import { ALL_COMMANDS, COMMANDS } from './command-specs.js';
import { clientPrefix, startBannerText } from './commands/server.js';
import { createdTargetText, targetRequest } from './commands/targets.js';
import { resolveConnection } from './context.js';
import { API_ERROR_EXIT, describeFailure, EXIT, UsageError } from './exit-codes.js';
import { formatBytes, formatDuration, formatTable, jsonText, printable } from './output.js';
import { progressLine } from './progress.js';

const cli = (argv: string[], env: NodeJS.ProcessEnv = {}) => runCli(argv, env);

describe('argument parsing', () => {
  it('parses options and positionals against the spec', () => {
    const parsed = parseCommand(COMMANDS.volumeCreate, ['web', '--host', 'local', '--size', '10G', '--json']);
    expect(parsed).toEqual({
      help: false,
      values: { host: 'local', size: '10G', json: true },
      positionals: ['web'],
    });
  });

  it('lets --help win over a half-typed line', () => {
    expect(parseCommand(COMMANDS.volumeCreate, ['--bogus', '-h'])).toEqual({ help: true });
  });

  it.each([
    [['token', 'create'], /^manager: missing NAME; see "manager token create --help"\n$/],
    [['token', 'list', 'extra'], /unexpected argument "extra" \(manager token list takes no arguments\)/],
    [['token', 'list', '--bogus'], /unknown option --bogus for "manager token list"/],
    [['token', 'list', '--limit'], /option --limit needs a value \(--limit N\)/],
    [['token', 'list', '--all=yes'], /option --all takes no value/],
    [['token', 'list', '--all', '--limit', '5'], /options --all and --limit exclude each other/],
    [['token', 'list', '--limit', '0'], /--limit must be an integer from 1 to 500/],
    [['volume', 'get', 'not-an-id'], /ID must be an id \(a UUID\), got "not-an-id"/],
    [['volume', 'create', 'v', '--host', 'h', '--size', 'lots'], /--size must be a size/],
    [
      ['volume', 'create', 'v', '--host', 'h', '--size', '1G', '--backend', 'tape'],
      /--backend must be one of/,
    ],
    [['volume', 'creat'], /unknown command "volume creat" \(did you mean "manager volume create"\?\)/],
    [['volum'], /unknown command "volum"/],
    [['volume'], /"manager volume" needs a command: create, adopt, list, get, schedule, delete/],
    [
      ['backup', 'now', '7d3c0a51-7a4e-4f43-9d3e-2a1e5a7f6f10', '--snapshot', 'maybe'],
      /--snapshot must be one of on, copy, off/,
    ],
    [['target', 'create', 't'], /one location: --path DIR or --s3-bucket BUCKET/],
    [['target', 'create', 't', '--path', '/x', '--s3-bucket', 'b'], /one location/],
    [['target', 'create', 't', '--path', '/x', '--path-style'], /--path-style is for S3 targets/],
    [['target', 'create', 't', '--path', '/x', '--avg-chunk-size', '3M'], /must be 512K, 1M, 2M or 4M/],
    [
      ['target', 'create', 't', '--s3-bucket', 'b', '--access-key-id', 'k'],
      /secret key: --secret-access-key-file/,
    ],
    [['host', 'add', 'h'], /missing --agent-url URL/],
  ])('%j is a usage error in one line', async (argv, message) => {
    const result = await cli(argv, { MANAGER_URL: 'http://127.0.0.1:9', MANAGER_TOKEN: 'stw_test' });
    expect(result.code).toBe(EXIT.usage);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr.split('\n')).toHaveLength(2);
  });

  it('reads sizes as people write them', () => {
    expect(parseSize('size', '1048576')).toBe(1048576);
    expect(parseSize('size', '512K')).toBe(512 * 1024);
    expect(parseSize('size', '10G')).toBe(10 * 1024 ** 3);
    expect(parseSize('size', '4MiB')).toBe(4 * 1024 ** 2);
    expect(parseSize('size', '1.5k')).toBe(1536);
    expect(() => parseSize('size', '0')).toThrow(UsageError);
    expect(() => parseSize('size', '-1G')).toThrow(UsageError);
  });

  it('takes the S3 secret from the environment or a file, never a flag', () => {
    const body = targetRequest(
      's3',
      { 's3-bucket': 'backups', 's3-endpoint': 'http://minio:9000', 'path-style': true },
      { env: { AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' }, cwd: '/' },
    );
    expect(body).toEqual({
      kind: 's3',
      name: 's3',
      s3: {
        bucket: 'backups',
        endpoint: 'http://minio:9000',
        region: 'us-east-1',
        prefix: '',
        path_style: true,
      },
      credentials: { access_key_id: 'id', secret_access_key: 'secret' },
    });
    expect(Object.keys(COMMANDS.targetCreate.options)).not.toContain('secret-access-key');
  });
});

describe('help', () => {
  it.each(ALL_COMMANDS.map((c) => c.name))(
    '"manager %s --help" prints its usage and exits 0',
    async (name) => {
      const result = await cli([...name.split(' '), '--help']);
      expect(result).toMatchObject({ code: EXIT.ok, stderr: '' });
      expect(result.stdout).toMatch(new RegExp(`^Usage: manager ${name}`));
      expect(result.stdout).toContain('Exit codes:');
    },
  );

  it('prints the overview with every command, and exits 2 without a command', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(EXIT.ok);
    for (const c of ALL_COMMANDS) expect(help.stdout).toContain(`manager ${c.name} `);
    expect((await cli([])).code).toBe(EXIT.usage);
    expect((await cli(['help', 'backup', 'now'])).stdout).toMatch(/^Usage: manager backup now/);
    expect((await cli(['job', '--help'])).stdout).toMatch(/^Usage: manager job <command>/);
  });

  it('prints the version', async () => {
    expect((await cli(['--version'])).stdout).toMatch(/^manager \d+\.\d+\.\d+ \(node v/);
  });
});

describe('exit codes', () => {
  it('maps every API error code', () => {
    for (const code of API_ERROR_CODES) expect(API_ERROR_EXIT[code]).toBeTypeOf('number');
    const exit = (code: (typeof API_ERROR_CODES)[number]) => describeFailure(new ApiError(code, 'x')).code;
    expect(exit('invalid_request')).toBe(2);
    expect(exit('not_found')).toBe(3);
    expect(exit('conflict')).toBe(4);
    expect(exit('unauthorized')).toBe(5);
    expect(exit('forbidden')).toBe(5);
    expect(exit('unavailable')).toBe(6);
    expect(exit('internal')).toBe(1);
  });

  it('names the running job of a conflict and the first invalid field', () => {
    const conflict = new ApiError('conflict', 'a backup of volume v is already running', { job_id: 'j-1' });
    expect(describeFailure(conflict).message).toBe('a backup of volume v is already running (job j-1)');
    const invalid = new ApiError('invalid_request', 'invalid body', {
      issues: [{ path: 'name', message: 'must not contain control characters' }],
    });
    expect(describeFailure(invalid).message).toBe('invalid body (name: must not contain control characters)');
  });

  it('says an unexpected error is one, and how to see its stack', () => {
    expect(describeFailure(new TypeError('boom'))).toEqual({
      code: EXIT.failure,
      message: 'unexpected error: TypeError: boom (STOWAGE_DEBUG=1 prints the stack)',
    });
  });
});

describe('connection', () => {
  it('prefers flags, then MANAGER_TOKEN, then the home', () => {
    const c = resolveConnection(
      { url: 'http://m:1' },
      { env: { MANAGER_TOKEN: ' t1 \n', MANAGER_URL: 'http://x' }, cwd: '/' },
    );
    expect(c).toEqual({ baseUrl: 'http://m:1', token: 't1' });
    expect(() => resolveConnection({}, { env: { STOWAGE_HOME: '/nonexistent' }, cwd: '/' })).toThrow(
      /no token: set MANAGER_TOKEN .*\/nonexistent\/admin-token/,
    );
    expect(() =>
      resolveConnection({}, { env: { MANAGER_URL: 'ftp://x', MANAGER_TOKEN: 't' }, cwd: '/' }),
    ).toThrow(/http:\/\/ or https:\/\//);
  });
});

const job: ManagedJob = {
  id: '0b0c6a51-7a4e-4f43-9d3e-2a1e5a7f6f10',
  kind: 'backup',
  state: 'running',
  host_id: null,
  volume_id: null,
  backup_id: null,
  created_at: '2025-01-31T14:05:09.000Z',
  started_at: '2025-01-31T14:05:10.000Z',
  finished_at: null,
  last_event_at: null,
  progress: {
    phase: 'transfer',
    bytes_done: 32 * 1024 ** 2,
    bytes_total: 64 * 1024 ** 2,
    rate: 4 * 1024 ** 2,
    eta_seconds: 8,
  },
  error: null,
};

describe('output', () => {
  it('aligns tables and escapes what a terminal would act on', () => {
    const text = formatTable(
      ['ID', 'NAME', 'SIZE'],
      [
        ['a', 'web\u001b[31m', 1],
        ['bbbb', null, 22],
      ],
    );
    expect(text).toBe('ID    NAME         SIZE\na     web\\x1b[31m  1\nbbbb  -            22\n');
    expect(printable('a\nb\u202e')).toBe('a\\nb\\u202e');
    expect(jsonText({ s: '\u2028' })).toBe('{"s":"\\u2028"}');
  });

  it('formats bytes and durations', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(10 * 1024 ** 3)).toBe('10.0 GiB');
    expect(formatDuration(8)).toBe('8s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(3 * 3600 + 60)).toBe('3h01m');
    expect(formatDuration(null)).toBe('--');
  });

  it('draws the progress bar: bytes done and total, rate, ETA, within the width', () => {
    const line = progressLine(job, 200);
    expect(line).toBe(
      `backup transfer [${'#'.repeat(15)}${'.'.repeat(15)}] 50.0% 32.0 MiB/64.0 MiB 4.0 MiB/s ETA 8s`,
    );
    expect(progressLine(job, 40)).toHaveLength(39);
  });

  it("start's banner has the URL, the console's sign-in, the token file, the passphrase once, and two commands", () => {
    const text = startBannerText({
      url: 'http://127.0.0.1:8080',
      home: '/h',
      admin_token_file: '/h/admin-token',
      console_user: 'admin',
      console_password_file: '/h/admin-password',
      console_password: 'pw-123',
      recovery_passphrase: 'abcde-fghij',
      recovery_passphrase_file: '/h/recovery-passphrase',
      demo_volume_id: 'v-1',
      examples: ['npx manager volume list', 'npx manager backup now v-1 --watch'],
    });
    expect(text).toContain('http://127.0.0.1:8080');
    expect(text).toContain('/h/admin-token');
    expect(text).toContain(
      'console:     http://127.0.0.1:8080/ (sign in as admin with pw-123; the password is in /h/admin-password)',
    );
    expect(text).toContain('abcde-fghij');
    expect(text).toContain('shown once; also kept in /h/recovery-passphrase');
    expect(text).toContain('npx manager volume list');
    expect(text).toContain('npx manager backup now v-1 --watch');
    const again = startBannerText({
      url: 'u',
      home: '/h',
      admin_token_file: '/h/admin-token',
      console_user: 'admin',
      console_password_file: '/h/admin-password',
      console_password: null,
      recovery_passphrase: null,
      recovery_passphrase_file: null,
      demo_volume_id: null,
      examples: [],
    });
    expect(again).not.toContain('passphrase');
    expect(again).toContain('(sign in as admin; the password is in /h/admin-password)');
  });

  it('names the home and port in the examples only when they are not the defaults', () => {
    expect(clientPrefix('/w/.stowage', 'http://127.0.0.1:8080', '/w')).toBe('');
    expect(clientPrefix('/tmp/h', 'http://127.0.0.1:9090', '/w')).toBe('STOWAGE_HOME=/tmp/h PORT=9090 ');
  });

  it('warns beside a generated passphrase only', () => {
    const target = { id: 't', name: 'n', kind: 'filesystem', filesystem: { path: '/p' }, s3: null } as never;
    expect(createdTargetText({ target, recovery_passphrase: 'p-1' })).toContain('WARNING: shown once');
    expect(createdTargetText({ target, recovery_passphrase: null })).not.toContain('WARNING');
  });
});

describe('docs/manager-cli.md', () => {
  const doc = readFileSync(
    fileURLToPath(new URL('../../../../docs/manager-cli.md', import.meta.url)),
    'utf8',
  );
  it('names every command, every option and every exit code', () => {
    for (const spec of ALL_COMMANDS) {
      expect(doc).toContain(`manager ${spec.name}`);
      for (const option of Object.keys(spec.options))
        expect(doc, `${spec.name} --${option}`).toContain(`--${option}`);
    }
    for (const [name, code] of Object.entries(EXIT))
      expect(doc).toMatch(new RegExp(`\\| ${code} +\\| \`${name}\``));
  });
});

const bin = fileURLToPath(new URL('../../bin/manager.cjs', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url)));

describe('the binary', () => {
  it.skipIf(!built)(
    'bin/manager.cjs --help runs the built CLI (skipped: dist/ not built, run "npm run build")',
    () => {
      const result = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
      expect(result.status).toBe(0);
      expect(result.stdout).toMatch(/^Usage: manager <command>/);
    },
  );
});
