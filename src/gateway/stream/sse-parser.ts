import { StrongroomError } from '../../errors/errors.ts';

/**
 * Parsing `text/event-stream` as the clients do (part of the stream relay, src/gateway/stream.ts).
 */

/** One SSE event: its `event:` name (if any) and its `data:` text. */
export interface SseEvent {
  event: string | undefined;
  data: string;
}

/** An upstream event (its lines not yet ended) larger than the parser takes. */
class SseTooLarge extends StrongroomError {
  override name = 'SseTooLarge';
  constructor(message: string) {
    super('upstream_error', message);
  }
}

export interface SseParser {
  /** The events that `chunk` (bytes, UTF-8, or text) completes, in order. */
  push(chunk: Uint8Array | string): SseEvent[];
}

/**
 * Parses `text/event-stream` exactly as the WHATWG HTML standard reads it (§9.2.6,
 * "Interpreting an event stream"), the way the clients do: UTF-8 with invalid bytes
 * replaced and one leading BOM dropped; a line ends with CRLF, LF or a lone CR (a CR
 * at the end of a chunk ends its line, and an LF first in the next chunk is the
 * rest of that CRLF); an empty line dispatches; `:` starts a comment line; a field
 * name is what comes before the first `:` (the whole line without one), one space
 * after the colon is dropped; `data` lines are joined with LF; `event` names the
 * event (`''` is no name); `id`, `retry` and unknown fields are ignored; an event
 * with no `data` line dispatches nothing; at the end of input the pending event is
 * dropped (the caller just stops pushing). More than `maxEventSize` characters
 * pending in one event throws SseTooLarge.
 */
export function createSseParser(opts: { maxEventSize: number }): SseParser {
  const decoder = new TextDecoder('utf-8');
  let started = false;
  /** The current line, not yet ended. */
  let line = '';
  /** The previous chunk ended with a CR: an LF first in this one belongs to it. */
  let afterCR = false;
  let data: string[] = [];
  let dataSize = 0;
  let name = '';

  const field = (l: string, out: SseEvent[]) => {
    if (l === '') {
      if (data.length > 0) out.push({ event: name === '' ? undefined : name, data: data.join('\n') });
      data = [];
      dataSize = 0;
      name = '';
      return;
    }
    if (l.charCodeAt(0) === 58) return;
    const colon = l.indexOf(':');
    const key = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (key === 'data') {
      data.push(value);
      dataSize += value.length + 1;
      if (dataSize > opts.maxEventSize) throw new SseTooLarge('an upstream event is too large');
    } else if (key === 'event') name = value;
  };

  return {
    push(chunk) {
      let text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      const out: SseEvent[] = [];
      if (text === '') return out;
      // bytes: the decoder drops a leading BOM; text: one is dropped here
      if (!started) {
        started = true;
        if (typeof chunk === 'string' && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      const n = text.length;
      let i = 0;
      if (afterCR) {
        afterCR = false;
        if (n > 0 && text.charCodeAt(0) === 10) i = 1;
      }
      let lf = text.indexOf('\n', i);
      let cr = text.indexOf('\r', i);
      while (i < n) {
        if (lf >= 0 && lf < i) lf = text.indexOf('\n', i);
        if (cr >= 0 && cr < i) cr = text.indexOf('\r', i);
        const end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
        if (end < 0) {
          line += text.slice(i);
          if (line.length + dataSize > opts.maxEventSize)
            throw new SseTooLarge('an upstream event is too large');
          break;
        }
        const l = line === '' ? text.slice(i, end) : line + text.slice(i, end);
        line = '';
        if (l.length + dataSize > opts.maxEventSize) throw new SseTooLarge('an upstream event is too large');
        field(l, out);
        i = end + 1;
        if (end === cr) {
          if (i < n) {
            if (text.charCodeAt(i) === 10) i++;
          } else afterCR = true;
        }
      }
      return out;
    },
  };
}
