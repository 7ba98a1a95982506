import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface WebhookReceiver {
  readonly url: string;
  readonly received: ReceivedWebhook[];
  /** The status of each next answer (default 204); a function may also redirect. */
  answer: (request: ReceivedWebhook) => { status: number; headers?: Record<string, string> };
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1 that records what webhooks post to it (tests). */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const receiver: WebhookReceiver = {
    url: '',
    received,
    answer: () => ({ status: 204 }),
    close: async () => {},
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(request);
      const { status, headers } = receiver.answer(request);
      res.writeHead(status, headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}/hook`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}

/**
 * Checks a delivery's signature as a receiver would (docs/manager.md#verifying-a-delivery), written apart
 * from the manager's signing code so that a mistake there cannot cancel itself out here.
 */
export function signatureIsValid(secret: string, request: ReceivedWebhook): boolean {
  const timestamp = request.headers['x-stowage-timestamp'];
  const signature = request.headers['x-stowage-signature'];
  if (typeof timestamp !== 'string' || typeof signature !== 'string') return false;
  const expected = createHmac('sha256', secret).update(`${timestamp}.${request.body}`).digest('hex');
  return signature === `sha256=${expected}`;
}
