import { ApiError } from '@stowage/api';
import { type SelectQueryBuilder, type StringReference, sql } from 'kysely';

/**
 * Keyset pagination, newest first: the cursor is the (time, id) of the last item of a page, opaque to
 * clients (base64url JSON). Keyset rather than OFFSET so that a page costs the same at 100,000 rows as at
 * 100, and rows inserted meanwhile neither repeat nor vanish.
 */
export interface PageCursor {
  readonly at: Date;
  readonly id: string;
}

export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(JSON.stringify([at.toISOString(), id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): PageCursor | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'string' &&
      typeof value[1] === 'string' &&
      /^[0-9a-f-]{36}$/.test(value[1])
    ) {
      const at = new Date(value[0]);
      if (!Number.isNaN(at.getTime())) return { at, id: value[1] };
    }
  } catch {
    // fall through to the error below
  }
  throw new ApiError('invalid_request', 'cursor: not a cursor this server gave out', { field: 'cursor' });
}

export interface Page<T> {
  readonly items: T[];
  readonly next_cursor: string | null;
}

/** Cuts the one-extra row a query fetched (limit + 1) into a page and the cursor of its last item. */
export function toPage<Row, Item>(
  rows: readonly Row[],
  limit: number,
  key: (row: Row) => { at: Date; id: string },
  map: (row: Row) => Item,
): Page<Item> {
  const pageRows = rows.slice(0, limit);
  const last = pageRows.at(-1);
  const next = rows.length > limit && last !== undefined ? key(last) : undefined;
  return {
    items: pageRows.map(map),
    next_cursor: next === undefined ? null : encodeCursor(next.at, next.id),
  };
}

/**
 * One page of a keyset query, newest first: rows after `page.cursor` in (time, id) order, descending, and
 * one more than `page.limit` so that `toPage` knows whether another page follows.
 */
export function newestFirstPage<DB, TB extends keyof DB, O>(
  query: SelectQueryBuilder<DB, TB, O>,
  time: StringReference<DB, TB>,
  id: StringReference<DB, TB>,
  page: { limit: number; cursor?: PageCursor | undefined },
): SelectQueryBuilder<DB, TB, O> {
  const after = page.cursor;
  const filtered =
    after === undefined
      ? query
      : query.where(sql<boolean>`(${sql.ref(time)}, ${sql.ref(id)}) < (${after.at}, ${after.id})`);
  return filtered
    .orderBy(time, 'desc')
    .orderBy(id, 'desc')
    .limit(page.limit + 1);
}
