import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { EnvelopeError, MASTER_KEY_BYTES } from './envelope.js';

/**
 * Reads the master key file: 32 bytes in base64 (a trailing newline allowed). With `create`, a missing file
 * is generated (mode 0600, created exclusively so two processes never write two keys). A file readable by
 * group or others is refused: it unlocks every secret in the database.
 */
export function loadMasterKey(path: string, options: { create?: boolean } = {}): Uint8Array {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !options.create) {
      throw new EnvelopeError(`cannot read the master key file ${path}: ${(error as Error).message}`);
    }
    return generateMasterKeyFile(path);
  }
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new EnvelopeError(
      `the master key file ${path} is readable by others (mode ${mode.toString(8)}); chmod 600 it`,
    );
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== MASTER_KEY_BYTES || key.toString('base64') !== text.trim()) {
    throw new EnvelopeError(`the master key file ${path} must hold ${MASTER_KEY_BYTES} bytes in base64`);
  }
  return key;
}

function generateMasterKeyFile(path: string): Uint8Array {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const key = randomBytes(MASTER_KEY_BYTES);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    // Another process created it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return loadMasterKey(path);
    throw error;
  }
  try {
    writeSync(fd, `${key.toString('base64')}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o600);
  return key;
}
