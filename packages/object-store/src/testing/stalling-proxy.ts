import { connect, createServer, type Socket } from 'node:net';

export interface StallOptions {
  /**
   * Let requests through to the server (a PUT then lands) and hold only its answers; default false: hold the
   * requests too, so the server never sees them.
   */
  readonly passRequests?: boolean;
  /** Bytes of answer each connection still passes before its answers are held (default 0). */
  readonly passResponseBytes?: number;
}

/** A connection that had bytes held: what a client whose request stalled would do about it. */
export interface StalledConnection {
  /** performance.now() when the first byte was held. */
  readonly stalledAt: number;
  /** performance.now() when the client's side closed, or undefined while it is open. */
  readonly clientClosedAt: number | undefined;
}

export interface StallingProxy {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** From now on, hold what passes as `options` say, on every connection, those already open included. */
  stall(options?: StallOptions): void;
  /** Back to passing everything through; bytes held so far are dropped, not delivered. */
  resume(): void;
  /** Connections that had bytes held since the last `stall`. */
  readonly stalled: readonly StalledConnection[];
  /** Resolves once at least `count` connections are stalled; rejects after `timeoutMs`. */
  waitForStalled(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy to `target` that can stall: pass nothing more, as a dead server or a black-holed network does,
 * and record which connections stalled and when their clients closed them. Lets a test tell a request that
 * was really given up (its socket closed at once) from one merely raced and left hanging.
 */
export async function startStallingProxy(target: string): Promise<StallingProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let stall: StallOptions | undefined;
  let stalled: Array<{ stalledAt: number; clientClosedAt: number | undefined }> = [];
  const waiters = new Set<() => void>();

  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client);
    sockets.add(upstream);
    let record: { stalledAt: number; clientClosedAt: number | undefined } | undefined;
    let responseBytes = 0;
    let stallGeneration = stall;
    const hold = () => {
      if (record !== undefined && stalled.includes(record)) return;
      record = { stalledAt: performance.now(), clientClosedAt: undefined };
      stalled.push(record);
      for (const wake of waiters) wake();
    };
    client.on('close', () => {
      sockets.delete(client);
      if (record !== undefined) record.clientClosedAt ??= performance.now();
      upstream.destroy();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      // A stalled connection stays open on the client's side: only the client may close it.
      if (stall === undefined) client.destroy();
    });
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('data', (data: Buffer) => {
      if (stall !== undefined && stall.passRequests !== true) return hold();
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      if (stall === undefined) {
        client.write(data);
        return;
      }
      if (stallGeneration !== stall) {
        stallGeneration = stall;
        responseBytes = 0;
      }
      const pass = Math.max(0, (stall.passResponseBytes ?? 0) - responseBytes);
      responseBytes += data.length;
      if (pass > 0) client.write(data.subarray(0, pass));
      if (data.length > pass) hold();
    });
    upstream.on('end', () => {
      if (stall === undefined) client.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    stall(options = {}) {
      stall = { ...options };
      stalled = [];
    },
    resume() {
      stall = undefined;
    },
    get stalled() {
      return stalled;
    },
    waitForStalled(count, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (stalled.length < count) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${stalled.length} of ${count} connections stalled after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
