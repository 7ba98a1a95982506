import { describe, expect, it } from 'vitest';
import { formatServerSentEvent, readServerSentEvents } from './sse.js';

const streamOf = (...chunks: string[]) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });

const all = async (body: ReadableStream<Uint8Array>) => {
  const events = [];
  for await (const event of readServerSentEvents(body)) events.push(event);
  return events;
};

describe('server-sent events', () => {
  it('round-trip multi-line data through the encoder and decoder', async () => {
    const wire = formatServerSentEvent('job', 'line 1\nline 2') + formatServerSentEvent('job', '{}');
    expect(await all(streamOf(wire))).toEqual([
      { event: 'job', data: 'line 1\nline 2' },
      { event: 'job', data: '{}' },
    ]);
  });

  it('follow the format: ids, default names, comments, a split CRLF and a dropped half event', async () => {
    const events = await all(
      streamOf('id: 7\rdata:x\r', '\n\r\n: hi\n\nevent: e\ndata: ', 'é\n\nevent: cut\ndata: y'),
    );
    expect(events).toEqual([
      { event: 'message', data: 'x', id: '7' },
      { event: 'e', data: 'é' },
    ]);
  });

  it('refuse an event name that would break the framing', () => {
    expect(() => formatServerSentEvent('a\nb', '')).toThrow();
  });
});
