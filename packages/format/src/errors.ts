/**
 * Typed errors of the repository format. `code` strings are stable: the CLI maps them to exit codes and the
 * REST API to error shapes, so never rename one.
 */
export type FormatErrorCode =
  | 'FORMAT_INTEGRITY'
  | 'FORMAT_WRONG_PASSPHRASE'
  | 'FORMAT_UNSUPPORTED_VERSION'
  | 'FORMAT_INVALID';

/** Base class of every error this package throws on purpose. */
export class StowageFormatError extends Error {
  readonly code: FormatErrorCode;
  /** The bucket object concerned, when known (e.g. `chunks/ab/ab12…`). */
  readonly objectKey: string | undefined;

  constructor(code: FormatErrorCode, message: string, objectKey?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.objectKey = objectKey;
  }
}

/**
 * An object failed authentication, decryption, decompression or its id check: corrupted, truncated, forged
 * or read with the wrong key. Never retried; the data must not be used.
 */
export class IntegrityError extends StowageFormatError {
  override readonly name = 'IntegrityError';
  constructor(objectKey: string | undefined, detail: string, options?: { cause?: unknown }) {
    super(
      'FORMAT_INTEGRITY',
      `integrity check failed${objectKey === undefined ? '' : ` for ${objectKey}`}: ${detail}`,
      objectKey,
      options,
    );
  }
}

/** The recovery passphrase does not open the key file. */
export class WrongPassphraseError extends StowageFormatError {
  override readonly name = 'WrongPassphraseError';
  constructor(objectKey?: string) {
    super(
      'FORMAT_WRONG_PASSPHRASE',
      `wrong passphrase for key file${objectKey === undefined ? '' : ` ${objectKey}`}`,
      objectKey,
    );
  }
}

/** The object was written by a newer (or unknown) format version than this reader implements. */
export class UnsupportedFormatVersionError extends StowageFormatError {
  override readonly name = 'UnsupportedFormatVersionError';
  readonly version: number;
  /** `why` replaces the default explanation (a newer version: upgrade to read it). */
  constructor(version: number, objectKey?: string, why?: string) {
    super(
      'FORMAT_UNSUPPORTED_VERSION',
      `unsupported format version ${version}${objectKey === undefined ? '' : ` in ${objectKey}`}${why === undefined ? '' : `: ${why}`}`,
      objectKey,
    );
    this.version = version;
  }
}

/** The bytes are not a well-formed object of the expected kind (bad magic, bad field, bad JSON/CBOR). */
export class FormatError extends StowageFormatError {
  override readonly name = 'FormatError';
  constructor(message: string, objectKey?: string, options?: { cause?: unknown }) {
    super(
      'FORMAT_INVALID',
      objectKey === undefined ? message : `${objectKey}: ${message}`,
      objectKey,
      options,
    );
  }
}
