import type { FastifyReply } from 'fastify';

/**
 * Writes a core operation's stream result as server-sent events (WHATWG HTML
 * §9.2). The core has already authenticated, authorized and audited the
 * request when this runs; this only frames messages. The reply is hijacked,
 * so the headers set by hooks are copied over by hand.
 */
export type StreamMessage = { event?: string; id?: string; data?: unknown } | { comment: string };

export interface EventStream extends AsyncIterable<StreamMessage> {
  close(): void;
}

export function isEventStream(v: unknown): v is EventStream {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as EventStream).close === 'function' &&
    typeof (v as EventStream)[Symbol.asyncIterator] === 'function'
  );
}

/** One message as SSE text; data is JSON on one line (JSON.stringify escapes line breaks). */
function formatEvent(m: StreamMessage): string {
  if ('comment' in m) return `: ${m.comment.replace(/[\r\n]/g, ' ')}\n\n`;
  let out = '';
  if (m.id !== undefined) out += `id: ${m.id.replace(/[\r\n]/g, '')}\n`;
  if (m.event !== undefined) out += `event: ${m.event.replace(/[\r\n]/g, '')}\n`;
  out += `data: ${JSON.stringify(m.data ?? null)}\n\n`;
  return out;
}

/** Streams `stream` to the client until either side ends it; registers it in `open` meanwhile. */
export async function sendEventStream(
  reply: FastifyReply,
  stream: EventStream,
  open: Set<EventStream>,
): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  open.add(stream);
  const onClose = () => stream.close();
  res.on('close', onClose);
  try {
    const headers: Record<string, string | number | string[]> = {};
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = v;
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // reverse proxies (nginx) would otherwise buffer the stream
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    for await (const m of stream) {
      if (res.destroyed || res.writableEnded) break;
      res.write(formatEvent(m));
    }
  } catch (err) {
    reply.log.warn({ err: { type: (err as Error).name } }, 'event stream failed');
  } finally {
    open.delete(stream);
    res.off('close', onClose);
    stream.close();
    if (!res.writableEnded) res.end();
  }
}
