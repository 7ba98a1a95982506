import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { EnvelopeError, MASTER_KEY_BYTES } from './envelope.js';
import { readOrCreateSecretFile } from './secret-files.js';

/**
 * Reads the master key file: 32 bytes in base64 (a trailing newline allowed). With `create`, a missing file
 * is generated (mode 0600, created exclusively so two processes never write two keys). A file readable by
 * group or others is refused: it unlocks every secret in the database.
 */
export function loadMasterKey(path: string, options: { create?: boolean } = {}): Uint8Array {
  let text: string;
  try {
    text = options.create
      ? readOrCreateSecretFile(path, () => randomBytes(MASTER_KEY_BYTES).toString('base64')).value
      : readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new EnvelopeError(`cannot read the master key file ${path}: ${(error as Error).message}`);
  }
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new EnvelopeError(
      `the master key file ${path} is readable by others (mode ${mode.toString(8)}); chmod 600 it`,
    );
  }
  const key = Buffer.from(text, 'base64');
  if (key.length !== MASTER_KEY_BYTES || key.toString('base64') !== text) {
    throw new EnvelopeError(`the master key file ${path} must hold ${MASTER_KEY_BYTES} bytes in base64`);
  }
  return key;
}
