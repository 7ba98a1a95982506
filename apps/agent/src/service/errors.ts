import { ApiError, type ApiErrorCode } from '@stowage/api';
import { type HostBackendErrorKind, isHostBackendError } from '@stowage/host-backends';

const HOST_BACKEND_CODES: Readonly<Record<HostBackendErrorKind, ApiErrorCode>> = {
  'not-found': 'not_found',
  exists: 'conflict',
  'no-space': 'no_space',
  'invalid-locator': 'invalid_request',
  'outside-roots': 'forbidden',
  'invalid-argument': 'invalid_request',
  unsupported: 'unsupported',
  busy: 'conflict',
  io: 'internal',
};

/** A HostBackendError as the API error a caller gets, with the locator in `details`; else undefined. */
export function apiErrorFromHostBackend(error: unknown): ApiError | undefined {
  if (!isHostBackendError(error)) return undefined;
  const details: Record<string, unknown> = { backend_error: error.kind, op: error.op };
  if (error.locator !== undefined) details.locator = error.locator;
  return new ApiError(HOST_BACKEND_CODES[error.kind], error.message, details, { cause: error });
}
