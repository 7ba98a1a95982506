import {
  FormatError,
  IntegrityError,
  type StowageFormatError,
  UnsupportedFormatVersionError,
  WrongPassphraseError,
} from '@stowage/format';
import type { SerializedError } from './pool.js';

/** Rebuilds the format's typed errors after they crossed from a worker thread as plain data. */
export function reviveFormatError(e: SerializedError): Error | undefined {
  let error: StowageFormatError;
  switch (e.code) {
    case 'FORMAT_INTEGRITY':
      error = new IntegrityError(e.objectKey, '');
      break;
    case 'FORMAT_WRONG_PASSPHRASE':
      error = new WrongPassphraseError(e.objectKey);
      break;
    case 'FORMAT_UNSUPPORTED_VERSION':
      error = new UnsupportedFormatVersionError(
        Number(/version (\d+)/.exec(e.message)?.[1] ?? 0),
        e.objectKey,
      );
      break;
    case 'FORMAT_INVALID':
      error = new FormatError('', e.objectKey);
      break;
    default:
      return undefined;
  }
  error.message = e.message;
  return error;
}
