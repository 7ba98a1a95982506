import { ApiError, type ApiErrorBody, type ApiErrorCode } from '@stowage/api';
import { EngineError, type EngineErrorCode } from '@stowage/engine';
import { StowageFormatError } from '@stowage/format';
import { isObjectStoreError, type ObjectStoreErrorKind } from '@stowage/object-store';
import { apiErrorFromHostBackend } from '../errors.js';

const ENGINE_CODES: Readonly<Record<EngineErrorCode, ApiErrorCode>> = {
  io: 'internal',
  'invalid-source': 'invalid_request',
  'invalid-target': 'invalid_request',
  'target-exists': 'conflict',
  'target-too-small': 'invalid_request',
  'repository-not-found': 'not_found',
  'repository-exists': 'conflict',
  'backup-not-found': 'not_found',
  'ambiguous-backup-id': 'invalid_request',
  'invalid-argument': 'invalid_request',
  aborted: 'cancelled',
  'backup-exists': 'conflict',
  'wrong-key': 'wrong_key',
  // The manager's fence: it refused the commit, or its leave ran out; nothing was committed.
  'commit-expired': 'conflict',
  'commit-refused': 'conflict',
};

const STORE_CODES: Readonly<Record<ObjectStoreErrorKind, ApiErrorCode>> = {
  // A manifest key that names nothing, mostly; a missing chunk says which object in the message.
  'not-found': 'not_found',
  'precondition-failed': 'internal',
  'invalid-range': 'internal',
  'invalid-key': 'internal',
  transient: 'internal',
  // The store refused the credentials the request carried: a 403 of the bucket's, not of the agent's token.
  auth: 'forbidden',
  'no-space': 'no_space',
  permanent: 'internal',
  // The job's own cancel reaching a store call (the engine reports it as its `aborted` as a rule).
  aborted: 'cancelled',
};

/**
 * What a failed job reports: the cause's own message (it names the volume, the object or the path) and a
 * code for its class; `details` says which typed error it was, so a caller can tell a store's 403 from a
 * path outside the roots. Never a secret: messages of these errors carry keys and locators, not credentials.
 */
export function errorBody(error: unknown): ApiErrorBody {
  if (error instanceof ApiError) return error.toBody();
  const fromBackend = apiErrorFromHostBackend(error);
  if (fromBackend !== undefined) return fromBackend.toBody();
  const message = error instanceof Error ? error.message : String(error);
  const details: Record<string, unknown> = { error: error instanceof Error ? error.name : typeof error };
  if (error instanceof EngineError) {
    details.error_code = error.code;
    // A restore target's write or sync error keeps the errno as its cause: a full disk is the host's to fix.
    const errno = (error.cause as { code?: unknown } | undefined)?.code;
    if (errno === 'ENOSPC') return { code: 'no_space', message, details };
    return { code: ENGINE_CODES[error.code], message, details };
  }
  if (isObjectStoreError(error)) {
    details.error_kind = error.kind;
    details.op = error.op;
    if (error.key !== undefined) details.key = error.key;
    // The retry wrapper rethrows the last attempt's error as is; say that it was not the first.
    const short = reducedStoreMessage(message);
    const text = error.kind === 'transient' ? `${short} (still failing after retries)` : short;
    return { code: STORE_CODES[error.kind], message: text, details };
  }
  if (error instanceof StowageFormatError) {
    // Integrity errors, a wrong key, a newer format: the message names the object.
    details.error_code = error.code;
    if (error.objectKey !== undefined) details.key = error.objectKey;
    return { code: 'internal', message, details };
  }
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') details.error_code = code;
  return { code: code === 'ENOSPC' ? 'no_space' : 'internal', message, details };
}

/** Longest store message a job error carries. */
const MAX_STORE_MESSAGE = 300;

/**
 * A store's message keeps the operation, key, S3 error code and status it begins with, but only the first
 * line of what the server said, escaped and cut short: an endpoint that answers with a page (a proxy, a
 * service that is not S3) must not have its body copied into job records and the manager's database.
 */
export function reducedStoreMessage(message: string): string {
  const firstLine = message.split(/\r?\n/, 1)[0] ?? '';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is being removed
  const printable = firstLine.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return printable.length <= MAX_STORE_MESSAGE ? printable : `${printable.slice(0, MAX_STORE_MESSAGE)}…`;
}
