import { createHash, randomBytes } from 'node:crypto';

/**
 * Bearer tokens: `stw_` + 43 base64url characters (256 random bits). Only their SHA-256 is stored: with that
 * much entropy a slow password hash would add nothing, and lookups stay one indexed equality.
 */
export const TOKEN_PREFIX = 'stw_';

export function generateToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): Uint8Array {
  return createHash('sha256').update(token, 'utf8').digest();
}
