import { z } from 'zod';

/**
 * The primitives every manager schema is built from, defined once. They follow agent.ts's rules (a UUID in
 * any case, lower-cased; byte counts as safe integers; ISO timestamps with an offset) but lower-case with
 * `.overwrite`, not `.transform`, so that they still render in the OpenAPI document's answers.
 */

/** A UUID in any case, lower-cased: ids compare as strings everywhere after the edge. */
export const Uuid = z.uuid().overwrite((id) => id.toLowerCase());
/** A byte count: a non-negative safe integer. */
export const Bytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export const Timestamp = z.iso.datetime({ offset: true });

/** The `{id}` of every `/v1/<resource>/{id}` path: a bad UUID is a 400, not a 404. */
export const IdParams = z.strictObject({ id: Uuid });
export type IdParams = z.infer<typeof IdParams>;

/** A name people type (token labels): 1–100 characters, no control characters. */
export const Label = z
  .string()
  .min(1)
  .max(100)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');

/** An http(s) URL without user info: credentials belong in their own fields, never in a URL that is logged. */
export const HttpUrl = z
  .url({ protocol: /^https?$/ })
  .max(2048)
  .refine((url) => {
    const parsed = new URL(url);
    return parsed.username === '' && parsed.password === '';
  }, 'must not carry a user name or password');

let zones: ReadonlySet<string> | undefined;
/** IANA zone names this runtime knows (computed on first use, not at import), plus `UTC`, which Node's list
 * leaves out. Exact spelling only: the scheduler and Postgres must read the same name back. */
export function isIanaTimeZone(zone: string): boolean {
  zones ??= new Set(['UTC', ...Intl.supportedValuesOf('timeZone')]);
  return zones.has(zone);
}
export const TimeZone = z
  .string()
  .max(64)
  .refine(isIanaTimeZone, 'must be an IANA time zone such as Europe/Paris or UTC');

/**
 * `?limit=&cursor=` of every list. Query values arrive as strings, hence the coercion (typed `number` for
 * callers). Query objects are strict like bodies: a misspelt filter must be a 400, not a silently
 * unfiltered list.
 */
export const ListQuery = z.strictObject({
  limit: z.coerce.number<number>().int().min(1).max(500).default(100),
  /** Opaque: the `next_cursor` of the previous page, passed back unchanged. */
  cursor: z.string().min(1).max(512).optional(),
});
export type ListQuery = z.infer<typeof ListQuery>;

/** One page of a list; `next_cursor` is null on the last page. */
export function Page<T extends z.ZodType>(item: T) {
  return z.strictObject({ items: z.array(item), next_cursor: z.string().nullable() });
}
export type Page<T> = { items: T[]; next_cursor: string | null };
