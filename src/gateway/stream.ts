import { StrongroomError } from '../errors/errors.ts';
import type { WireApi } from './providers.ts';
import { secretRedactor } from './stages/output-filter.ts';
import type { GatewayRoute, ResponseFilter } from './types.ts';

/**
 * The stream relay (issue 12, items 1 and 2; docs/gateway.md, "What reaches the
 * client"): what the gateway writes to the client for each event of a streamed
 * answer. Pure: parsed SSE events in, events to write out, no I/O. The SSE
 * parser (`createSseParser`) that feeds it is here too.
 *
 * Events are read by the endpoint called (`route`), never by their shape, and
 * every text a client concatenates across events goes through one cross-event
 * filter per string the client builds, keyed exactly as the official SDKs key
 * their accumulation (openai: lib/ChatCompletionStream, lib/responses/
 * ResponseAccumulator; @anthropic-ai/sdk: lib/MessageStream), so the
 * concatenation a client builds is what was filtered:
 *
 * - Chat Completions chunks: per choice `index` (`snapshot.choices[index]`), every
 *   string of `delta` but the ones SDKs overwrite (`role`, `id`, `type`, `name`):
 *   `content`, `refusal`, `audio.data`, `audio.transcript`, `function_call.arguments`,
 *   `tool_calls[]` by their `index` -> `function.arguments`, and fields of
 *   OpenAI-compatible servers (`reasoning`, `reasoning_content`, ...).
 * - Responses: per output position and part (`output[output_index].content[content_index]`,
 *   `.summary[summary_index]`), as `response.output_text`, `refusal`, `reasoning_text`,
 *   `reasoning_summary_text`, `function_call_arguments`, `mcp_call_arguments`,
 *   `custom_tool_call_input`, `code_interpreter_call_code` deltas append to it; the text a
 *   `content_part.added`/`output_item.added` opens a part with is the start of its string.
 * - Anthropic: per content block position (`content.at(index)`, blocks pushed by
 *   `content_block_start`) and delta field (`text`, `partial_json`, `thinking`, ...); the
 *   `text`/`thinking` a block starts with is the start of the same string.
 *
 * Strings that are JSON text clients parse once more (chat `function.arguments` and
 * `function_call.arguments`, Responses `function_call_arguments`/`mcp_call_arguments` and items'
 * `arguments`, Anthropic `partial_json`) are read by their filter with their escapes of printable
 * ASCII normalised to the characters (`jsonTextNormalizer`, below): a key written `\u0073k-…` in
 * them is seen; their complete forms in other events are normalised the same way
 * (`normalizeJsonTexts`).
 *
 * A value the SDKs append with `+=` is appended as its string form (`'' + ['abc']` is `abc`,
 * `'' + 5` is `5`), under the SDK's own condition (chat `content` only when truthy, `audio.data`
 * when not null, Responses and Anthropic deltas always, a missing one as `undefined`): the relay
 * filters that string form and sends the filtered text as a string.
 *
 * Close events do not end a string: the SDKs go on appending after a `finish_reason`
 * or a `content_block_stop`, so what a filter holds back is sent at the terminal
 * event (`[DONE]`, `response.completed|failed|incomplete`, `message_stop`, an
 * error) or the end of input, as a delta shaped like the provider's own, which the
 * SDKs append. Events that replace a string (Responses `*.done`,
 * `content_part.done`, `output_item.done`, a snapshot such as `response.in_progress`,
 * a chat choice's `message`) end it: what it held goes out before them, and a later
 * delta to it is refused.
 *
 * Where clients join strings across streams (all `output_text` deltas into
 * `response.output_text`; Anthropic `text` events across blocks; chat content of
 * several choices through `choices[0]` or `on('content')`; the final text of all
 * blocks in order), the joined text sent is checked for the injected keys.
 *
 * Responses: the openai SDK also sets strings whole (a snapshot's items, `output_item.done`,
 * `content_part.done`, `*.done`) and joins `output_text` again from every part at most of them, and
 * a stream that ends without `response.completed` is its result as it stands. So the relay keeps what
 * the SDK holds after each event it sends (ResponseAccumulator, run on the events as sent: each
 * part's, summary part's and item's string, the join of all `output_text` parts, the SDK's own
 * `output_text`) and checks the text around each change before the event goes out (see "Responses:
 * what the SDK holds" below); an event that would make one of them hold a key is refused.
 *
 * The relay refuses (StreamRefused: the stream ends with an error event, nothing
 * held back is released) what clients would read in different ways: an index that
 * is not a non-negative integer (a string `"0"`, `-1`, `0.5`, one above 4096), a
 * block, item or part started at an index other than the next (or where a replaced
 * one was), a delta to an item or block that does not exist or to a string that was
 * replaced, an `item_id` that is not its item's, two items with one id, content
 * blocks before `message_start` or a second one, an event that is not a JSON object,
 * a `type` with a line break, and more than `maxStreams` text streams in one answer.
 * Event names are the event's `type` (Anthropic, Responses: the SDKs and clients
 * that dispatch by name then see what the relay read) or none (chat).
 *
 * Every other string of every event (keys included; identity fields such as ids,
 * names, `signature`; the complete texts of `*.done` events and of
 * `response.completed`) goes through the whole-text cleaner, and then the
 * serialized event once more.
 *
 * Logprobs repeat the generated text token by token (`token`, `bytes`,
 * `top_logprobs`), so a key split over tokens would be reassembled by a client
 * that joins them: Chat Completions logprobs are held per choice and delivered
 * before the terminal event, and only when the joined tokens, the decoded joined
 * bytes and every single token come through the cleaner unchanged; otherwise that
 * choice's `logprobs` is `null`. Responses deltas carry `logprobs: []` (the
 * complete list comes with the `*.done` event and in the completed response,
 * checked the same way, emptied if anything would be redacted).
 */

/** One SSE event: its `event:` name (if any) and its `data:` text. */
export interface SseEvent {
  event: string | undefined;
  data: string;
}

// ------------------------------------------------------------ SSE parsing

/** An upstream event (its lines not yet ended) larger than the parser takes. */
export class SseTooLarge extends StrongroomError {
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

// ------------------------------------------------------------ the relay

export interface RelayStep {
  /** The events to write, in order. */
  events: SseEvent[];
  /**
   * The input was a terminal event (`[DONE]`, `response.completed|failed|incomplete`, `message_stop`,
   * an error event): `events` then ends with it, after everything held back, so the caller can write
   * the others, write its record, then the last one.
   */
  terminal: boolean;
}

export interface StreamRelayOptions {
  api: WireApi;
  /** The endpoint called: how its events are read (never from their shape). */
  route: GatewayRoute;
  /** A new cross-event filter (push/end), one per text stream. */
  filter: () => ResponseFilter;
  /** Cleans a complete text (a string of an event, a whole serialized event). */
  clean: (text: string) => string;
  /**
   * The keys injected: text clients join across streams is checked for them (with no other
   * stage, which may change ordinary text). Default: checked with `clean`.
   */
  secrets?: readonly string[];
  /** Sees every parsed event as the provider sent it, before any change (usage tracking). */
  observe?: (event: string | undefined, data: Record<string, unknown>) => void;
  /** The most text streams one answer may open (default 1024); one more ends the stream. */
  maxStreams?: number;
  /**
   * The call asked for structured output (a JSON `response_format` / `text.format`): the SDKs'
   * `parse()` helpers JSON-parse the generated text, so it is read as JSON text too.
   */
  jsonOutput?: boolean;
}

export interface StreamRelay {
  /**
   * The events to write for one upstream event (its `event:` name and `data:` text). Throws
   * StreamRefused for an event clients would read in a way the relay cannot follow (see above):
   * the caller ends the stream with an error, and writes nothing of that step.
   */
  push(event: string | undefined, data: string): RelayStep;
  /** The end of input: what is still held back, as events (nothing after a terminal event). */
  end(): SseEvent[];
  /**
   * The generated text the client received, for the provenance link: the main text streams
   * (chat `content`, Responses `output_text`, Anthropic `text_delta`) as filtered. For one chat
   * choice or one text block it is that text; with several chat choices (`n > 1`) it is each
   * choice's text in choice index order, concatenated; otherwise the text streams in the order
   * they started.
   */
  text(): string;
  /** A terminal event was relayed: every later event is dropped (the caller may stop reading). */
  readonly ended: boolean;
}

/** The relay will not pass an upstream event on (see the module comment): the stream ends. */
export class StreamRefused extends StrongroomError {
  override name = 'StreamRefused';
  constructor(message: string) {
    super('upstream_error', message);
  }
}

const refuse = (why: string): never => {
  throw new StreamRefused(why);
};

type Json = Record<string, unknown>;

/** Fields SDKs overwrite rather than concatenate: checked whole, event by event. */
const OVERWRITTEN = new Set(['role', 'id', 'type', 'name', 'signature']);
const MAX_DEPTH = 64;
/** Logprobs with entries (a non-empty list, or chat's `{content, refusal}`), not `null` or `[]`. */
const LOGPROBS_LIST = /"logprobs"\s*:\s*(?:\{|\[\s*[^\]\s])/;
/** Text streams one answer may open (n = 128 choices with several tool calls each fit). */
const MAX_STREAMS = 1024;
/** Choice and tool-call indexes above this are refused (OpenAI allows n <= 128). */
const MAX_INDEX = 4096;
/**
 * How much of text clients join across streams is looked at around each junction: more than the
 * longest form of a key the redactor knows (hex of a 108-character key is 216) and its run rules'
 * reach (three candidates within 256 characters).
 */
const JOIN_WINDOW = 256;
/** Strings replaced (closed to deltas), at most. */
const MAX_CLOSED = 4 * MAX_STREAMS;

/**
 * Whether the JSON text `raw` must be cleaned string by string: it has escapes (a key written
 * `\u0073k-…` only shows once parsed) or logprobs (text repeated token by token). Otherwise every
 * string appears in the serialized text as it is, and one pass over that text sees all of them.
 */
export function needsWalk(raw: string): boolean {
  return raw.includes('\\') || LOGPROBS_LIST.test(raw);
}
// ------------------------------------------------------------ JSON text clients parse

/**
 * Strings that are themselves JSON text, which clients parse (`JSON.parse` of tool-call arguments,
 * the SDKs' parsed arguments, Anthropic's `input` built from `partial_json`): a key written in them
 * with `\u0073`-style escapes is one the redactor cannot read, but every client that parses them gets
 * it. So before their filter these strings are normalised: an escape `\u00XX` of a printable ASCII
 * character (0x20–0x7E) other than `"` and `\`, and `\/`, becomes that character, which is exactly
 * what a JSON parser reads from it (in a string; in valid JSON there is no backslash anywhere else,
 * and lenient parsers, JSON5 identifiers and single-quoted strings included, read these escapes the
 * same way). Backslashes are read in pairs from the start of the text (`\\u0073` is an escaped
 * backslash and the text `u0073`, left alone). Escapes of anything else stay as they are: `\"`,
 * `\\`, control characters (which cannot be written bare in a string), and every character beyond
 * ASCII, surrogate pairs included (keys are ASCII: `\u0441` is not `s`, whatever it looks like). So
 * a text with no printable-ASCII escape passes unchanged, byte for byte.
 */
export interface JsonTextNormalizer {
  /** The normalised text that `text` (the next piece) completes; an escape not yet whole is held. */
  push(text: string): string;
  /** What was held (an escape the text ended in the middle of), as it was. */
  end(): string;
}

/** The character a `\uXXXX` escape at `s[i]` (the backslash) stands for, if it is normalised. */
function asciiEscape(s: string, i: number): string | undefined {
  // `\u00` then two hex digits of 0x20–0x7E
  if (s.charCodeAt(i + 2) !== 48 || s.charCodeAt(i + 3) !== 48) return undefined;
  const hi = s.charCodeAt(i + 4) - 48;
  if (hi < 2 || hi > 7) return undefined;
  const d = s.charCodeAt(i + 5);
  const lo = d >= 48 && d <= 57 ? d - 48 : d >= 97 && d <= 102 ? d - 87 : d >= 65 && d <= 70 ? d - 55 : -1;
  if (lo < 0) return undefined;
  const c = hi * 16 + lo;
  return c === 0x22 || c === 0x5c || c === 0x7f ? undefined : String.fromCharCode(c);
}
/** After `\u`, the text `rest` (fewer than 4 characters) could still make an escape that is normalised. */
const ESCAPE_START = /^(?:0(?:0[2-7]?)?)?$/;

/**
 * One step: `s` normalised, and the escape it ends in the middle of (held, unless `final`) that
 * could still be one to normalise (`\`, `\u`, `\u0`, `\u00`, `\u00X`).
 */
function normalizeStep(s: string, final: boolean): [string, string] {
  let out = '';
  let last = 0;
  let i = s.indexOf('\\');
  while (i >= 0) {
    const n = s.length;
    let next = i + 2;
    if (i + 1 >= n) {
      if (!final) return [out + s.slice(last, i), s.slice(i)];
      break;
    }
    const e = s.charCodeAt(i + 1);
    if (e === 117 /* u */) {
      if (i + 6 > n) {
        if (!final && ESCAPE_START.test(s.slice(i + 2))) return [out + s.slice(last, i), s.slice(i)];
      } else {
        const c = asciiEscape(s, i);
        if (c !== undefined) {
          out += s.slice(last, i) + c;
          last = next = i + 6;
        }
      }
    } else if (e === 47 /* / */) {
      out += `${s.slice(last, i)}/`;
      last = next;
    }
    // any other escape (`\\`, `\"`, `\n`, ...) is its two characters: the next backslash starts one
    i = s.indexOf('\\', next);
  }
  return [last === 0 ? s : out + s.slice(last), ''];
}

/** A normaliser for one JSON text that arrives in pieces (see JsonTextNormalizer). */
export function jsonTextNormalizer(): JsonTextNormalizer {
  let held = '';
  return {
    push(text) {
      if (held === '' && !text.includes('\\')) return text;
      const [out, h] = normalizeStep(held + text, false);
      held = h;
      return out;
    },
    end() {
      const h = held;
      held = '';
      return h;
    },
  };
}

/** A whole JSON text, normalised (see JsonTextNormalizer). */
export function normalizeJsonText(text: string): string {
  return text.includes('\\') ? normalizeStep(text, true)[0] : text;
}

/** `f`, reading the normalised text of the JSON text pushed to it. */
function jsonTextFilter(f: ResponseFilter): ResponseFilter {
  const n = jsonTextNormalizer();
  return {
    push: (t) => f.push(n.push(t)),
    end: () => {
      const rest = n.end();
      return (rest === '' ? '' : f.push(rest)) + f.end();
    },
  };
}

/** A JSON text value as a client parses it (`JSON.parse(v)` reads `String(v)`: an array's strings too), normalised. */
function normalizeJsonValue(v: unknown): unknown {
  if (typeof v === 'string') return normalizeJsonText(v);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = normalizeJsonValue(v[i]);
  }
  return v;
}

/**
 * Normalises in place the JSON texts of a complete value (an answer, or a streamed event) of
 * `route`, but for the `skip` slots (strings of text streams, normalised by their stream):
 *
 * - Chat Completions: each choice's `message` and `delta`, their `tool_calls[].function.arguments`
 *   and `function_call.arguments`;
 * - Responses: the `arguments` of each item (`output[]` of an answer or of an event's `response`,
 *   an event's `item`) and of `response.function_call_arguments.done` and `mcp_call_arguments.done`;
 * - Anthropic: a delta's `partial_json` (a `tool_use` block's `input` is an object, parsed already).
 */
export function normalizeJsonTexts(
  route: GatewayRoute,
  v: unknown,
  skip?: readonly Skip[],
  jsonOutput = false,
): void {
  if (!isObj(v)) return;
  const at = (o: unknown, k: string) => {
    if (!isObj(o) || !Object.hasOwn(o, k) || skip?.some((s) => s.obj === o && s.key === k)) return;
    const x = o[k];
    if (typeof x === 'string' || Array.isArray(x)) put(o, k, normalizeJsonValue(x));
  };
  const each = (l: unknown, f: (x: unknown) => void) => {
    if (Array.isArray(l)) for (const x of l) f(x);
  };
  if (route === 'chat.completions') {
    each(v.choices, (c) => {
      if (!isObj(c)) return;
      for (const m of [c.message, c.delta]) {
        if (!isObj(m)) continue;
        // structured output: the generated text is JSON the client parses
        if (jsonOutput) at(m, 'content');
        each(m.tool_calls, (tc) => {
          if (isObj(tc)) at(tc.function, 'arguments');
        });
        at(m.function_call, 'arguments');
      }
    });
  } else if (route === 'responses') {
    const items = (l: unknown) =>
      each(l, (it) => {
        at(it, 'arguments');
        if (jsonOutput && isObj(it))
          each(it.content, (part) => {
            if (isObj(part) && part.type === 'output_text') at(part, 'text');
          });
      });
    items(v.output);
    if (isObj(v.response)) items(v.response.output);
    at(v.item, 'arguments');
    if (v.type === 'response.function_call_arguments.done' || v.type === 'response.mcp_call_arguments.done')
      at(v, 'arguments');
    if (jsonOutput) {
      if (v.type === 'response.output_text.done') at(v, 'text');
      if (isObj(v.part) && v.part.type === 'output_text') at(v.part, 'text');
      at(v, 'output_text');
      if (isObj(v.response)) at(v.response, 'output_text');
    }
  } else if (route === 'messages') {
    if (isObj(v.delta) && v.delta.type === 'input_json_delta') at(v.delta, 'partial_json');
  }
}

/** Short strings (ids, names, keys of objects) repeat in every event: their cleaned form is kept. */
const MEMO_MAX_LENGTH = 64;
const MEMO_MAX_SIZE = 512;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
/** Sets an own property (`__proto__` too, which plain assignment would not). */
const put = (o: Json, k: string, v: unknown): void => {
  if (k === '__proto__')
    Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
};

/** A string of an event the relay leaves to the text streams (the walk skips it). */
interface Skip {
  obj: Json;
  key: string;
}

/**
 * The strings clients join in a complete answer, by group: the Responses API's `output_text` (every
 * output_text part of every message, in order) and an Anthropic message's text blocks. Each string is
 * cleaned on its own; a key split across two of them would only show joined, so the joined text is
 * checked too (empty when there is nothing to join).
 */
export function joinedTexts(route: GatewayRoute, answer: unknown): string[][] {
  if (!isObj(answer)) return [];
  const texts: string[] = [];
  if (route === 'responses' && Array.isArray(answer.output)) {
    for (const item of answer.output) {
      if (!isObj(item) || !Array.isArray(item.content)) continue;
      for (const part of item.content)
        if (isObj(part) && part.type === 'output_text' && typeof part.text === 'string')
          texts.push(part.text);
    }
  } else if (route === 'messages' && Array.isArray(answer.content)) {
    for (const block of answer.content)
      if (isObj(block) && block.type === 'text' && typeof block.text === 'string') texts.push(block.text);
  }
  return texts.length > 1 ? [texts] : [];
}

/**
 * A memoizing cleaner and the walk over a parsed value that cleans every string in place (keys of
 * objects too), except the slots, with logprobs checked as described above; with a `route`, the JSON
 * texts of its values are normalised first (`normalizeJsonTexts`). Shared by the relay and the
 * gateway's complete answers.
 */
export function jsonCleaner(clean: (text: string) => string, route?: GatewayRoute, jsonOutput = false) {
  const memo = new Map<string, string>();
  const cleanStr = (s: string): string => {
    if (s.length > MEMO_MAX_LENGTH) return clean(s);
    let c = memo.get(s);
    if (c === undefined) {
      if (memo.size >= MEMO_MAX_SIZE) memo.clear();
      c = clean(s);
      memo.set(s, c);
    }
    return c;
  };

  /** Whether a list of logprob entries is safe to deliver: see the module comment. */
  const logprobsSafe = (list: unknown[]): boolean => {
    let tokens = '';
    const bytes: number[] = [];
    const alone: string[] = [];
    const altBytes: number[][] = [];
    for (const e of list) {
      if (!isObj(e)) continue;
      if (typeof e.token === 'string') {
        tokens += e.token;
        alone.push(e.token);
      }
      if (Array.isArray(e.bytes)) for (const b of e.bytes) if (typeof b === 'number') bytes.push(b);
      if (Array.isArray(e.top_logprobs)) {
        for (const t of e.top_logprobs) {
          if (!isObj(t)) continue;
          if (typeof t.token === 'string') alone.push(t.token);
          if (Array.isArray(t.bytes))
            altBytes.push(t.bytes.filter((b): b is number => typeof b === 'number'));
        }
      }
    }
    const same = (s: string) => clean(s) === s;
    if (!same(tokens)) return false;
    if (bytes.length && !same(Buffer.from(bytes.map((b) => b & 0xff)).toString('utf8'))) return false;
    for (const t of alone) if (cleanStr(t) !== t) return false;
    for (const b of altBytes) {
      const t = Buffer.from(b.map((x) => x & 0xff)).toString('utf8');
      if (cleanStr(t) !== t) return false;
    }
    return true;
  };

  /** A `logprobs` value: a list of entries (Responses), or `{content, refusal}` lists (chat). */
  const safeLogprobs = (v: unknown): unknown => {
    if (Array.isArray(v)) return logprobsSafe(v) ? v : [];
    if (isObj(v)) {
      for (const k of ['content', 'refusal']) {
        const l = v[k];
        if (Array.isArray(l) && !logprobsSafe(l)) return null;
      }
    }
    return v;
  };

  /** A number whose decimal form the cleaner changes (digits of a key): that cleaned text instead. */
  const cleanNum = (n: number): unknown => {
    const t = String(n);
    if (t.length < 4) return n;
    const c = cleanStr(t);
    return c === t ? n : c;
  };

  let deep = false;
  /**
   * Cleans `v` in place (returns the cleaned value for a string); `skip` are the slots left alone;
   * with `numbers`, numbers too (only needed when the whole-text pass matched digits).
   */
  const walk = (v: unknown, skip: readonly Skip[] | undefined, depth: number, numbers: boolean): unknown => {
    if (typeof v === 'string') return cleanStr(v);
    if (typeof v === 'number') return numbers ? cleanNum(v) : v;
    if (typeof v !== 'object' || v === null) return v;
    if (depth > MAX_DEPTH) {
      // not walked: the serialized event is then sent cleaned whatever it looks like
      deep = true;
      return v;
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i];
        if (typeof x === 'string') v[i] = cleanStr(x);
        else if (typeof x === 'number') {
          if (numbers) v[i] = cleanNum(x);
        } else if (typeof x === 'object' && x !== null) walk(x, skip, depth + 1, numbers);
      }
      return v;
    }
    const o = v as Json;
    let renamed: [string, string][] | undefined;
    for (const k of Object.keys(o)) {
      if (skip?.some((s) => s.obj === o && s.key === k)) continue;
      let x = o[k];
      if (k === 'logprobs' && x !== null && typeof x === 'object') {
        x = safeLogprobs(x);
        put(o, k, x);
      }
      if (typeof x === 'string') put(o, k, cleanStr(x));
      else if (typeof x === 'number') {
        if (numbers) put(o, k, cleanNum(x));
      } else if (typeof x === 'object' && x !== null) walk(x, skip, depth + 1, numbers);
      const ck = cleanStr(k);
      if (ck !== k) {
        renamed ??= [];
        renamed.push([k, ck]);
      }
    }
    if (renamed) {
      for (const [k, ck] of renamed) {
        const x = o[k];
        delete o[k];
        put(o, ck, x);
      }
    }
    return o;
  };

  /** `s` cleaned whole, or undefined when that breaks the JSON (a key's run matched across syntax). */
  const wholeText = (s: string): string | undefined => {
    const c = clean(s);
    if (c === s || deep) return c;
    try {
      JSON.parse(c);
      return c;
    } catch {
      return undefined;
    }
  };

  /** Whether the last `serialize`/`trySerialize` text is exactly the value serialized (nothing cleaned after). */
  let exact = false;

  return {
    cleanStr,
    safeLogprobs,
    /**
     * Cleans a parsed JSON value in place (a string is returned cleaned), its JSON texts normalised
     * first (with a `route`).
     */
    value(v: unknown, skip?: readonly Skip[]): unknown {
      if (route) normalizeJsonTexts(route, v, skip, jsonOutput);
      return walk(v, skip, 0, false);
    },
    /**
     * The value (walked: its strings are clean) serialized, then cleaned whole once more. If that
     * last pass changed the text into something that is not JSON (a run of a key matched across
     * JSON syntax, such as the digits of a number), the numbers are cleaned too and the value
     * serialized again; a value too deep to walk is sent cleaned in any case.
     */
    serialize(v: unknown, skip?: readonly Skip[]): string {
      const s = JSON.stringify(v);
      const c = wholeText(s);
      if (c !== undefined) {
        exact = c === s;
        return c;
      }
      const w = walk(v, skip, 0, true);
      const s2 = JSON.stringify(w);
      const c2 = wholeText(s2);
      exact = c2 === undefined || c2 === s2;
      return c2 ?? s2;
    },
    /**
     * As `serialize`, for a value whose strings were not walked (`walked` false): undefined when
     * the whole-text pass would break the JSON (the caller walks it, then serializes it).
     */
    trySerialize(v: unknown, walked: boolean): string | undefined {
      if (walked) return this.serialize(v);
      const s = JSON.stringify(v);
      const c = wholeText(s);
      exact = c === s;
      return c;
    },
    /**
     * The last text `serialize` or `trySerialize` gave is the value as it now stands, serialized: a
     * client parsing it reads that value (the last whole-text pass changed nothing).
     */
    get exact() {
      return exact;
    },
    /** Set when a value was too deep to walk; reset by the caller per value. */
    get deep() {
      return deep;
    },
    set deep(d: boolean) {
      deep = d;
    },
  };
}

/**
 * How a client appends a field's value `v` to its string (`s += v`, under the SDK's condition):
 * `truthy` only a truthy value (chat `content`: `if (content)`), `nonnull` any but null and
 * undefined, `always` anything (a missing one as `undefined`), `string` strings only (fields no SDK
 * joins, which other clients concatenate). The text appended, or undefined for none.
 */
type Mode = 'truthy' | 'nonnull' | 'always' | 'string';
function pieceOf(v: unknown, mode: Mode): string | undefined {
  if (typeof v === 'string') return v;
  if (mode === 'string' || (mode === 'truthy' && !v) || (mode === 'nonnull' && v == null)) return undefined;
  try {
    return String(v);
  } catch {
    // an object whose `toString` is not a function: the SDK's `+=` throws as well
    return refuse('a streamed text field no client can read');
  }
}

/** A non-negative integer index, as the SDKs key it (a property name); anything else is refused. */
function indexKey(v: unknown, what: string, below = MAX_INDEX): string {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < below) return String(v);
  return refuse(`an event whose ${what} is not an index the clients agree on`);
}

/** A string clients join across streams: its last characters, to check each junction. */
interface Join {
  add(text: string, from: TextStream): void;
}

/** The text a stream sent, as far as joining it with others needs (its start and its end). */
interface Kept {
  text: string;
  head: string | undefined;
}

interface Main {
  order: number;
  seq: number;
  out: string;
}

interface TextStream {
  key: string;
  filter: ResponseFilter;
  /** The event carrying `text` as the next piece of this stream. */
  shape: (text: string) => SseEvent;
  /** The joins the shaped events' text goes into. */
  joins: readonly Join[];
  /** The text sent, kept for the final join check (parts and blocks of text). */
  kept: Kept | undefined;
  /** Its place in the final join (position, then part). */
  place: number[] | undefined;
  /** The generated text (main streams only). */
  main: Main | undefined;
  /** How many characters of text it sent (where its next piece starts in its output). */
  sentLen: number;
}

interface StreamSpec {
  shape: (text: string) => SseEvent;
  joins?: readonly Join[];
  place?: number[];
  main?: number;
  /** The string is JSON text clients parse: its filter reads it normalised (`jsonTextNormalizer`). */
  json?: boolean;
}

/** A piece of a text stream's output, in an event sent (field `key` of an object of it), from `from` on. */
interface Piece {
  obj: Json;
  key: string;
  stream: TextStream;
  from: number;
  text: string;
}

/**
 * A string the openai SDK builds for a Responses stream (lib/responses/ResponseAccumulator) as the
 * client holds it after the events sent so far: a part's `text` or `refusal`, a summary part's `text`,
 * an item's `arguments`, `input` or `code`, the response's `output_text`. Its text is kept in pieces
 * (joined when an event replaces it), with its first and last JOIN_WINDOW characters.
 */
interface Held {
  pieces: string[];
  len: number;
  /** Its first min(len, JOIN_WINDOW) characters. */
  head: string;
  /** Its last characters: min(len, JOIN_WINDOW) of them at least, fewer than 2·JOIN_WINDOW + a piece. */
  tail: string;
  /**
   * Its last `run` characters are one stretch of the output of the relay stream `src`, which ends at
   * `end` of that output: that stream's filter saw them together, so the piece it sends next (from
   * `end`) joins them with nothing else to check.
   */
  src: TextStream | undefined;
  end: number;
  run: number;
  /** Its value is `null` or `undefined`: `''` where the SDK joins it, that word where it appends (`+=`). */
  nil: string | undefined;
  /** Its place in the `output_text` join (item · JOIN_SLOT + part), -1 for a string not in it. */
  at: number;
  /** It is in the list of the join's parts that hold text. */
  listed: boolean;
}
interface HeldPart {
  type: unknown;
  text: Held;
  refusal: Held;
}
interface HeldItem {
  type: unknown;
  content: HeldPart[] | undefined;
  summary: HeldPart[] | undefined;
  arguments: Held;
  input: Held;
  code: Held;
}
/** Items and parts of a Responses answer the relay follows, at most. */
const MAX_HELD = 4 * MAX_STREAMS;
/** Places in the join: an item's parts are numbered from item · JOIN_SLOT (MAX_HELD parts fit). */
const JOIN_SLOT = 2 ** 21;

/** A string of an event that belongs to a text stream, and the piece of the stream it carries. */
interface Slot extends Skip {
  stream: TextStream;
  piece: string;
  joins: readonly Join[];
}

const RESPONSE_TERMINALS = new Set(['response.completed', 'response.failed', 'response.incomplete', 'error']);
const RESPONSE_SNAPSHOTS = new Set(['response.created', 'response.queued', 'response.in_progress']);
/**
 * Responses delta families the SDK appends (`X.delta`), the string each appends to (`field`, and
 * `text`, `refusal`, ... on `X.done`), and whether it is a part's (`content_index`) or a summary
 * part's (`summary_index`) or the item's own.
 */
const RESPONSE_STREAMS: Record<string, { sub: 'c' | 's' | ''; field: string }> = {
  'response.output_text': { sub: 'c', field: 'text' },
  'response.refusal': { sub: 'c', field: 'refusal' },
  'response.reasoning_text': { sub: 'c', field: 'text' },
  'response.reasoning_summary_text': { sub: 's', field: 'text' },
  'response.function_call_arguments': { sub: '', field: 'arguments' },
  'response.mcp_call_arguments': { sub: '', field: 'arguments' },
  'response.custom_tool_call_input': { sub: '', field: 'input' },
  'response.code_interpreter_call_code': { sub: '', field: 'code' },
};
/** The delta and done events of RESPONSE_STREAMS, by type. */
interface StringEvent {
  base: string;
  done: boolean;
  known: { sub: string; field: string };
}
const STRING_EVENTS = new Map<string, StringEvent>(
  Object.entries(RESPONSE_STREAMS).flatMap(([base, known]) =>
    [false, true].map((done) => [`${base}.${done ? 'done' : 'delta'}`, { base, done, known }] as const),
  ),
);
/** The events that change a string the SDK holds (ResponseAccumulator): snapshots, items, parts, texts. */
const HELD_EVENTS = new Set([
  ...RESPONSE_TERMINALS,
  ...RESPONSE_SNAPSHOTS,
  'response.output_item.added',
  'response.output_item.done',
  'response.content_part.added',
  'response.content_part.done',
  'response.reasoning_summary_part.added',
  'response.reasoning_summary_part.done',
  ...STRING_EVENTS.keys(),
]);
/** The item type whose string each item-wide delta family appends to (the SDK ignores it in others). */
const ITEM_STRING_OWNER: Record<string, string> = {
  'response.function_call_arguments': 'function_call',
  'response.mcp_call_arguments': 'mcp_call',
  'response.custom_tool_call_input': 'custom_tool_call',
  'response.code_interpreter_call_code': 'code_interpreter_call',
};
/** Response-wide deltas no SDK joins, which clients may. */
const RESPONSE_AUDIO = new Set(['response.audio', 'response.audio.transcript']);
/** Anthropic delta types and the block string each appends to. */
const ANTHROPIC_DELTAS: Record<string, string> = {
  text_delta: 'text',
  thinking_delta: 'thinking',
  input_json_delta: 'partial_json',
};
const ANTHROPIC_DELTA_TYPE: Record<string, string> = {
  text: 'text_delta',
  thinking: 'thinking_delta',
  partial_json: 'input_json_delta',
};
const LINE_BREAK = /[\r\n]/;

export function createStreamRelay(opts: StreamRelayOptions): StreamRelay {
  const { clean } = opts;
  const kind =
    opts.api === 'openai' && opts.route === 'chat.completions'
      ? 'chat'
      : opts.api === 'openai' && opts.route === 'responses'
        ? 'responses'
        : opts.api === 'anthropic' && opts.route === 'messages'
          ? 'messages'
          : undefined;
  const maxStreams = opts.maxStreams ?? MAX_STREAMS;
  const jc = jsonCleaner(clean, opts.route, opts.jsonOutput === true);
  const keyCheck = (() => {
    if (!opts.secrets) return clean;
    const r = secretRedactor(opts.secrets);
    return (t: string) => r.push(t) + r.end();
  })();
  /** The last window found clean: joins that see the same text (one choice a chunk) check it once. */
  let lastClean = '';
  const windowClean = (w: string) => {
    if (w === lastClean) return true;
    if (keyCheck(w) !== w) return false;
    lastClean = w;
    return true;
  };

  const streams = new Map<string, TextStream>();
  /**
   * This step's Responses events whose text is exactly their object serialized, in the order they were
   * made (the order they go out), and those objects: what the client parses, with no parse needed.
   */
  const stepEvents: (SseEvent | undefined)[] = [];
  const stepObjects: (Json | undefined)[] = [];
  let stepExact = 0;
  /** This step's pieces of text streams in the objects of its events (Responses), latest last. */
  const stepPieces: (Piece | undefined)[] = [];
  let stepPieceCount = 0;
  let pieceIndex: Map<Json, Piece[]> | undefined;
  /** A new step: the lists above start again (overwritten, not shrunk: they are short). */
  const newStep = () => {
    stepExact = 0;
    stepPieceCount = 0;
    pieceIndex = undefined;
  };
  const noteExact = (e: SseEvent, data: Json) => {
    stepEvents[stepExact] = e;
    stepObjects[stepExact++] = data;
  };
  const notePiece = (obj: Json, key: string, stream: TextStream, from: number, text: string) => {
    if (kind === 'responses') stepPieces[stepPieceCount++] = { obj, key, stream, from, text };
  };
  /** The piece of a text stream this step put at `obj[key]`, if that is what it holds. */
  const pieceAt = (obj: unknown, key: string, text: string): Piece | undefined => {
    if (!isObj(obj)) return undefined;
    let p: Piece | undefined;
    if (stepPieceCount <= 16) {
      for (let i = stepPieceCount - 1; i >= 0 && !p; i--)
        if (stepPieces[i]!.obj === obj && stepPieces[i]!.key === key) p = stepPieces[i];
    } else {
      if (!pieceIndex) {
        pieceIndex = new Map();
        for (const x of stepPieces.slice(0, stepPieceCount) as Piece[]) {
          const l = pieceIndex.get(x.obj);
          if (l) l.push(x);
          else pieceIndex.set(x.obj, [x]);
        }
      }
      p = pieceIndex.get(obj)?.findLast((x) => x.key === key);
    }
    return p && p.text === text ? p : undefined;
  };
  /** Strings replaced by an event: keys, and `o<i>`, `o<i>|c<j>`, `c<i>` groups. */
  const closed = new Set<string>();
  let opened = 0;
  let ended = false;
  let seq = 0;
  const mains: Main[] = [];

  /** A join over strings of several streams, checked at each piece when its window mixes them. */
  const join = (): Join => {
    let tail = '';
    let src: TextStream | undefined;
    /** How many characters at the end of `tail` came from `src`. */
    let run = 0;
    return {
      add(text, from) {
        if (text === '') return;
        const same = from === src;
        const others = same ? tail.length > run : tail.length > 0;
        const window = tail + text;
        if (others && !windowClean(window)) refuse('text a client joins across streams holds a key');
        run = same ? run + text.length : text.length;
        src = from;
        tail = window.length > JOIN_WINDOW ? window.slice(-JOIN_WINDOW) : window;
        if (run > tail.length) run = tail.length;
      },
    };
  };
  const keep = (k: Kept, text: string) => {
    if (k.head === undefined) {
      k.text += text;
      if (k.text.length > 2 * JOIN_WINDOW) {
        k.head = k.text.slice(0, JOIN_WINDOW);
        k.text = k.text.slice(-JOIN_WINDOW);
      }
    } else k.text = (k.text + text).slice(-JOIN_WINDOW);
  };
  /** The texts of several strings as a client joins them, in order, checked (their ends meet). */
  const checkJoined = (texts: readonly string[]) => {
    if (texts.filter((t) => t !== '').length < 2) return;
    const joined = texts.join('');
    if (keyCheck(joined) !== joined) refuse('text a client joins across parts holds a key');
  };
  /** Streams ended before the terminal event whose text still counts in the final join. */
  const retired: TextStream[] = [];
  const checkKept = () => {
    const kept = [...streams.values(), ...retired]
      .filter((s): s is TextStream & { kept: Kept; place: number[] } => !!s.kept && !!s.place)
      .sort((a, b) => {
        for (let i = 0; i < Math.max(a.place.length, b.place.length); i++) {
          const d = (a.place[i] ?? -1) - (b.place[i] ?? -1);
          if (d !== 0) return d;
        }
        return 0;
      });
    checkJoined(
      kept.map((s) => (s.kept.head === undefined ? s.kept.text : `${s.kept.head}\n${s.kept.text}`)),
    );
  };

  const close = (key: string) => {
    if (closed.has(key)) return;
    if (closed.size >= MAX_CLOSED) refuse('too many strings replaced');
    closed.add(key);
  };

  const open = (key: string, make: () => StreamSpec): TextStream => {
    let s = streams.get(key);
    if (s) return s;
    if (closed.has(key)) refuse('a delta to a string an event replaced');
    if (++opened > maxStreams) refuse('too many text streams in one answer');
    const spec = make();
    s = {
      key,
      filter: spec.json ? jsonTextFilter(opts.filter()) : opts.filter(),
      shape: spec.shape,
      joins: spec.joins ?? [],
      kept: spec.place ? { text: '', head: undefined } : undefined,
      place: spec.place,
      main: spec.main === undefined ? undefined : { order: spec.main, seq: seq++, out: '' },
      sentLen: 0,
    };
    if (s.main) mains.push(s.main);
    streams.set(key, s);
    return s;
  };

  /**
   * Text of `s` about to be sent: through the joins it goes into (which may refuse), then kept.
   * Returns where it starts in the stream's output.
   */
  const sent = (s: TextStream, text: string, joins: readonly Join[]): number => {
    const from = s.sentLen;
    if (text === '') return from;
    for (const j of joins) j.add(text, s);
    if (s.kept) keep(s.kept, text);
    if (s.main) s.main.out += text;
    s.sentLen += text.length;
    return from;
  };

  /** Ends a stream: what its filter held back, as one more event (none when nothing was held). */
  const flush = (s: TextStream, out: SseEvent[]) => {
    streams.delete(s.key);
    if (s.kept) retired.push(s);
    const tail = s.filter.end();
    if (!tail) return;
    const from = sent(s, tail, s.joins);
    const e = s.shape(tail);
    if (stepExact > 0 && stepEvents[stepExact - 1] === e)
      notePiece(stepObjects[stepExact - 1]!, 'delta', s, from, tail);
    out.push(e);
  };
  /** Ends the streams `pred` picks (but the ones in `keep`), in the order they started. */
  const flushWhere = (
    pred: (s: TextStream) => boolean,
    out: SseEvent[],
    except?: ReadonlySet<TextStream>,
  ) => {
    for (const s of [...streams.values()]) if (!except?.has(s) && pred(s)) flush(s, out);
  };
  /** A string was replaced: what its stream held goes out first, and no delta may follow. */
  const replaced = (key: string, out: SseEvent[]) => {
    const s = streams.get(key);
    if (s) flush(s, out);
    close(key);
  };
  /** Every string under `group` (`o1`, `o1|c0`, `c0`) was replaced. */
  const replacedGroup = (group: string, out: SseEvent[]) => {
    flushWhere((s) => s.key.startsWith(`${group}|`), out);
    close(group);
  };
  const isClosed = (...keys: string[]) => keys.some((k) => closed.has(k));

  /** Passes the slots' pieces through their streams, in order; with `finish`, each stream ends inline. */
  const runSlots = (slots: readonly Slot[], finish: boolean) => {
    for (const slot of slots) {
      const s = slot.stream;
      const v = s.filter.push(slot.piece);
      const from = sent(s, v, slot.joins);
      put(slot.obj, slot.key, v);
      notePiece(slot.obj, slot.key, s, from, v);
    }
    if (!finish) return;
    const last = new Map<TextStream, Slot>();
    for (const slot of slots) last.set(slot.stream, slot);
    for (const [s, slot] of last) {
      streams.delete(s.key);
      if (s.kept) retired.push(s);
      const tail = s.filter.end();
      const from = s.sentLen - (slot.obj[slot.key] as string).length;
      sent(s, tail, slot.joins);
      const v = (slot.obj[slot.key] as string) + tail;
      put(slot.obj, slot.key, v);
      notePiece(slot.obj, slot.key, s, from, v);
    }
  };

  /**
   * Set per input event: whether its strings must be walked one by one. Without JSON escapes every
   * string of the event is in its serialization as is, between quotes, and the serialization is
   * cleaned whole: the walk adds nothing but the logprobs checks (and a fallback, below).
   */
  let walkAll = true;
  const eventName = (ev: string | undefined) => (ev === undefined ? undefined : jc.cleanStr(ev));
  /** An event sent as `data` (slots already through their streams), cleaned. */
  const emitEvent = (ev: string | undefined, data: unknown, slots: readonly Slot[], out: SseEvent[]) => {
    jc.deep = false;
    let text: string | undefined;
    if (!walkAll) text = jc.trySerialize(data, false);
    if (text === undefined) {
      jc.value(data, slots);
      text = jc.serialize(data, slots);
    }
    const e = { event: eventName(ev), data: text };
    if (kind === 'responses' && jc.exact && isObj(data)) noteExact(e, data);
    out.push(e);
    return text;
  };
  /** An event the relay makes (its strings are clean already), serialized and cleaned whole. */
  const serialize = (ev: string | undefined, data: unknown): SseEvent => {
    jc.deep = false;
    const e = { event: eventName(ev), data: jc.serialize(data) };
    if (kind === 'responses' && jc.exact && isObj(data)) noteExact(e, data);
    return e;
  };
  /** Everything still held, before a terminal event (but `except`, ended inline). */
  const flushAll = (out: SseEvent[], except?: ReadonlySet<TextStream>) => {
    flushWhere(() => true, out, except);
    releaseAllLogprobs(out);
  };

  // ------------------------------------------------------------ Chat Completions

  const jAll = join();
  const jFirst = join();
  /** The last chat chunk sent (cleaned): the envelope of the chunks the relay makes. */
  let lastChunk: Json | undefined;
  /** Choices whose `function_call` the client stored (later ones append to its arguments). */
  const functionCalls = new Set<string>();
  /** Chat logprobs held per choice until the terminal event. */
  const heldLogprobs = new Map<string, { index: unknown; content?: unknown[]; refusal?: unknown[] }>();

  /** A chunk shaped like the provider's, for `choice` (envelope of the last chunk sent). */
  const chunkFor = (choice: Json): SseEvent => {
    const env: Json = { ...(lastChunk ?? { object: 'chat.completion.chunk' }) };
    delete env.obfuscation;
    if ('usage' in env) env.usage = null;
    env.choices = [choice];
    return serialize(undefined, env);
  };
  /** A path in a chat delta: field names, and tool calls by their `index` (as sent). */
  type Seg = string | { tool: unknown };
  /** The delta object holding `text` at `path` (names cleaned). */
  const deltaAt = (path: readonly Seg[], text: string): Json => {
    const root: Json = {};
    let cur = root;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      if (typeof seg !== 'string') {
        const tc: Json = seg.tool === undefined ? {} : { index: seg.tool };
        put(cur, 'tool_calls', [tc]);
        cur = tc;
        continue;
      }
      const name = jc.cleanStr(seg);
      if (i === path.length - 1) put(cur, name, text);
      else {
        const next: Json = {};
        put(cur, name, next);
        cur = next;
      }
    }
    return root;
  };
  /** A choice of a chunk: its stream group (`c<index>`, `cu` without one), index as sent, place in the chunk. */
  interface Choice {
    group: string;
    index: unknown;
    pos: number;
  }

  /** The slot of a chat string: the stream `group:path` for the choice at `pos` of its chunk. */
  const chatSlot = (
    obj: Json,
    key: string,
    piece: string,
    choice: Choice,
    path: readonly Seg[],
    slots: Slot[],
  ) => {
    const name = path.map((p) =>
      typeof p === 'string' ? p : `#${p.tool === undefined ? 'u' : String(p.tool)}`,
    );
    const k = `${choice.group}|${name.join('.')}`;
    if (isClosed(choice.group, k)) refuse('a delta to a choice whose message an event replaced');
    const content = path.length === 1 && path[0] === 'content';
    // JSON text: `tool_calls[].function.arguments`, `function_call.arguments`
    const json =
      (content && opts.jsonOutput === true) ||
      (path.at(-1) === 'arguments' &&
        ((path.length === 2 && path[0] === 'function_call') ||
          (path.length === 3 && typeof path[0] !== 'string' && path[1] === 'function')));
    const stream = open(k, () => ({
      json,
      joins: content ? [jAll, jFirst] : [],
      ...(content ? { main: choice.group === 'cu' ? MAX_INDEX : Number(choice.group.slice(1)) } : {}),
      shape: (text) =>
        chunkFor({
          ...(choice.index === undefined ? {} : { index: choice.index }),
          delta: deltaAt(path, text),
          logprobs: null,
          finish_reason: null,
        }),
    }));
    slots.push({
      obj,
      key,
      stream,
      piece,
      joins: content ? (choice.pos === 0 ? [jAll, jFirst] : [jAll]) : [],
    });
  };

  /**
   * Other strings of a delta (fields of OpenAI-compatible servers, which no SDK joins but clients
   * do): strings only, objects followed (not `skip`, handled by the caller).
   */
  const chatOther = (
    obj: Json,
    choice: Choice,
    path: readonly Seg[],
    slots: Slot[],
    depth: number,
    skip?: readonly string[],
  ) => {
    for (const k of Object.keys(obj)) {
      if (OVERWRITTEN.has(k) || skip?.includes(k)) continue;
      const v = obj[k];
      if (typeof v === 'string') chatSlot(obj, k, v, choice, [...path, k], slots);
      else if (isObj(v) && depth < 8) chatOther(v, choice, [...path, k], slots, depth + 1);
    }
  };

  /** The strings of a choice's delta the client appends (ChatCompletionStream#accumulateChatCompletion). */
  const chatDelta = (d: Json, choice: Choice, slots: Slot[]) => {
    for (const k of Object.keys(d)) {
      const v = d[k];
      if (k === 'content' || k === 'refusal') {
        const piece = pieceOf(v, 'truthy');
        if (piece !== undefined) chatSlot(d, k, piece, choice, [k], slots);
      } else if (k === 'audio') {
        if (!isObj(v)) continue;
        for (const f of ['data', 'transcript']) {
          const piece = pieceOf(v[f], 'nonnull');
          if (piece !== undefined) chatSlot(v, f, piece, choice, ['audio', f], slots);
        }
        chatOther(v, choice, ['audio'], slots, 1, ['data', 'transcript']);
      } else if (k === 'function_call') {
        if (!v) continue;
        // the first one is stored as it is (its arguments start the string); later truthy ones append
        const first = !functionCalls.has(choice.group);
        functionCalls.add(choice.group);
        if (!isObj(v)) continue;
        const piece = pieceOf(v.arguments, first ? 'nonnull' : 'truthy');
        if (piece !== undefined)
          chatSlot(v, 'arguments', piece, choice, ['function_call', 'arguments'], slots);
        chatOther(v, choice, ['function_call'], slots, 1, ['arguments']);
      } else if (k === 'tool_calls') {
        if (!Array.isArray(v)) continue;
        for (const tc of v) {
          if (!isObj(tc)) continue;
          // keyed as the SDK keys them (`tool_calls[index]`); a missing index is its own key
          if (tc.index !== undefined) indexKey(tc.index, 'tool call index');
          const tool = { tool: tc.index };
          const fn = tc.function;
          if (isObj(fn)) {
            const piece = pieceOf(fn.arguments, 'truthy');
            if (piece !== undefined)
              chatSlot(fn, 'arguments', piece, choice, [tool, 'function', 'arguments'], slots);
            chatOther(fn, choice, [tool, 'function'], slots, 2, ['arguments']);
          }
          chatOther(tc, choice, [tool], slots, 1, ['function', 'index']);
        }
      } else if (!OVERWRITTEN.has(k)) {
        if (typeof v === 'string') chatSlot(d, k, v, choice, [k], slots);
        else if (isObj(v)) chatOther(v, choice, [k], slots, 1);
      }
    }
  };
  const holdLogprobs = (group: string, index: unknown, lp: unknown) => {
    if (!isObj(lp)) return;
    let h = heldLogprobs.get(group);
    if (!h) {
      if (heldLogprobs.size >= maxStreams) refuse('too many choices with logprobs');
      h = { index };
      heldLogprobs.set(group, h);
    }
    for (const k of ['content', 'refusal'] as const) {
      const l = lp[k];
      if (Array.isArray(l)) {
        h[k] ??= [];
        h[k].push(...l);
      }
    }
  };
  /** Held chat logprobs, as chunks: checked (null if anything in them would be redacted). */
  const releaseAllLogprobs = (out: SseEvent[]) => {
    for (const [group, h] of heldLogprobs) {
      heldLogprobs.delete(group);
      const lp = jc.safeLogprobs({ content: h.content ?? null, refusal: h.refusal ?? null });
      out.push(
        chunkFor({
          ...(h.index === undefined ? {} : { index: h.index }),
          delta: {},
          logprobs: lp,
          finish_reason: null,
        }),
      );
    }
  };

  const chatChunk = (data: Json, out: SseEvent[], terminal: boolean) => {
    const slots: Slot[] = [];
    const choices = data.choices;
    if (Array.isArray(choices)) {
      for (let pos = 0; pos < choices.length; pos++) {
        const c = choices[pos];
        if (!isObj(c)) continue;
        const group = c.index === undefined ? 'cu' : `c${indexKey(c.index, 'choice index')}`;
        const choice = { group, index: c.index, pos };
        // `message` replaces the choice's message (Object.assign(choice, other)): its strings end
        if (Object.hasOwn(c, 'message')) replacedGroup(group, out);
        if (isObj(c.delta)) chatDelta(c.delta, choice, slots);
        if (c.logprobs !== undefined && c.logprobs !== null) {
          holdLogprobs(group, c.index, c.logprobs);
          put(c, 'logprobs', null);
        }
      }
    }
    if (terminal) {
      flushAll(out, new Set(slots.map((s) => s.stream)));
      runSlots(slots, true);
    } else runSlots(slots, false);
    emitEvent(undefined, data, slots, out);
    lastChunk = data;
  };

  // ------------------------------------------------------------ Responses

  const jOutput = join();
  /** The SDK's `output` list: an entry per `output_item.added` (or per item of a snapshot). */
  const items: { id: unknown; parts: number; summary: number }[] = [];
  /** Responses: the sequence number of the last event (the relay's events reuse it). */
  let lastSeq: unknown;

  /** An output position the event addresses: an index of an item that exists. */
  const outputIndex = (data: Json) => indexKey(data.output_index, 'output_index', items.length);

  /** The strings an item starts with (its parts' texts, its arguments, ...), as slots at position `p`. */
  const itemStrings = (item: unknown, p: number): [Json, string, string][] => {
    if (!isObj(item)) return [];
    const found: [Json, string, string][] = [];
    for (const f of ['arguments', 'input', 'code'])
      if (item[f] !== undefined && item[f] !== null) found.push([item, f, `o${p}||${f}`]);
    for (const [list, sub] of [
      [item.content, 'c'],
      [item.summary, 's'],
    ] as const) {
      if (!Array.isArray(list)) continue;
      list.forEach((part, i) => {
        if (!isObj(part)) return;
        for (const f of ['text', 'refusal'])
          if (part[f] !== undefined && part[f] !== null) found.push([part, f, `o${p}|${sub}${i}|${f}`]);
      });
    }
    return found;
  };
  const startSlots = (
    found: readonly [Json, string, string][],
    shape: (key: string) => StreamSpec,
    slots: Slot[],
  ) => {
    for (const [obj, f, key] of found) {
      const piece = pieceOf(obj[f], 'nonnull');
      if (piece === undefined || piece === '') continue;
      const stream = open(key, () => shape(key));
      slots.push({ obj, key: f, stream, piece, joins: [] });
    }
  };

  /** The delta event of a Responses stream, shaped from the first event of it. */
  const responseSpec = (type: string, data: Json, main: boolean): StreamSpec => {
    const like: Json = { type: jc.cleanStr(type) };
    for (const f of ['item_id', 'output_index', 'content_index', 'summary_index']) {
      const v = data[f];
      if (v !== undefined) like[f] = typeof v === 'string' ? jc.cleanStr(v) : v;
    }
    const hasLogprobs = 'logprobs' in data;
    return {
      json:
        type === 'response.function_call_arguments.delta' ||
        type === 'response.mcp_call_arguments.delta' ||
        (type === 'response.output_text.delta' && opts.jsonOutput === true),
      ...(type === 'response.output_text.delta' ? { joins: [jOutput] } : {}),
      ...(main ? { main: seq } : {}),
      shape: (text) =>
        serialize(type, {
          ...like,
          delta: text,
          ...(hasLogprobs ? { logprobs: [] } : {}),
          sequence_number: lastSeq,
        }),
    };
  };
  /** The spec of a string an item or part starts with: later deltas to it are shaped as `type`. */
  const startSpec = (key: string): StreamSpec => {
    const [o, sub, field] = key.split('|') as [string, string, string];
    const type =
      sub === ''
        ? field === 'arguments'
          ? 'response.function_call_arguments.delta'
          : field === 'input'
            ? 'response.custom_tool_call_input.delta'
            : 'response.code_interpreter_call_code.delta'
        : sub.startsWith('s')
          ? 'response.reasoning_summary_text.delta'
          : field === 'refusal'
            ? 'response.refusal.delta'
            : 'response.output_text.delta';
    const ids: Json = { output_index: Number(o.slice(1)) };
    const item = items[Number(o.slice(1))];
    if (typeof item?.id === 'string') ids.item_id = item.id;
    if (sub.startsWith('c')) ids.content_index = Number(sub.slice(1));
    if (sub.startsWith('s')) ids.summary_index = Number(sub.slice(1));
    return responseSpec(type, ids, type === 'response.output_text.delta');
  };

  const responsesEvent = (type: string, data: Json, out: SseEvent[], terminal: boolean) => {
    const slots: Slot[] = [];
    // the events the relay makes before this one take its number
    if (typeof data.sequence_number === 'number') lastSeq = data.sequence_number;
    if (RESPONSE_SNAPSHOTS.has(type)) {
      // the SDK replaces its whole snapshot: every output string ends (a position that had a stream
      // takes no more deltas), and a delta would append to the strings the snapshot's items bring
      // (a position with one that is not empty takes none either)
      const had = new Set([...streams.keys()].filter((k) => k.startsWith('o')).map((k) => k.split('|')[0]!));
      flushWhere((s) => s.key.startsWith('o'), out);
      const output = isObj(data.response) && Array.isArray(data.response.output) ? data.response.output : [];
      for (let p = 0; p < Math.max(items.length, output.length); p++) {
        const brings = itemStrings(output[p], p).some(([o, f]) => (pieceOf(o[f], 'nonnull') ?? '') !== '');
        if (had.has(`o${p}`) || brings) close(`o${p}`);
      }
      items.length = 0;
      for (const item of output) {
        const it = isObj(item) ? item : {};
        items.push({
          id: it.id,
          parts: Array.isArray(it.content) ? it.content.length : 0,
          summary: Array.isArray(it.summary) ? it.summary.length : 0,
        });
      }
    } else if (type === 'response.output_item.added') {
      const p = Number(indexKey(data.output_index, 'output_index', items.length + 1));
      if (p !== items.length) refuse('an item added at another position than the next');
      if (items.length >= MAX_INDEX) refuse('too many items in one answer');
      const item = isObj(data.item) ? data.item : {};
      if (item.id !== undefined && items.some((i) => i.id === item.id)) refuse('two items with one id');
      items.push({
        id: item.id,
        parts: Array.isArray(item.content) ? item.content.length : 0,
        summary: Array.isArray(item.summary) ? item.summary.length : 0,
      });
      // a position a snapshot replaced stays closed: clients keyed by index would join across items
      if (closed.has(`o${p}`)) refuse('an item added at a position whose strings were replaced');
      startSlots(itemStrings(item, p), startSpec, slots);
    } else if (type === 'response.output_item.done') {
      replacedGroup(`o${outputIndex(data)}`, out);
    } else if (type === 'response.content_part.added' || type === 'response.reasoning_summary_part.added') {
      const p = Number(outputIndex(data));
      const summary = type === 'response.reasoning_summary_part.added';
      const item = items[p]!;
      const at = Number(indexKey(summary ? data.summary_index : data.content_index, 'part index'));
      if (at !== (summary ? item.summary : item.parts))
        refuse('a part added at another position than the next');
      if (summary) item.summary++;
      else item.parts++;
      const part = data.part;
      if (isObj(part)) {
        const sub = `${summary ? 's' : 'c'}${at}`;
        const found: [Json, string, string][] = [];
        for (const f of ['text', 'refusal'])
          if (part[f] !== undefined && part[f] !== null) found.push([part, f, `o${p}|${sub}|${f}`]);
        startSlots(found, startSpec, slots);
      }
    } else if (type === 'response.content_part.done' || type === 'response.reasoning_summary_part.done') {
      const p = outputIndex(data);
      const summary = type === 'response.reasoning_summary_part.done';
      const at = indexKey(summary ? data.summary_index : data.content_index, 'part index');
      replacedGroup(`o${p}|${summary ? 's' : 'c'}${at}`, out);
    } else if (type.endsWith('.delta') || type.endsWith('.done')) {
      const done = type.endsWith('.done');
      const base = type.slice(0, done ? -'.done'.length : -'.delta'.length);
      const known = RESPONSE_STREAMS[base];
      let key: string | undefined;
      let group: string[] = [];
      if (known) {
        const p = outputIndex(data);
        if (
          data.item_id !== undefined &&
          items[Number(p)]!.id !== undefined &&
          data.item_id !== items[Number(p)]!.id
        )
          refuse('a delta whose item_id is not its item’s');
        const sub =
          known.sub === ''
            ? ''
            : `${known.sub}${indexKey(known.sub === 'c' ? data.content_index : data.summary_index, 'part index')}`;
        key = `o${p}|${sub}|${known.field}`;
        group = sub === '' ? [`o${p}`] : [`o${p}`, `o${p}|${sub}`];
      } else if (RESPONSE_AUDIO.has(base)) key = `a|${base}`;
      else if (!done && typeof data.delta === 'string') {
        const ids = ['output_index', 'content_index', 'summary_index', 'item_id'].map((f) => data[f]);
        key = `u|${base}|${JSON.stringify(ids)}`;
      } else if (done) {
        const ids = ['output_index', 'content_index', 'summary_index', 'item_id'].map((f) => data[f]);
        const k = `u|${base}|${JSON.stringify(ids)}`;
        if (streams.has(k)) key = k;
      }
      if (key !== undefined) {
        if (done) replaced(key, out);
        else {
          if (isClosed(...group, key)) refuse('a delta to a string an event replaced');
          const piece = pieceOf(data.delta, known || RESPONSE_AUDIO.has(base) ? 'always' : 'string');
          if (piece !== undefined) {
            const stream = open(key, () => responseSpec(type, data, base === 'response.output_text'));
            // the complete list comes with the `.done` event, checked whole
            if (Array.isArray(data.logprobs)) data.logprobs = [];
            slots.push({ obj: data, key: 'delta', stream, piece, joins: stream.joins });
          }
        }
      }
    }
    if (terminal) {
      flushAll(out, new Set(slots.map((s) => s.stream)));
      runSlots(slots, true);
      // what the SDK holds after it (a terminal response is its final snapshot) is checked by heldStep
      emitEvent(type, data, slots, out);
      return;
    }
    runSlots(slots, false);
    emitEvent(type, data, slots, out);
  };

  // ------------------------------------------------------------ Responses: what the SDK holds

  /**
   * The strings the openai SDK holds for a Responses stream, rebuilt from the events the client gets
   * (as ResponseAccumulator and addOutputText build them), checked after every event before it goes
   * out: each string an event appends to or sets, and `output_text` (its own string, reset to the join
   * of every `output_text` part of every message at the events that call addOutputText, appended to by
   * each `output_text` delta) and that join, the final text. Only the text around a change is checked
   * (JOIN_WINDOW characters each side), and not even that when the change is a piece a text stream sends
   * right after the ones the string ends with (its filter saw them together) or a string of one event
   * (cleaned whole) with nothing else in reach.
   */
  let held: HeldItem[] = [];
  /** Items and parts in `held`. */
  let heldCount = 0;
  /** The parts of the `output_text` join that hold text, in order (of `at`). */
  let joined: Held[] = [];
  const blank = (nil: string | undefined, at = -1): Held => ({
    pieces: [],
    len: 0,
    head: '',
    tail: '',
    src: undefined,
    end: 0,
    run: 0,
    nil,
    at,
    listed: false,
  });
  /** The string an event sets (`obj[key]`, kept as the SDK keeps it: a clone), at place `at` of the join. */
  const heldOf = (obj: unknown, key: string, at = -1): Held => {
    const v = isObj(obj) ? obj[key] : undefined;
    if (v === null || v === undefined) return blank(String(v), at);
    const t = pieceOf(v, 'always') as string;
    const p = pieceAt(obj, key, t);
    return {
      pieces: t === '' ? [] : [t],
      len: t.length,
      head: t.slice(0, JOIN_WINDOW),
      tail: t.slice(-JOIN_WINDOW),
      src: p?.stream,
      end: p ? p.from + t.length : 0,
      run: p ? t.length : 0,
      nil: undefined,
      at,
      listed: false,
    };
  };

  /** The index in `joined` of the first part at or after place `at`. */
  const seek = (at: number): number => {
    let lo = 0;
    let hi = joined.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (joined[m]!.at < at) lo = m + 1;
      else hi = m;
    }
    return lo;
  };
  /** Keeps `joined` right for `h`, a part of the join that may have come to hold text or no longer does. */
  const relist = (h: Held) => {
    if (h.at < 0) return;
    const has = h.nil === undefined && h.len > 0;
    if (has === h.listed) return;
    if (has) joined.splice(seek(h.at), 0, h);
    else joined.splice(seek(h.at), 1);
    h.listed = has;
  };
  const unlist = (h: Held) => {
    if (h.listed) joined.splice(seek(h.at), 1);
    h.listed = false;
  };
  /** The last `n` characters of the `output_text` join before place `at`. */
  const joinedBefore = (at: number, n: number): string => {
    let out = '';
    for (let k = seek(at) - 1; k >= 0 && out.length < n; k--) {
      const h = joined[k]!;
      const need = n - out.length;
      out = (h.len > need ? h.tail.slice(-need) : h.tail) + out;
    }
    return out;
  };
  /** The first `n` characters of the `output_text` join after place `at`. */
  const joinedAfter = (at: number, n: number): string => {
    let out = '';
    for (let k = seek(at + 1); k < joined.length && out.length < n; k++) {
      const h = joined[k]!;
      const need = n - out.length;
      out += h.len > need ? h.head.slice(0, need) : h.head;
    }
    return out;
  };

  const count = (n: number) => {
    heldCount += n;
    if (heldCount > MAX_HELD) refuse('too many items and parts in one answer');
  };
  /** A part, at place `at` of the join if it is an `output_text` part of a message (-1: it is not). */
  const partOf = (v: unknown, at: number): HeldPart => {
    count(1);
    const type = isObj(v) ? v.type : undefined;
    const text = heldOf(v, 'text', type === 'output_text' ? at : -1);
    relist(text);
    return { type, text, refusal: heldOf(v, 'refusal') };
  };
  /** Item `i` (`v`, as an event gives it). */
  const itemOf = (v: unknown, i: number): HeldItem => {
    count(1);
    const it = isObj(v) ? v : {};
    const message = it.type === 'message';
    return {
      type: it.type,
      content: Array.isArray(it.content)
        ? it.content.map((p, c) => partOf(p, message ? i * JOIN_SLOT + c : -1))
        : undefined,
      summary: Array.isArray(it.summary) ? it.summary.map((p) => partOf(p, -1)) : undefined,
      arguments: heldOf(it, 'arguments'),
      input: heldOf(it, 'input'),
      code: heldOf(it, 'code'),
    };
  };
  /** An item or part an event replaces: out of the join, and of the count. */
  const dropPart = (p: HeldPart) => {
    unlist(p.text);
    heldCount--;
  };
  const dropItem = (it: HeldItem) => {
    for (const p of it.content ?? []) dropPart(p);
    heldCount -= 1 + (it.summary?.length ?? 0);
  };
  /** The entry of `list` an event's index names, if it exists (the SDK throws otherwise). */
  const entry = <T>(list: readonly T[] | undefined, at: unknown): T | undefined =>
    list && typeof at === 'number' && Number.isInteger(at) && at >= 0 && at < list.length
      ? list[at]
      : undefined;
  const whole = (h: Held): string => {
    if (h.pieces.length > 1) h.pieces = [h.pieces.join('')];
    return h.pieces[0] ?? '';
  };
  /** A string's text as addOutputText joins it (`null` and `undefined` as nothing). */
  const joinText = (h: Held): string => (h.nil === undefined ? whole(h) : '');
  /** The parts of the join in item `i` (all of them: `c` undefined) or its part `c`. */
  const joinedIn = (i: number, c?: number): Held[] => {
    const it = held[i];
    const parts = it?.type === 'message' ? (it.content ?? []) : [];
    const some = c === undefined ? parts : parts.slice(c, c + 1);
    return some.filter((p) => p.text.at >= 0).map((p) => p.text);
  };
  const joinedNow = (i: number, c?: number) => joinedIn(i, c).map(joinText).join('');
  const clear = (window: string) => {
    if (!windowClean(window)) refuse('a string the client’s SDK builds would hold a key');
  };

  /** The SDK's own `output_text` (its last characters). */
  let outputText = blank('');
  /** addOutputText: `output_text` is the join again. */
  const rejoin = () => {
    const tail = joinedBefore(Number.MAX_SAFE_INTEGER, JOIN_WINDOW);
    const last = joined.at(-1);
    outputText = {
      ...blank(undefined),
      len: tail.length,
      tail,
      src: last?.src,
      end: last?.end ?? 0,
      run: last ? Math.min(last.run, tail.length) : 0,
    };
  };

  /** Whether piece `p` goes on where `h` ends, in the same stream's output (an empty `h`: at its start). */
  const follows = (h: Held, p: Piece | undefined) =>
    p !== undefined && (h.len === 0 ? p.from === 0 : h.src === p.stream && h.end === p.from);
  /** Appends `t` to `h` (`+=`), after the caller checked it; `keep`: its whole text is kept (the join's parts). */
  const grow = (h: Held, t: string, p: Piece | undefined, keep: boolean) => {
    const on = follows(h, p);
    h.run = on ? h.run + t.length : p ? t.length : 0;
    h.src = p?.stream;
    h.end = p ? p.from + t.length : 0;
    if (keep) h.pieces.push(t);
    h.len += t.length;
    if (h.head.length < JOIN_WINDOW) h.head = (h.head + t).slice(0, JOIN_WINDOW);
    h.tail += t;
    if (h.tail.length > 2 * JOIN_WINDOW) h.tail = h.tail.slice(-JOIN_WINDOW);
    if (!h.listed) relist(h);
  };
  /** `+=` on a `null` or `undefined` value starts from its name (`code` from `''`: `?? ''`). */
  const unnil = (h: Held, word: string) => {
    Object.assign(h, { ...blank(undefined, h.at), listed: h.listed, len: word.length });
    h.pieces = word ? [word] : [];
    h.head = h.tail = word;
    relist(h);
  };
  /** The SDK appends `t` to `h`, a string that is not part of the `output_text` join. */
  const append = (h: Held, t: string, p: Piece | undefined, nilAs?: string) => {
    if (h.nil !== undefined) unnil(h, nilAs ?? h.nil);
    if (t === '') return;
    if (!(follows(h, p) && h.run >= Math.min(h.len, JOIN_WINDOW))) clear(h.tail.slice(-JOIN_WINDOW) + t);
    grow(h, t, p, false);
  };

  /**
   * Some parts of the `output_text` join changed (`now`, between the texts `before` and `after` them;
   * `old` their text before): the text around what changed is checked, unless it lies within one of
   * them (strings of one event, cleaned whole, or a piece of one stream).
   */
  const rejoined = (old: string, now: readonly Held[], before: string, after: string) => {
    const texts = now.map(joinText);
    const text = texts.join('');
    if (text === old) return;
    const max = Math.min(old.length, text.length);
    let a = 0;
    while (a < max && old.charCodeAt(a) === text.charCodeAt(a)) a++;
    let z = 0;
    while (z < max - a && old.charCodeAt(old.length - 1 - z) === text.charCodeAt(text.length - 1 - z)) z++;
    const from = Math.max(a - JOIN_WINDOW, -before.length);
    const to = Math.min(text.length - z + JOIN_WINDOW, text.length + after.length);
    let at = 0;
    for (const t of texts) {
      if (from >= at && to <= at + t.length) return;
      at += t.length;
    }
    clear(
      (from < 0 ? before.slice(before.length + from) : '') +
        text.slice(Math.max(from, 0), Math.min(to, text.length)) +
        (to > text.length ? after.slice(0, to - text.length) : ''),
    );
  };
  /** Item `i`'s part `c` (all its parts: `c` undefined) changed: `old` was their joined text. */
  const rejoinedAt = (i: number, c: number | undefined, old: string) =>
    rejoined(
      old,
      joinedIn(i, c),
      joinedBefore(i * JOIN_SLOT + (c ?? 0), JOIN_WINDOW),
      joinedAfter(c === undefined ? (i + 1) * JOIN_SLOT - 1 : i * JOIN_SLOT + c, JOIN_WINDOW),
    );

  /** The SDK appends an `output_text` delta to part `c` of message `i`, and to `output_text`. */
  const appendText = (i: number, c: number, h: Held, t: string, p: Piece | undefined) => {
    if (h.nil !== undefined) {
      const old = joinedNow(i, c);
      unnil(h, h.nil);
      rejoinedAt(i, c, old);
    }
    if (t !== '') {
      const right = joinedAfter(h.at, JOIN_WINDOW);
      // the text in reach is this piece and the ones of its stream just before it
      const own =
        right === '' &&
        follows(h, p) &&
        (h.len >= JOIN_WINDOW ? h.run >= JOIN_WINDOW : h.run >= h.len && joinedBefore(h.at, 1) === '');
      if (!own)
        clear(
          (h.len >= JOIN_WINDOW
            ? h.tail.slice(-JOIN_WINDOW)
            : joinedBefore(h.at, JOIN_WINDOW - h.len) + h.tail) +
            t +
            right,
        );
      grow(h, t, p, true);
    }
    append(outputText, t, p);
  };

  /** A delta or done event (`str`) for item `at`: the string it appends to or sets, checked. */
  const heldString = (d: Json, at: number, item: HeldItem, str: StringEvent) => {
    const { base, done, known } = str;
    const message = item.type === 'message';
    const reasoning = item.type === 'reasoning';
    // the string the SDK appends to or sets (none: the SDK ignores the event, or throws)
    let h: Held | undefined;
    let c: number | undefined;
    let nilAs: string | undefined;
    if (base === 'response.output_text' || base === 'response.refusal') {
      const part = message ? entry(item.content, d.content_index) : undefined;
      const want = base === 'response.output_text' ? 'output_text' : 'refusal';
      if (part?.type === want) {
        h = want === 'refusal' ? part.refusal : part.text;
        c = d.content_index as number;
      }
    } else if (base === 'response.reasoning_text') {
      const part = reasoning ? entry(item.content, d.content_index) : undefined;
      if (part?.type === 'reasoning_text') h = part.text;
    } else if (base === 'response.reasoning_summary_text') {
      h = reasoning ? entry(item.summary, d.summary_index)?.text : undefined;
    } else {
      if (item.type === ITEM_STRING_OWNER[base]) h = item[known.field as 'arguments' | 'input' | 'code'];
      // `(output.code ?? '') + delta`
      if (base === 'response.code_interpreter_call_code') nilAs = '';
    }
    if (!h) return;
    const text = base === 'response.output_text';
    if (done) {
      // `*.done` sets the string (`output_text.done`: addOutputText)
      const old = text ? joinedNow(at, c) : '';
      unlist(h);
      Object.assign(h, heldOf(d, known.field, h.at));
      relist(h);
      if (text) {
        rejoinedAt(at, c, old);
        rejoin();
      }
    } else {
      const t = pieceOf(d.delta, 'always') as string;
      const p = pieceAt(d, 'delta', t);
      if (text) appendText(at, c as number, h, t, p);
      else append(h, t, p, nilAs);
    }
  };

  /** One event as the client gets it (`d`, parsed): the SDK's strings after it, checked. */
  const heldEvent = (d: Json) => {
    const type = d.type;
    if (typeof type !== 'string') return;
    const str = STRING_EVENTS.get(type);
    const i = d.output_index;
    if (str) {
      const item = entry(held, i);
      if (item) heldString(d, i as number, item, str);
      return;
    }
    if (RESPONSE_SNAPSHOTS.has(type) || RESPONSE_TERMINALS.has(type)) {
      if (type === 'error') return;
      // cloneResponse: the whole snapshot, and its own `output_text` unless it has none (or null)
      const r = isObj(d.response) ? d.response : {};
      const old = joined.map(joinText).join('');
      heldCount = 0;
      joined = [];
      held = Array.isArray(r.output) ? r.output.map(itemOf) : [];
      rejoined(old, joined.slice(), '', '');
      if (Object.hasOwn(r, 'output_text') && r.output_text !== null && r.output_text !== undefined)
        outputText = { ...heldOf(r, 'output_text'), src: undefined, run: 0 };
      else rejoin();
      return;
    }
    if (type === 'response.output_item.added') {
      // pushed at the end, whatever its output_index says
      const n = held.length;
      held.push(itemOf(d.item, n));
      if (held[n]!.type === 'message') {
        rejoinedAt(n, undefined, '');
        rejoin();
      }
      return;
    }
    const item = entry(held, i);
    if (!item) return;
    const at = i as number;
    const message = item.type === 'message';
    const reasoning = item.type === 'reasoning';
    if (type === 'response.output_item.done') {
      const old = joinedNow(at);
      dropItem(item);
      held[at] = itemOf(d.item, at);
      rejoinedAt(at, undefined, old);
      if (held[at]!.type === 'message') rejoin();
    } else if (type === 'response.content_part.added' || type === 'response.content_part.done') {
      const part = d.part;
      const pt = isObj(part) ? part.type : undefined;
      const added = type === 'response.content_part.added';
      if (message && pt !== 'reasoning_text') {
        if (!item.content) return;
        const c = added ? item.content.length : d.content_index;
        const was = entry(item.content, c);
        if (!added && !was) return;
        const old = added ? '' : joinedNow(at, c as number);
        if (was) dropPart(was);
        item.content[c as number] = partOf(part, at * JOIN_SLOT + (c as number));
        rejoinedAt(at, c as number, old);
        if (pt === 'output_text') rejoin();
      } else if (reasoning && pt === 'reasoning_text') {
        if (added) {
          item.content ??= [];
          item.content.push(partOf(part, -1));
        } else {
          const was = entry(item.content, d.content_index);
          if (!was) return;
          dropPart(was);
          item.content![d.content_index as number] = partOf(part, -1);
        }
      }
    } else if (type === 'response.reasoning_summary_part.added') {
      if (reasoning && item.summary) item.summary.push(partOf(d.part, -1));
    } else if (type === 'response.reasoning_summary_part.done') {
      const was = reasoning ? entry(item.summary, d.summary_index) : undefined;
      if (!was) return;
      dropPart(was);
      item.summary![d.summary_index as number] = partOf(d.part, -1);
    }
  };
  /** The events of a step as the client reads them: what its SDK holds after each, checked. */
  const heldStep = (out: readonly SseEvent[]) => {
    let k = 0;
    for (const e of out) {
      // the objects of exact events, in the same order
      const exact = k < stepExact && stepEvents[k] === e;
      if (exact) k++;
      if (e.event === undefined || !HELD_EVENTS.has(e.event)) continue;
      const d = exact ? stepObjects[k - 1] : (JSON.parse(e.data) as unknown);
      if (isObj(d)) heldEvent(d);
    }
  };

  // ------------------------------------------------------------ Anthropic

  const jText = join();
  const jThinking = join();
  /** The SDK's content list: blocks pushed by `content_block_start` (and `message_start`). */
  let blocks = 0;
  let messageStarted = false;

  const blockSpec = (p: number, field: string, deltaType: string): StreamSpec => {
    const text = field === 'text';
    return {
      json: field === 'partial_json',
      joins: text ? [jText] : field === 'thinking' ? [jThinking] : [],
      ...(text ? { place: [p], main: seq } : {}),
      shape: (t) =>
        serialize('content_block_delta', {
          type: 'content_block_delta',
          index: p,
          delta: { type: jc.cleanStr(deltaType), [jc.cleanStr(field)]: t },
        }),
    };
  };
  /** The strings a block starts with (`text`, `thinking`): the start of its streams. */
  const blockStart = (cb: unknown, p: number, slots: Slot[]) => {
    if (!isObj(cb)) return;
    const field = cb.type === 'text' ? 'text' : cb.type === 'thinking' ? 'thinking' : undefined;
    if (!field) return;
    const piece = pieceOf(cb[field], field === 'text' ? 'truthy' : 'nonnull');
    if (piece === undefined) return;
    const stream = open(`b${p}|${field}`, () => blockSpec(p, field, ANTHROPIC_DELTA_TYPE[field]!));
    slots.push({ obj: cb, key: field, stream, piece, joins: [] });
  };

  const anthropicEvent = (
    type: string | undefined,
    name: string | undefined,
    data: Json,
    out: SseEvent[],
    terminal: boolean,
  ) => {
    const slots: Slot[] = [];
    // the SDK reads blocks only once a message started (it drops them before)
    if (type?.startsWith('content_block_') && !messageStarted) refuse('a content block before message_start');
    if (type === 'message_start') {
      if (messageStarted) refuse('a second message_start');
      messageStarted = true;
      const content = isObj(data.message) && Array.isArray(data.message.content) ? data.message.content : [];
      for (let p = 0; p < content.length; p++) blockStart(content[p], p, slots);
      blocks = content.length;
    } else if (type === 'content_block_start') {
      // the SDK pushes the block whatever its index; clients keyed by index put it there
      if (Number(indexKey(data.index, 'block index', blocks + 1)) !== blocks)
        refuse('a block started at another index than the next');
      blockStart(data.content_block, blocks, slots);
      blocks++;
    } else if (type === 'content_block_delta') {
      const p = Number(indexKey(data.index, 'block index', blocks));
      const d = data.delta;
      if (isObj(d)) {
        const dt = typeof d.type === 'string' ? d.type : '';
        const known = ANTHROPIC_DELTAS[dt];
        const fields: [string, Mode][] = known
          ? [[known, 'always']]
          : Object.keys(d)
              .filter((k) => k !== 'type' && !OVERWRITTEN.has(k) && typeof d[k] === 'string')
              .map((k) => [k, 'string']);
        if (dt === 'signature_delta' || dt === 'citations_delta') fields.length = 0;
        for (const [f, mode] of fields) {
          const piece = pieceOf(d[f], mode);
          if (piece === undefined) continue;
          const stream = open(`b${p}|${f}`, () => blockSpec(p, f, ANTHROPIC_DELTA_TYPE[f] ?? dt));
          slots.push({ obj: d, key: f, stream, piece, joins: stream.joins });
        }
      }
    }
    if (terminal) {
      flushAll(out, new Set(slots.map((s) => s.stream)));
      runSlots(slots, true);
      checkKept();
    } else runSlots(slots, false);
    emitEvent(name, data, slots, out);
  };

  // ------------------------------------------------------------ any event

  return {
    get ended() {
      return ended;
    },
    push(ev, raw) {
      if (ended) return { events: [], terminal: false };
      if (!kind) return refuse('a stream from an endpoint that does not stream');
      const out: SseEvent[] = [];
      newStep();
      // the openai clients end a stream at any data starting with [DONE]
      if (raw.startsWith('[DONE]')) {
        flushAll(out);
        if (kind === 'messages') checkKept();
        else if (kind === 'responses') heldStep(out);
        ended = true;
        out.push({ event: undefined, data: '[DONE]' });
        return { events: out, terminal: true };
      }
      // a client reads nothing from an empty event
      if (raw === '') return { events: out, terminal: false };
      let data: unknown;
      try {
        data = JSON.parse(raw);
      } catch {
        return refuse('an upstream event that is not JSON');
      }
      if (!isObj(data)) return refuse('an upstream event that is not a JSON object');
      walkAll = needsWalk(raw);
      const type = typeof data.type === 'string' ? data.type : undefined;
      if (type !== undefined && LINE_BREAK.test(type)) refuse('an event type with a line break');
      // events are named by their type (or not at all, chat): clients dispatching by name see what the relay read
      const name =
        kind === 'chat' ? undefined : (type ?? (ev !== undefined && !LINE_BREAK.test(ev) ? ev : undefined));
      opts.observe?.(name, data);
      let terminal: boolean;
      if (kind === 'chat') {
        // the openai client throws at an event with an `error`
        terminal = !!data.error;
        chatChunk(data, out, terminal);
      } else if (kind === 'responses') {
        terminal = (type !== undefined && RESPONSE_TERMINALS.has(type)) || !!data.error;
        if (type === undefined) {
          if (terminal) flushAll(out);
          emitEvent(name, data, [], out);
        } else responsesEvent(type, data, out, terminal);
        // what the client's SDK holds after each event of the step (fail closed: none is written)
        heldStep(out);
      } else {
        terminal =
          type === 'message_stop' ||
          type === 'error' ||
          (type === undefined && (name === 'message_stop' || name === 'error'));
        anthropicEvent(type, name, data, out, terminal);
      }
      if (terminal) ended = true;
      return { events: out, terminal };
    },
    end() {
      if (ended) return [];
      const out: SseEvent[] = [];
      newStep();
      flushAll(out);
      if (kind === 'messages') checkKept();
      else if (kind === 'responses') heldStep(out);
      return out;
    },
    text() {
      return [...mains]
        .sort((a, b) => a.order - b.order || a.seq - b.seq)
        .map((m) => m.out)
        .join('');
    },
  };
}
