import { randomUUID } from 'node:crypto';
import { isObjectStoreError, type ObjectStore } from '@stowage/object-store';

export const PROBE_STEPS = ['write', 'read', 'list', 'delete'] as const;
export type ProbeStep = (typeof PROBE_STEPS)[number];

export const PROBE_CAUSES = [
  'unreachable',
  'tls',
  'bad_credentials',
  'access_denied',
  'missing_bucket',
  'clock_skew',
  'not_a_repository',
  'other',
] as const;
export type ProbeCause = (typeof PROBE_CAUSES)[number];

export interface ProbeFailure {
  cause: ProbeCause;
  message: string;
  s3_code: string | null;
  status: number | null;
}

export interface ProbeResult {
  ok: boolean;
  steps: { step: ProbeStep; ok: boolean; ms: number }[];
  error: ProbeFailure | null;
}

/** Probe objects live outside every area of the format (docs/format.md §1), so no reader mistakes one. */
export const PROBE_PREFIX = 'probe/';

/**
 * Writes, reads back, lists and deletes one small object, stopping at the first step that fails and saying
 * precisely why (the S3 error code where there is one). The probe object is deleted even after a failed
 * read or list.
 */
export async function probeStore(
  store: ObjectStore,
  options: { timeoutMs?: number } = {},
): Promise<ProbeResult> {
  const key = `${PROBE_PREFIX}${randomUUID()}`;
  const body = new TextEncoder().encode(`stowage probe ${new Date().toISOString()}\n`);
  const signal = AbortSignal.timeout(options.timeoutMs ?? 15_000);
  const steps: ProbeResult['steps'] = [];
  let written = false;
  const run = async (step: ProbeStep, action: () => Promise<void>): Promise<ProbeFailure | undefined> => {
    const started = performance.now();
    try {
      await action();
      steps.push({ step, ok: true, ms: Math.round(performance.now() - started) });
      return undefined;
    } catch (error) {
      steps.push({ step, ok: false, ms: Math.round(performance.now() - started) });
      return classifyStoreError(error);
    }
  };
  let failure = await run('write', async () => {
    await store.put(key, body, { signal });
    written = true;
  });
  failure ??= await run('read', async () => {
    const back = await store.get(key, undefined, { signal });
    if (!Buffer.from(back).equals(Buffer.from(body)))
      throw new Error('the object read back differs from the one written');
  });
  failure ??= await run('list', async () => {
    for await (const info of store.list(PROBE_PREFIX, { signal })) if (info.key === key) return;
    throw new Error('the object written does not appear in a listing');
  });
  if (written) {
    const deleted = await run('delete', () => store.delete(key, { signal }));
    failure ??= deleted;
  }
  return { ok: failure === undefined, steps, error: failure ?? null };
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_TLS_|ERR_SSL_|EPROTO$|HOSTNAME_MISMATCH)/;
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ECONNRESET',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
]);

/** The precise cause of an object-store failure, read from the native error the store kept as its cause. */
export function classifyStoreError(error: unknown): ProbeFailure {
  const message = error instanceof Error ? error.message.split('\n')[0]!.slice(0, 300) : String(error);
  let s3Code: string | null = null;
  let status: number | null = null;
  let errno: string | undefined;
  for (let cause: unknown = error; cause !== undefined && cause !== null; ) {
    const record = cause as {
      name?: unknown;
      Code?: unknown;
      code?: unknown;
      $metadata?: { httpStatusCode?: unknown };
    };
    const httpStatus = record.$metadata?.httpStatusCode;
    if (typeof httpStatus === 'number') {
      status = httpStatus;
      const code = typeof record.Code === 'string' ? record.Code : record.name;
      if (typeof code === 'string' && code !== 'Error') s3Code = code;
    }
    if (typeof record.code === 'string' && errno === undefined && !/^[A-Z][a-z]/.test(record.code))
      errno = record.code;
    if (record.name === 'TimeoutError' && errno === undefined) errno = 'ETIMEDOUT';
    cause = (cause as { cause?: unknown }).cause;
  }
  const failure = (cause: ProbeCause): ProbeFailure => ({ cause, message, s3_code: s3Code, status });
  if (s3Code === 'RequestTimeTooSkewed') return failure('clock_skew');
  if (s3Code === 'NoSuchBucket') return failure('missing_bucket');
  if (s3Code !== null && CREDENTIAL_CODES.has(s3Code)) return failure('bad_credentials');
  if (s3Code === 'AccessDenied' || status === 403) return failure('access_denied');
  if (errno !== undefined && TLS_CODES.test(errno)) return failure('tls');
  if (errno !== undefined && UNREACHABLE_CODES.has(errno)) return failure('unreachable');
  if (status === null && isObjectStoreError(error, 'transient')) return failure('unreachable');
  if (isObjectStoreError(error, 'auth')) return failure('bad_credentials');
  return failure('other');
}
