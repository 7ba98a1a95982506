/**
 * Server-Sent Events, the little of the WHATWG format the manager uses: the server's encoder and the
 * client's decoder live together so they cannot drift. No Node-only APIs: the console runs this in a browser.
 */

export interface ServerSentEvent {
  /** `message` when the event named none. */
  event: string;
  data: string;
  id?: string;
}

/** One event as it goes on the wire. `data` may hold newlines: each line becomes its own `data:` field. */
export function formatServerSentEvent(event: string, data: string): string {
  if (/[\r\n]/.test(event)) throw new Error('an SSE event name must be one line');
  return `event: ${event}\n${data
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}\n`)
    .join('')}\n`;
}

/** A comment line: keeps proxies from closing an idle stream; decoders ignore it. */
export const SSE_KEEP_ALIVE = ': keep-alive\n\n';

/** Decodes a byte stream into events as they complete; a half-received last event is dropped, as the
 * format says. */
export async function* readServerSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let pending: { event: string; data: string[]; id?: string } = { event: '', data: [] };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A trailing \r may be the first half of a \r\n: keep it for the next read.
      const end = !done && buffer.endsWith('\r') ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
      buffer = (lines.pop() ?? '') + buffer.slice(end);
      for (const line of lines) {
        if (line === '') {
          if (pending.data.length > 0) {
            const event: ServerSentEvent = {
              event: pending.event || 'message',
              data: pending.data.join('\n'),
            };
            if (pending.id !== undefined) event.id = pending.id;
            yield event;
          }
          pending = { event: '', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') pending.event = value;
        else if (field === 'data') pending.data.push(value);
        else if (field === 'id' && !value.includes('\0')) pending.id = value;
        // `retry` and unknown fields: ignored.
      }
      if (done) return;
    }
  } finally {
    // Stops the download when the consumer leaves early (break, return, an exception).
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
