import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

/** Either the pool or a transaction: every query function takes one, so callers choose the transaction. */
export type Db = Kysely<Database> | Transaction<Database>;

/** Postgres's unique_violation, from either dialect, with the name of the constraint or index it hit. */
export function uniqueViolation(error: unknown): string | undefined {
  const e = error as { code?: unknown; constraint?: unknown; message?: unknown } | null;
  if (e === null || typeof e !== 'object' || e.code !== '23505') return undefined;
  if (typeof e.constraint === 'string') return e.constraint;
  // PGlite's errors carry the message but not always the constraint field.
  const match = typeof e.message === 'string' ? /constraint "([^"]+)"/.exec(e.message) : null;
  return match?.[1] ?? '';
}

/** Postgres's foreign_key_violation (23503). */
export function isForeignKeyViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23503';
}
