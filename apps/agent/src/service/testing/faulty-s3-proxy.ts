import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSeededRandom } from '@stowage/object-store';

export interface FaultyS3Proxy {
  /** `http://127.0.0.1:<port>`: use it as the S3 endpoint. */
  readonly endpoint: string;
  /** Requests seen and faults injected so far, by kind. */
  readonly stats: { requests: number; slowDowns: number; resets: number; forwarded: number; held: number };
  /** Changes the share of requests that fail (0 = a plain proxy, 1 = every request fails). */
  setFaultRate(rate: number): void;
  /**
   * Forwards `n` more requests, then holds every later one unanswered until `release()` (a stalled
   * backend): a test can stop a job part-way, whatever the server's speed.
   */
  holdAfter(n: number): void;
  release(): void;
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of a real S3 server that answers a seeded share of requests with S3's
 * `503 SlowDown`, or cuts the connection before answering (a reset, as a flaky load balancer does); the rest
 * are forwarded as they are. It sits between a real `agent serve` process and the S3 server, so the agent's
 * own retry path is what gets tested, with no hooks in the agent.
 */
export async function startFaultyS3Proxy(
  upstream: string,
  options: { faultRate: number; seed?: number },
): Promise<FaultyS3Proxy> {
  const target = new URL(upstream);
  const random = createSeededRandom(options.seed ?? 1);
  let faultRate = options.faultRate;
  const stats = { requests: 0, slowDowns: 0, resets: 0, forwarded: 0, held: 0 };
  let passesLeft = Infinity;
  let held: (() => void)[] = [];

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const outgoing = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    outgoing.on('error', () => res.destroy());
    req.pipe(outgoing);
  };

  const server = createServer((req, res) => {
    stats.requests++;
    const roll = random();
    if (roll < faultRate / 2) {
      stats.slowDowns++;
      req.resume();
      req.on('end', () => {
        res.writeHead(503, { 'Content-Type': 'application/xml' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>' +
            '<Message>Please reduce your request rate.</Message></Error>',
        );
      });
      return;
    }
    if (roll < faultRate) {
      stats.resets++;
      req.socket.destroy();
      return;
    }
    if (passesLeft <= 0) {
      stats.held++;
      const go = () => {
        // A client that gave up while held (a cancelled job) gets nothing forwarded for it.
        if (!req.destroyed && !res.destroyed) forward(req, res);
      };
      held.push(go);
      return;
    }
    passesLeft--;
    stats.forwarded++;
    forward(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stats,
    setFaultRate(rate) {
      faultRate = rate;
    },
    holdAfter(n) {
      passesLeft = n;
    },
    release() {
      passesLeft = Infinity;
      const waiting = held;
      held = [];
      for (const go of waiting) {
        stats.forwarded++;
        go();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        held = [];
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
