import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A secret kept in a file of its own (mode 0600): read when present, else made by `generate` and written
 * exclusively (so two starts never keep two different secrets).
 */
export function readOrCreateSecretFile(
  path: string,
  generate: () => string,
): { value: string; created: boolean } {
  try {
    return { value: readFileSync(path, 'utf8').trim(), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const value = generate();
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readOrCreateSecretFile(path, generate);
    throw error;
  }
  try {
    writeSync(fd, `${value}\n`);
  } finally {
    closeSync(fd);
  }
  return { value, created: true };
}
