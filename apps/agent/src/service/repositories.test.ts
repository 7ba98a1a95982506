import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApiError } from '@stowage/api';
import { Repository } from '@stowage/engine';
import { TEST_CHUNKER_PARAMS, TEST_KDF, TEST_PASSPHRASE } from '@stowage/engine/testing';
import { FsObjectStore } from '@stowage/object-store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentMetrics } from './metrics.js';
import { RepositoryAccess } from './repositories.js';

let base: string;
let roots: string;
let outside: string;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'stowage-agent-repos-'));
  roots = join(base, 'repos');
  outside = join(base, 'elsewhere');
  await mkdir(roots);
  await mkdir(outside);
});

afterEach(() => rm(base, { recursive: true, force: true }));

const key = Buffer.alloc(32, 1).toString('base64');
const fileTarget = (path: string) => ({ repository: pathToFileURL(path).href, target_key: key });

function codeOf(run: () => void): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof ApiError) return error.code;
    throw error;
  }
}

describe('RepositoryAccess', () => {
  it('confines file repositories to the repository roots, symlinks included', async () => {
    const access = new RepositoryAccess({ repositoryRoots: [roots] });
    await symlink(outside, join(roots, 'escape'));
    expect(codeOf(() => access.check(fileTarget(join(roots, 'a'))))).toBeUndefined();
    expect(codeOf(() => access.check(fileTarget(join(roots, 'new', 'deeper'))))).toBeUndefined();
    expect(codeOf(() => access.check(fileTarget(outside)))).toBe('forbidden');
    expect(codeOf(() => access.check(fileTarget(join(roots, 'escape', 'repo'))))).toBe('forbidden');
    expect(codeOf(() => access.check({ repository: 'file:///etc', target_key: key }))).toBe('forbidden');
    expect(codeOf(() => access.check({ repository: 'ftp://host/x', target_key: key }))).toBe(
      'invalid_request',
    );
    expect(codeOf(() => access.check({ repository: 'not a url', target_key: key }))).toBe('invalid_request');
    expect(
      codeOf(() => new RepositoryAccess({ repositoryRoots: [] }).check(fileTarget(join(roots, 'a')))),
    ).toBe('forbidden');
  });

  it('needs credentials for s3 repositories and puts no limit on their bucket', () => {
    const access = new RepositoryAccess({ repositoryRoots: [] });
    const s3 = { repository: 's3://bucket/prefix?region=us-east-1', target_key: key };
    expect(codeOf(() => access.check(s3))).toBe('invalid_request');
    expect(
      codeOf(() => access.check({ ...s3, credentials: { access_key_id: 'a', secret_access_key: 'b' } })),
    ).toBeUndefined();
  });

  it('allows only the S3 endpoints it is told to, when told (AGENT_S3_ENDPOINTS)', () => {
    const access = new RepositoryAccess({
      repositoryRoots: [],
      s3Endpoints: ['https://s3.example.com', 'http://10.0.0.5:7480', 'https://s3.eu-west-1.amazonaws.com'],
    });
    const credentials = { access_key_id: 'a', secret_access_key: 'b' };
    const at = (query: string) => ({ repository: `s3://bucket/p?${query}`, target_key: key, credentials });
    expect(codeOf(() => access.check(at('endpoint=https://s3.example.com')))).toBeUndefined();
    expect(codeOf(() => access.check(at('endpoint=https://s3.example.com:443/')))).toBeUndefined();
    expect(codeOf(() => access.check(at('endpoint=http://10.0.0.5:7480')))).toBeUndefined();
    expect(codeOf(() => access.check(at('region=eu-west-1')))).toBeUndefined();
    // The cloud's metadata address, another port, another scheme, another region: not on the list.
    expect(codeOf(() => access.check(at('endpoint=http://169.254.169.254')))).toBe('forbidden');
    expect(codeOf(() => access.check(at('endpoint=http://10.0.0.5:7481')))).toBe('forbidden');
    expect(codeOf(() => access.check(at('endpoint=http://s3.example.com')))).toBe('forbidden');
    expect(codeOf(() => access.check(at('region=us-east-1')))).toBe('forbidden');
    expect(codeOf(() => access.check(at('endpoint=not a url')))).toBe('invalid_request');
  });

  it('opens a repository with the request key, counting store traffic in the metrics', async () => {
    const path = join(roots, 'repo');
    const created = await Repository.init(new FsObjectStore({ root: path }), {
      passphrase: TEST_PASSPHRASE,
      chunker: TEST_CHUNKER_PARAMS,
      kdf: TEST_KDF,
    });
    const metrics = new AgentMetrics();
    const access = new RepositoryAccess({ repositoryRoots: [roots], metrics });
    const opened = await access.open({
      repository: pathToFileURL(path).href,
      target_key: Buffer.from(created.targetKey).toString('base64'),
    });
    expect(opened.config.repositoryId).toBe(created.config.repositoryId);
    const { body } = await metrics.render();
    expect(body).toMatch(/stowage_agent_object_store_requests_total\{op="get",outcome="ok"\} [1-9]/);
    // The wrong key is refused by the config's MAC, not silently used.
    await expect(access.open({ repository: pathToFileURL(path).href, target_key: key })).rejects.toThrow();
  });
});
