import { isAbsolute, normalize } from 'node:path';
import { HostBackendError, type HostBackendOp } from './errors.js';

/**
 * Checks a locator's form without touching the filesystem and answers it normalized (no `.`, `//` or
 * trailing `/`). Relative, empty, NUL-carrying locators and any `..` segment are `invalid-locator`: a `..`
 * is refused outright rather than resolved, so no spelling of a path can climb out of a root.
 */
export function normalizeLocator(locator: string, op: HostBackendOp): string {
  const problem =
    typeof locator !== 'string' || locator.length === 0
      ? 'locator is empty'
      : locator.includes('\0')
        ? 'locator contains a NUL character'
        : !isAbsolute(locator)
          ? 'locator must be an absolute path'
          : locator.split('/').includes('..')
            ? 'locator has a ".." segment'
            : undefined;
  if (problem !== undefined) {
    throw new HostBackendError('invalid-locator', `${problem}: ${JSON.stringify(locator)}`, {
      op,
      locator: typeof locator === 'string' ? locator : undefined,
    });
  }
  const normalized = normalize(locator);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

/** True when `path` is `root` or below it; both absolute and normalized. */
export function isInside(root: string, path: string): boolean {
  if (root === '/') return true;
  return path === root || path.startsWith(`${root}/`);
}

/** Validates a configured root or device path: absolute and normalized, or the constructor throws. */
export function configuredPath(path: string, what: string): string {
  if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0')) {
    throw new Error(`${what} ${JSON.stringify(path)} must be an absolute path`);
  }
  const normalized = normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

export function outsideRoots(locator: string, op: HostBackendOp, where: string): HostBackendError {
  return new HostBackendError('outside-roots', `${locator} is outside ${where}`, { op, locator });
}
