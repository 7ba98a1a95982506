import { ObjectStoreError } from '@stowage/object-store';
import { describe, expect, it } from 'vitest';
import { classifyStoreError } from './probe.js';

/** An S3 SDK error as the object store keeps it: the service's code as `name`, the status in $metadata. */
function sdkError(code: string, status: number): Error & { $metadata: { httpStatusCode: number } } {
  return Object.assign(new Error(`${code} from the service`), {
    name: code,
    $metadata: { httpStatusCode: status },
  });
}
function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 10.0.0.1:443`), { code });
}
const wrapped = (cause: Error, kind: ObjectStoreError['kind'] = 'permanent') =>
  new ObjectStoreError(kind, `put probe/x failed: ${cause.message}`, { op: 'put', key: 'probe/x', cause });

describe('classifyStoreError', () => {
  it.each([
    [sdkError('RequestTimeTooSkewed', 403), 'clock_skew', 'RequestTimeTooSkewed'],
    [sdkError('NoSuchBucket', 404), 'missing_bucket', 'NoSuchBucket'],
    [sdkError('InvalidAccessKeyId', 403), 'bad_credentials', 'InvalidAccessKeyId'],
    [sdkError('SignatureDoesNotMatch', 403), 'bad_credentials', 'SignatureDoesNotMatch'],
    [sdkError('AccessDenied', 403), 'access_denied', 'AccessDenied'],
    [sdkError('InternalError', 500), 'other', 'InternalError'],
  ] as const)('%s is %s', (cause, expected, code) => {
    expect(classifyStoreError(wrapped(cause))).toMatchObject({
      cause: expected,
      s3_code: code,
      status: cause.$metadata.httpStatusCode,
    });
  });

  it.each([
    ['ECONNREFUSED', 'unreachable'],
    ['ENOTFOUND', 'unreachable'],
    ['ETIMEDOUT', 'unreachable'],
    ['CERT_HAS_EXPIRED', 'tls'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'tls'],
  ] as const)('a socket error %s is %s', (code, expected) => {
    expect(classifyStoreError(wrapped(socketError(code), 'transient'))).toMatchObject({
      cause: expected,
      s3_code: null,
      status: null,
    });
  });

  it('keeps the message to one line of at most 300 characters', () => {
    const failure = classifyStoreError(new Error(`${'x'.repeat(400)}\nsecond line`));
    expect(failure.message).toHaveLength(300);
    expect(failure.cause).toBe('other');
  });
});
