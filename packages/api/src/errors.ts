import { z } from 'zod';

/**
 * The one error shape of every Stowage HTTP API (agent and manager): `{ code, message, details? }`.
 * `code` is stable and machine-readable; `message` is one line for people; `details` carries structured
 * context (the invalid fields of a request, the locator that was refused) and never a secret.
 */
export const API_ERROR_CODES = [
  /** Malformed JSON, a field missing or of the wrong type, an unknown field, a bad locator [400]. */
  'invalid_request',
  /** No bearer token, or the wrong one [401]. */
  'unauthorized',
  /** A path outside the agent's configured roots, a repository outside its allowed roots [403]. */
  'forbidden',
  /** The volume, snapshot, backend, job or route does not exist [404]. */
  'not_found',
  /** Already exists (a volume of that name, a job id reused for different work), or busy [409]. */
  'conflict',
  /** The request body is too large [413]. */
  'payload_too_large',
  /** Too many attempts (sign-in) from one address or for one name: wait `details.retry_after_seconds` [429]. */
  'rate_limited',
  /** The backend cannot do that (provision a block device, snapshot without reflinks) [501]. */
  'unsupported',
  /** The agent is shutting down and takes no new work [503]. */
  'unavailable',
  /** The host's filesystem is full [507]. */
  'no_space',
  /** The target key a request carried does not open the repository (the key of another target) [422]. */
  'wrong_key',
  /** Anything else; the agent's log has the cause [500]. */
  'internal',
  /** A job's error when it was cancelled, by a request or by the agent shutting down (never an HTTP answer). */
  'cancelled',
] as const;

export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

export const API_ERROR_STATUS: Readonly<Record<ApiErrorCode, number>> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  unsupported: 501,
  unavailable: 503,
  no_space: 507,
  wrong_key: 422,
  internal: 500,
  cancelled: 409,
};

export const ApiErrorBody = z.strictObject({
  code: z.enum(API_ERROR_CODES),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type ApiErrorBody = z.infer<typeof ApiErrorBody>;

/** An API error as a thrown value: what a server maps to a response and what a client rebuilds from one. */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): number {
    return API_ERROR_STATUS[this.code];
  }

  toBody(): ApiErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** The `details` of an `invalid_request` for a failed zod parse: one `{ path, message }` per issue. */
export function validationDetails(error: z.ZodError): Record<string, unknown> {
  return {
    issues: error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message })),
  };
}

/** One line naming the first problem of a failed parse: `volume.locator: Invalid input`. */
export function validationMessage(error: z.ZodError): string {
  const first = error.issues[0];
  if (first === undefined) return 'invalid request';
  const path = first.path.map(String).join('.');
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more)` : '';
  return `${path === '' ? 'request' : path}: ${first.message}${more}`;
}
