// A counting HTTP proxy for an S3 server: every request a client makes passes through it unchanged (headers,
// Host included, so SigV4 signatures still verify) and is counted by method, by S3 operation and by status,
// with the body bytes each way. It sees what the server bills for — retries, multipart parts, bucket probes —
// whatever the client is, which is why the S3 bench counts here and not inside either tool.
//
//   const proxy = await startCountingProxy('http://127.0.0.1:7480');
//   …point a client at proxy.endpoint…
//   const counts = proxy.take();   // the counts since the last take(), then zeroed
//   await proxy.close();
//
// Categories (`byMethod`): HEAD, PUT, GET, LIST (a GET of a bucket without a sub-resource other than a
// listing's), DELETE, POST. `byOp` splits them finer, by the first segment of the key and the status
// (`PUT packs 200`, `GET index 200`, `HEAD chunks 404`, `GET bucket?location 200`…), which is what the
// tables by area (packs/, index/, chunks/, manifests/, other) are computed from (bench/s3-report.mjs).
import { Agent, createServer, request } from 'node:http';

/** The S3 path-style request `method url` as a category and an operation name (without the status). */
export function classify(method, url) {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
  const parts = path.split('/').filter((p) => p !== '');
  const bucketLevel = parts.length <= 1;
  // The first key segment: `packs`, `index`, `chunks`, `manifests`, `data`, `config`…
  const area = parts.length >= 2 ? decodeURIComponent(parts[1]) : 'bucket';
  // `x-id` is the AWS SDK's operation tag, not a sub-resource; presigned parameters are not either.
  const sub = [...query.keys()].filter((k) => k !== 'x-id' && !k.startsWith('X-Amz-')).sort();
  if (method === 'GET' && bucketLevel) {
    const listing = sub.length === 0 || query.has('list-type') || query.has('prefix') || query.has('marker');
    if (listing) return { category: 'LIST', op: `LIST ${query.get('prefix')?.split('/')[0] || '(all)'}` };
    return { category: 'GET', op: `GET bucket?${sub.join('&')}` };
  }
  if (method === 'POST') return { category: 'POST', op: `POST ${area}?${sub.join('&')}` };
  const extra = sub.length > 0 ? `?${sub.join('&')}` : '';
  return { category: method, op: `${method} ${area}${extra}` };
}

function emptyCounts() {
  return {
    requests: 0,
    byMethod: { HEAD: 0, PUT: 0, GET: 0, LIST: 0, DELETE: 0, POST: 0 },
    byOp: {},
    /** Body bytes the clients sent (PUT and POST bodies). */
    bytesUp: 0,
    /** Body bytes the server sent back. */
    bytesDown: 0,
    /** Per operation-and-status: the sum of Content-Length the server announced (HEAD answers included). */
    contentLength: {},
    /** Requests that carried `Expect: 100-continue`, and that carried `If-None-Match`. */
    expectContinue: 0,
    ifNoneMatch: 0,
  };
}

/** Starts the proxy on a free port of 127.0.0.1 in front of `target` (http://host:port). */
export function startCountingProxy(target) {
  const upstream = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let counts = emptyCounts();
  const server = createServer((req, res) => {
    const { category, op } = classify(req.method, req.url);
    const c = counts;
    c.requests++;
    c.byMethod[category] = (c.byMethod[category] ?? 0) + 1;
    if (String(req.headers.expect ?? '').toLowerCase() === '100-continue') c.expectContinue++;
    if (req.headers['if-none-match'] !== undefined) c.ifNoneMatch++;
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (answer) => {
        const key = `${op} ${answer.statusCode}`;
        c.byOp[key] = (c.byOp[key] ?? 0) + 1;
        const length = Number(answer.headers['content-length'] ?? 0);
        if (length > 0) c.contentLength[key] = (c.contentLength[key] ?? 0) + length;
        res.writeHead(answer.statusCode, answer.rawHeaders);
        answer.on('data', (d) => {
          c.bytesDown += d.length;
        });
        answer.pipe(res);
      },
    );
    forward.on('error', (error) => {
      const key = `${op} proxy-error`;
      c.byOp[key] = (c.byOp[key] ?? 0) + 1;
      if (!res.headersSent) res.writeHead(502);
      res.end(String(error.message));
    });
    req.on('data', (d) => {
      c.bytesUp += d.length;
    });
    req.pipe(forward);
  });
  // Node answers `Expect: 100-continue` itself (no checkContinue listener); the header still goes upstream.
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        endpoint: `http://127.0.0.1:${port}`,
        take() {
          const taken = counts;
          counts = emptyCounts();
          return taken;
        },
        close() {
          agent.destroy();
          server.closeAllConnections?.();
          return new Promise((done) => server.close(() => done()));
        },
      });
    });
  });
}
