// The HTTP client of bench/manager.mjs's list-latency runs, in its own process (as the CLI or the console
// would be), so that its parsing and garbage do not run on the manager's event loop. Reads
// { url, token, volumeIds, requests, warmup } as JSON on stdin; sends sequential GETs (fetch, keep-alive)
// round-robin over the endpoints, following next_cursor for several pages; prints each endpoint's samples
// (milliseconds, from the request to the last byte of the answer) as JSON on stdout.

/** The endpoints, each a stream of paths: a list's first page, then its next_cursor for up to `pages`. */
function endpoints(volumeIds) {
  let pick = 0;
  const paged = (name, first, pages) => {
    let cursor = null;
    let page = 0;
    return {
      name,
      next() {
        if (cursor === null || page >= pages) {
          page = 0;
          return first();
        }
        const path = first();
        return `${path}${path.includes('?') ? '&' : '?'}cursor=${encodeURIComponent(cursor)}`;
      },
      answered(body) {
        cursor = body.next_cursor;
        page++;
      },
    };
  };
  // A different volume on each request, spread over all of them (its 100 backups: one page at limit 100).
  const byVolume = paged(
    'GET /v1/backups?volume_id=… (a different volume each time)',
    () => `/v1/backups?volume_id=${volumeIds[(pick * 7919) % volumeIds.length]}`,
    1,
  );
  const next = byVolume.next;
  byVolume.next = () => {
    pick++;
    return next();
  };
  return [
    paged('GET /v1/volumes?limit=100 (+cursor, 10 pages)', () => '/v1/volumes?limit=100', 10),
    paged('GET /v1/backups?limit=100 (+cursor, 20 pages)', () => '/v1/backups?limit=100', 20),
    byVolume,
    paged('GET /v1/jobs (+cursor, 10 pages)', () => '/v1/jobs', 10),
    paged('GET /v1/backup_targets', () => '/v1/backup_targets', 1),
  ];
}

async function main() {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const { url, token, volumeIds, requests, warmup } = JSON.parse(input);
  const list = endpoints(volumeIds);
  const samples = list.map(() => []);
  const bytes = list.map(() => 0);
  const pages = list.map(() => 0);
  const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
  for (let i = 0; i < warmup + requests; i++) {
    for (const [e, endpoint] of list.entries()) {
      const path = endpoint.next();
      const t0 = process.hrtime.bigint();
      const response = await fetch(`${url}${path}`, { headers });
      const text = await response.text();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (response.status !== 200) throw new Error(`${path}: ${response.status} ${text.slice(0, 300)}`);
      const body = JSON.parse(text);
      if (!Array.isArray(body.items) || body.items.length === 0) throw new Error(`${path}: no items`);
      endpoint.answered(body);
      if (i >= warmup) {
        samples[e].push(ms);
        bytes[e] += text.length;
        if (path.includes('cursor=')) pages[e]++;
      }
    }
  }
  process.stdout.write(
    JSON.stringify(
      list.map((endpoint, e) => ({
        endpoint: endpoint.name,
        samples: samples[e],
        bytes: bytes[e],
        cursor_pages: pages[e],
      })),
    ),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
