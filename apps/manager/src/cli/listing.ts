import type { Page } from '@stowage/api';
import { exclusive, parseInteger } from './args.js';
import type { CliEnv } from './context.js';
import { EXIT } from './exit-codes.js';
import { printJson, printNote } from './output.js';

export interface ListOptions {
  json?: boolean | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
  all?: boolean | undefined;
}

/** The largest page the API serves: --all asks for these, to make as few requests as it can. */
const MAX_PAGE = 500;

/**
 * One page (`--limit`, `--cursor`) or every page (`--all`, following `next_cursor`) of a list, printed as the
 * API's page with --json (`{items, next_cursor}`; null after --all) or by `render` otherwise, with a note on
 * stderr when there is more.
 */
export async function listCommand<T>(
  cli: CliEnv,
  values: ListOptions,
  what: string,
  fetchPage: (query: { limit: number; cursor?: string }) => Promise<Page<T>>,
  render: (items: T[]) => string,
): Promise<number> {
  exclusive(values, 'all', 'limit');
  exclusive(values, 'all', 'cursor');
  const limit = values.limit === undefined ? undefined : parseInteger('limit', values.limit, 1, MAX_PAGE);
  let page: Page<T>;
  if (values.all) {
    const items: T[] = [];
    let cursor: string | undefined;
    for (;;) {
      const next = await fetchPage(cursor === undefined ? { limit: MAX_PAGE } : { limit: MAX_PAGE, cursor });
      items.push(...next.items);
      if (next.next_cursor === null || next.next_cursor === cursor) break;
      cursor = next.next_cursor;
    }
    page = { items, next_cursor: null };
  } else {
    page = await fetchPage({
      limit: limit ?? 100,
      ...(values.cursor === undefined ? {} : { cursor: values.cursor }),
    });
  }
  if (values.json) {
    printJson(cli, page);
    return EXIT.ok;
  }
  if (page.items.length === 0) printNote(cli, `no ${what}`);
  else cli.stdout.write(render(page.items));
  if (page.next_cursor !== null) {
    printNote(cli, `more: add --cursor ${page.next_cursor} for the next page, or --all for every one`);
  }
  return EXIT.ok;
}
