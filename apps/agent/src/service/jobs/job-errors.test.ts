import { ApiError } from '@stowage/api';
import { EngineError } from '@stowage/engine';
import { IntegrityError } from '@stowage/format';
import { HostBackendError } from '@stowage/host-backends';
import { ObjectStoreError } from '@stowage/object-store';
import { describe, expect, it } from 'vitest';
import { errorBody, reducedStoreMessage } from './job-errors.js';

describe('job error bodies', () => {
  it('keep the cause in the message and give each typed error its code', () => {
    expect(errorBody(new ApiError('forbidden', 'file:///etc is outside the repository roots'))).toEqual({
      code: 'forbidden',
      message: 'file:///etc is outside the repository roots',
    });
    expect(
      errorBody(
        new HostBackendError('outside-roots', '/etc/passwd is outside the roots', {
          op: 'stat',
          locator: '/etc/passwd',
        }),
      ),
    ).toMatchObject({
      code: 'forbidden',
      details: { backend_error: 'outside-roots', locator: '/etc/passwd' },
    });
    expect(
      errorBody(new EngineError('target-too-small', '/v holds 1 bytes; the backup needs 2')),
    ).toMatchObject({
      code: 'invalid_request',
      details: { error: 'EngineError', error_code: 'target-too-small' },
    });
    const full = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    expect(
      errorBody(new EngineError('io', 'cannot write restore target /v: no space', { cause: full })),
    ).toMatchObject({
      code: 'no_space',
      message: 'cannot write restore target /v: no space',
    });
    expect(
      errorBody(
        new ObjectStoreError('transient', 'put chunks/ab/abcd in s3://b failed (503 SlowDown)', {
          op: 'put',
          key: 'chunks/ab/abcd',
        }),
      ),
    ).toEqual({
      code: 'internal',
      message: 'put chunks/ab/abcd in s3://b failed (503 SlowDown) (still failing after retries)',
      details: { error: 'ObjectStoreError', error_kind: 'transient', op: 'put', key: 'chunks/ab/abcd' },
    });
    expect(errorBody(new ObjectStoreError('auth', 'get config: 403 AccessDenied', { op: 'get' })).code).toBe(
      'forbidden',
    );
    expect(errorBody(new ObjectStoreError('not-found', 'no object manifests/x/y', { op: 'get' })).code).toBe(
      'not_found',
    );
    expect(errorBody(new IntegrityError('chunks/ab/abcd', 'authentication failed'))).toMatchObject({
      code: 'internal',
      message: 'integrity check failed for chunks/ab/abcd: authentication failed',
      details: { error: 'IntegrityError', error_code: 'FORMAT_INTEGRITY', key: 'chunks/ab/abcd' },
    });
    expect(errorBody('a string')).toEqual({
      code: 'internal',
      message: 'a string',
      details: { error: 'string' },
    });
  });

  it("reduce what an S3 server said to one short line (a proxy's HTML page stays out of job records)", () => {
    const page = `<html>\n<body>${'internal dashboard '.repeat(100)}</body>\n</html>`;
    const error = new ObjectStoreError(
      'permanent',
      `get config in s3://b failed (UnknownError, HTTP 502): ${page}`,
      {
        op: 'get',
        key: 'config',
      },
    );
    const body = errorBody(error);
    expect(body.message.startsWith('get config in s3://b failed (UnknownError, HTTP 502): <html>')).toBe(
      true,
    );
    expect(body.message).not.toContain('internal dashboard');
    expect(body.message).not.toContain('\n');
    expect(reducedStoreMessage(`x${'y'.repeat(1000)}`)).toHaveLength(301);
    expect(reducedStoreMessage('a\u001b[31mb')).toBe('a [31mb');
  });
});
