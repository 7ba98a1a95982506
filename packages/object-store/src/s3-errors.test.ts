import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ObjectStoreErrorKind } from './errors.js';
import { S3ObjectStore, s3ErrorKind } from './s3.js';

type Canned = { status: number; body?: string; headers?: Record<string, string> } | Error;

/** An S3ObjectStore whose HTTP layer answers every request with `canned`: the real SDK parses it. */
function storeAnswering(canned: Canned) {
  const requests: { method: string; path: string; headers: Record<string, string> }[] = [];
  const store = new S3ObjectStore({
    bucket: 'b',
    endpoint: 'http://s3.invalid',
    forcePathStyle: true,
    credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' },
    requestHandler: {
      handle: async (request: { method: string; path: string; headers: Record<string, string> }) => {
        requests.push({ method: request.method, path: request.path, headers: request.headers });
        if (canned instanceof Error) throw canned;
        const body = canned.body ?? '';
        return {
          response: {
            statusCode: canned.status,
            headers: { 'content-length': String(Buffer.byteLength(body)), ...canned.headers },
            body: Readable.from([Buffer.from(body)]),
          },
        };
      },
    } as never,
  });
  return { store, requests };
}

const xmlError = (code: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>m</Message></Error>`;

describe('S3 error mapping', () => {
  it.each<[number, string, ObjectStoreErrorKind]>([
    [404, 'NoSuchKey', 'not-found'],
    [404, 'NoSuchBucket', 'permanent'],
    [412, 'PreconditionFailed', 'precondition-failed'],
    [416, 'InvalidRange', 'invalid-range'],
    [403, 'AccessDenied', 'auth'],
    [403, 'InvalidAccessKeyId', 'auth'],
    [403, 'SignatureDoesNotMatch', 'auth'],
    [403, 'QuotaExceeded', 'no-space'],
    [503, 'SlowDown', 'transient'],
    [500, 'InternalError', 'transient'],
    [502, 'BadGateway', 'transient'],
    [503, 'ServiceUnavailable', 'transient'],
    [429, 'TooManyRequests', 'transient'],
    [400, 'RequestTimeout', 'transient'],
    [400, 'BadDigest', 'transient'],
    [400, 'InvalidArgument', 'permanent'],
    [409, 'ConditionalRequestConflict', 'transient'],
    [507, 'InsufficientStorage', 'no-space'],
    [418, 'Teapot', 'permanent'],
  ])('HTTP %i %s → %s', async (status, code, kind) => {
    const { store } = storeAnswering({
      status,
      body: xmlError(code),
      headers: { 'content-type': 'application/xml' },
    });
    await expect(store.get('k')).rejects.toMatchObject({
      name: 'ObjectStoreError',
      kind,
      op: 'get',
      key: 'k',
    });
  });

  it('maps body-less HEAD answers by status: 404 is undefined, 403 auth, 503 transient', async () => {
    expect(await storeAnswering({ status: 404 }).store.head('k')).toBeUndefined();
    await expect(storeAnswering({ status: 403 }).store.head('k')).rejects.toMatchObject({ kind: 'auth' });
    await expect(storeAnswering({ status: 503 }).store.head('k')).rejects.toMatchObject({
      kind: 'transient',
    });
    await expect(storeAnswering({ status: 400 }).store.head('k')).rejects.toMatchObject({
      kind: 'permanent',
    });
  });

  it.each([
    ['ECONNRESET', 'read ECONNRESET'],
    ['EPIPE', 'write EPIPE'],
    ['ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:9'],
    ['ETIMEDOUT', 'a request has exceeded the configured requestTimeout'],
  ])('maps socket error %s to transient', async (code, message) => {
    const { store } = storeAnswering(Object.assign(new Error(message), { code }));
    await expect(store.put('k', new Uint8Array(1))).rejects.toMatchObject({ kind: 'transient', op: 'put' });
  });

  it('maps a timeout and a hang-up without codes to transient, a bug to permanent', () => {
    expect(s3ErrorKind(Object.assign(new Error('timed out'), { name: 'TimeoutError' }))).toBe('transient');
    expect(s3ErrorKind(new Error('socket hang up'))).toBe('transient');
    expect(s3ErrorKind(new TypeError('x is not a function'))).toBe('permanent');
    expect(s3ErrorKind('a string')).toBe('permanent');
  });

  it("maps the SDK's AbortError (no HTTP answer) to aborted, never to a retryable kind", () => {
    const sdkAbort = Object.assign(new Error('Request aborted'), { name: 'AbortError' });
    expect(s3ErrorKind(sdkAbort)).toBe('aborted');
    expect(s3ErrorKind(new DOMException('This operation was aborted', 'AbortError'))).toBe('aborted');
    // A server's own error code of that name, with a status, is not ours.
    expect(
      s3ErrorKind(Object.assign(new Error('x'), { name: 'AbortError', $metadata: { httpStatusCode: 500 } })),
    ).toBe('transient');
  });

  it('treats a body shorter than Content-Length as transient, never as the object', async () => {
    const { store } = storeAnswering({ status: 200, body: 'abc', headers: { 'content-length': '10' } });
    await expect(store.get('k')).rejects.toMatchObject({ kind: 'transient' });
  });

  it('cuts the asked range out of a server answer that is too wide', async () => {
    const whole = storeAnswering({ status: 200, body: '0123456789' });
    expect(Buffer.from(await whole.store.get('k', { offset: 3, length: 2 })).toString()).toBe('34');
    expect(whole.requests[0]?.headers.range).toBe('bytes=3-4');
    const wide = storeAnswering({
      status: 206,
      body: '0123456789',
      headers: { 'content-range': 'bytes 0-9/10' },
    });
    expect(Buffer.from(await wide.store.get('k', { offset: 0, length: 1 })).toString()).toBe('0');
    const short = storeAnswering({ status: 206, body: '89', headers: { 'content-range': 'bytes 8-9/10' } });
    await expect(short.store.get('k', { offset: 8, length: 5 })).rejects.toMatchObject({
      kind: 'invalid-range',
    });
  });

  it('surfaces per-key DeleteObjects errors, ignoring NoSuchKey', async () => {
    const result = (errors: string) =>
      `<?xml version="1.0" encoding="UTF-8"?><DeleteResult>${errors}</DeleteResult>`;
    const failure = (key: string, code: string) =>
      `<Error><Key>${key}</Key><Code>${code}</Code><Message>m</Message></Error>`;
    const denied = storeAnswering({
      status: 200,
      body: result(failure('a', 'AccessDenied') + failure('b', 'InternalError')),
    });
    await expect(denied.store.deleteMany(['a', 'b'])).rejects.toMatchObject({
      kind: 'auth',
      op: 'deleteMany',
      key: 'a',
    });
    const busy = storeAnswering({ status: 200, body: result(failure('b', 'InternalError')) });
    await expect(busy.store.deleteMany(['a', 'b'])).rejects.toMatchObject({ kind: 'transient', key: 'b' });
    const gone = storeAnswering({ status: 200, body: result(failure('a', 'NoSuchKey')) });
    await gone.store.deleteMany(['a']);
  });

  it('sends DeleteObjects in batches of at most 1,000 keys, and a Content-MD5 with every put', async () => {
    const { store, requests } = storeAnswering({ status: 200, body: '<DeleteResult></DeleteResult>' });
    await store.deleteMany(Array.from({ length: 2500 }, (_, index) => `k/${index}`));
    expect(requests.length).toBe(3);
    await store.put('k', new Uint8Array([1, 2, 3]), { ifNoneMatch: true });
    const put = requests[3]!;
    expect(put.method).toBe('PUT');
    expect(put.headers['content-md5']).toBe('Uonfc331cyb83SJZevsfrA==');
    expect(put.headers['if-none-match']).toBe('*');
    expect(put.headers['x-amz-checksum-crc32']).toBeUndefined();
  });

  it('keeps the cause small enough to print', async () => {
    const { store } = storeAnswering({ status: 503, body: xmlError('SlowDown') });
    const error = (await store.get('k').catch((caught: unknown) => caught)) as Error;
    expect(error.message).toContain('SlowDown');
    expect(JSON.stringify(error.cause).length).toBeLessThan(2000);
  });
});
