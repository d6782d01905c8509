import type { WireApi } from './providers.ts';
import type { ResponseFilter } from './types.ts';

/**
 * The stream relay (issue 12, items 1 and 2; docs/gateway.md, "What reaches the
 * client"): what the gateway writes to the client for each event of a streamed
 * answer. Pure: parsed SSE events in, events to write out, no I/O.
 *
 * Every text field a client concatenates across events goes through its own
 * cross-event filter (one per choice, field and tool call, or per content
 * block, or per output item and part), so a key split across events is caught
 * however the events interleave, and the text of each stream arrives exactly as
 * the provider sent it when nothing in it is redacted. The streams are found
 * from the providers' documented formats and from what the official SDKs
 * concatenate (openai: lib/ChatCompletionStream, lib/responses/ResponseAccumulator;
 * @anthropic-ai/sdk: lib/MessageStream):
 *
 * - Chat Completions chunks: per choice `index`, every string of `delta` but
 *   the ones SDKs overwrite (`role`, `id`, `type`, `name`): `content`,
 *   `refusal`, `reasoning`/`reasoning_content` (OpenAI-compatible servers),
 *   `audio.transcript`, `audio.data`, `function_call.arguments`, and
 *   `tool_calls[]` by their `index` field -> `function.arguments`.
 * - Responses events: every `*.delta` event with a string `delta`
 *   (`response.output_text.delta`, `refusal`, `function_call_arguments`,
 *   `reasoning_text`, `reasoning_summary_text`, `audio`, `audio.transcript`,
 *   `custom_tool_call_input`, `mcp_call_arguments`, `code_interpreter_call_code`),
 *   per event type, `item_id`, `output_index`, `content_index`, `summary_index`.
 * - Anthropic: `content_block_delta` per block `index` and delta field (every
 *   string of `delta` but `type` and `signature`: `text`, `partial_json`,
 *   `thinking`, …); the `text`/`thinking` a `content_block_start` opens with
 *   is the start of the same stream.
 *
 * What a filter holds back is flushed when its stream closes, as an event
 * shaped like the provider's own delta for that stream, before the closing
 * event: the chunk with that choice's `finish_reason` (an event that both
 * carries text of a stream and closes it gets the rest inline), the Responses
 * `*.done` of that delta type, `content_part.done`, `output_item.done` and
 * `reasoning_summary_part.done` for their item and part, `content_block_stop`
 * for the block; and every stream before a terminal event (`[DONE]`,
 * `response.completed|failed|incomplete`, `message_stop`, an `error` event)
 * and at the end of input. A stream is never flushed because another starts
 * (interleaved tool calls would otherwise release the first part of a key).
 *
 * Every other string of every event (keys included; identity fields such as
 * ids, names, `signature`; the complete texts of `*.done` events and of
 * `response.completed`) goes through the whole-text cleaner, and then the
 * serialized event once more.
 *
 * Logprobs repeat the generated text token by token (`token`, `bytes`,
 * `top_logprobs`), so a key split over tokens would be reassembled by a client
 * that joins them: Chat Completions logprobs are held per choice and delivered
 * with the chunk that closes the choice (or before the terminal event), and
 * only when the joined tokens, the decoded joined bytes and every single token
 * come through the cleaner unchanged; otherwise that choice's `logprobs` is
 * `null`. Responses deltas carry `logprobs: []` (the complete list comes with
 * the `*.done` event and in the completed response, checked the same way,
 * emptied if anything would be redacted).
 */

/** One SSE event: its `event:` name (if any) and its `data:` text. */
export interface SseEvent {
  event: string | undefined;
  data: string;
}

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
  /** A new cross-event filter (push/end), one per text stream. */
  filter: () => ResponseFilter;
  /** Cleans a complete text (a string of an event, a whole serialized event). */
  clean: (text: string) => string;
  /** Sees every parsed event as the provider sent it, before any change (usage tracking). */
  observe?: (event: string | undefined, data: Record<string, unknown>) => void;
}

export interface StreamRelay {
  /** The events to write for one upstream event (its `event:` name and `data:` text). */
  push(event: string | undefined, data: string): RelayStep;
  /** The end of input: what is still held back, as events. */
  end(): SseEvent[];
  /**
   * The generated text the client received, for the provenance link: the main text streams
   * (chat `content`, Responses `output_text`, Anthropic `text_delta`) as filtered. For one chat
   * choice or one text block it is that text; with several chat choices (`n > 1`) it is each
   * choice's text in choice index order, concatenated; otherwise the text streams in the order
   * they started.
   */
  text(): string;
}

type Json = Record<string, unknown>;

interface TextStream {
  filter: ResponseFilter;
  /** What closes it: `b<block>` (Anthropic), the Responses key; chat streams close by `choice`. */
  group: string;
  /** Chat: the choice index. */
  choice?: number;
  /** The event carrying `text` as the next piece of this stream. */
  shape: (text: string) => SseEvent;
  /** The generated text (main streams only). */
  main: { order: number; seq: number; out: string } | undefined;
  /** Responses: the delta event type and ids. */
  type?: string;
  ids?: Partial<Record<(typeof RESPONSE_IDS)[number], unknown>>;
}

/** A string of an event that belongs to a text stream. */
interface Slot {
  obj: Json;
  key: string;
  stream: TextStream;
}

/** Fields SDKs overwrite rather than concatenate: checked whole, event by event. */
const OVERWRITTEN = new Set(['role', 'id', 'type', 'name', 'signature']);
const RESPONSE_IDS = ['item_id', 'output_index', 'content_index', 'summary_index'] as const;
/** Responses `*.done` events that close every stream of their item and part. */
const RESPONSE_CONTAINERS = new Set([
  'response.output_item.done',
  'response.content_part.done',
  'response.reasoning_summary_part.done',
]);
const RESPONSE_TERMINALS = new Set(['response.completed', 'response.failed', 'response.incomplete', 'error']);
const MAX_DEPTH = 64;
/** Logprobs with entries (a non-empty list, or chat's `{content, refusal}`), not `null` or `[]`. */
const LOGPROBS_LIST = /"logprobs"\s*:\s*(?:\{|\[\s*[^\]\s])/;

/**
 * Whether the JSON text `raw` must be cleaned string by string: it has escapes (a key written
 * `\u0073k-…` only shows once parsed) or logprobs (text repeated token by token). Otherwise every
 * string appears in the serialized text as it is, and one pass over that text sees all of them.
 */
export function needsWalk(raw: string): boolean {
  return raw.includes('\\') || LOGPROBS_LIST.test(raw);
}
/** Short strings (ids, names, keys of objects) repeat in every event: their cleaned form is kept. */
const MEMO_MAX_LENGTH = 64;
const MEMO_MAX_SIZE = 512;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A memoizing cleaner and the walk over a parsed value that cleans every string in place (keys of
 * objects too), except the slots, with logprobs checked as described above. Shared by the relay and
 * the gateway's complete answers.
 */
export function jsonCleaner(clean: (text: string) => string) {
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

  let deep = false;
  /** Cleans `v` in place (returns the cleaned value for a string); `skip` are the slots left alone. */
  const walk = (v: unknown, skip: readonly Slot[] | undefined, depth: number): unknown => {
    if (typeof v === 'string') return cleanStr(v);
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
        else if (typeof x === 'object' && x !== null) walk(x, skip, depth + 1);
      }
      return v;
    }
    const o = v as Json;
    let renamed: [string, string][] | undefined;
    for (const k in o) {
      if (!Object.hasOwn(o, k)) continue;
      if (skip?.some((s) => s.obj === o && s.key === k)) continue;
      let x = o[k];
      if (k === 'logprobs' && x !== null && typeof x === 'object') {
        x = safeLogprobs(x);
        o[k] = x;
      }
      if (typeof x === 'string') o[k] = cleanStr(x);
      else if (typeof x === 'object' && x !== null) walk(x, skip, depth + 1);
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
        o[ck] = x;
      }
    }
    return o;
  };

  return {
    cleanStr,
    safeLogprobs,
    /** Cleans a parsed JSON value in place (a string is returned cleaned). */
    value(v: unknown, skip?: readonly Slot[]): unknown {
      return walk(v, skip, 0);
    },
    /**
     * The value serialized, then cleaned whole once more. If that last pass changed the text into
     * something that is not JSON (a run of a key matched across JSON syntax, such as a number or an
     * escape), the serialization of the value, every string of which is already clean, is sent
     * instead; a value too deep to walk is sent cleaned in any case.
     */
    serialize(v: unknown): string {
      return this.trySerialize(v, true) as string;
    },
    /**
     * As `serialize`, for a value whose strings were not walked (`walked` false): undefined when
     * the whole-text pass would break the JSON (the caller walks it, then serializes it).
     */
    trySerialize(v: unknown, walked: boolean): string | undefined {
      const s = JSON.stringify(v);
      const c = clean(s);
      if (c === s) return s;
      if (deep) return c;
      try {
        JSON.parse(c);
        return c;
      } catch {
        return walked ? s : undefined;
      }
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

export function createStreamRelay(opts: StreamRelayOptions): StreamRelay {
  const { api, clean } = opts;
  const jc = jsonCleaner(clean);
  const streams = new Map<string, TextStream>();
  const mains: NonNullable<TextStream['main']>[] = [];
  let seq = 0;
  /** The last chat chunk sent (cleaned): the envelope of the chunks the relay makes. */
  let lastChunk: Json | undefined;
  /** Responses: the sequence number of the last event (the relay's events reuse it). */
  let lastSeq: unknown;
  /** Chat logprobs held per choice until the choice closes. */
  const heldLogprobs = new Map<number, { content?: unknown[]; refusal?: unknown[] }>();

  const eventName = (ev: string | undefined) => (ev === undefined ? undefined : jc.cleanStr(ev));

  const serialize = (ev: string | undefined, data: unknown): SseEvent => {
    jc.deep = false;
    return { event: eventName(ev), data: jc.serialize(data) };
  };

  /**
   * Set per input event: whether its strings must be walked one by one. Without JSON escapes every
   * string of the event is in its serialization as is, between quotes, and the serialization is
   * cleaned whole: the walk adds nothing but the logprobs checks (and a fallback, below).
   */
  let walkAll = true;
  /** An event sent as `data` (slots already through their streams), cleaned. */
  const emitEvent = (
    ev: string | undefined,
    data: unknown,
    slots: readonly Slot[] | undefined,
    out: SseEvent[],
  ) => {
    jc.deep = false;
    let text: string | undefined;
    if (!walkAll) text = jc.trySerialize(data, false);
    if (text === undefined) {
      jc.value(data, slots);
      text = jc.serialize(data);
    }
    out.push({ event: eventName(ev), data: text });
  };

  const open = (key: string, make: () => Omit<TextStream, 'filter'>): TextStream => {
    let s = streams.get(key);
    if (!s) {
      s = { filter: opts.filter(), ...make() };
      if (s.main) mains.push(s.main);
      streams.set(key, s);
    }
    return s;
  };
  const mainOf = (order: number) => ({ order, seq: seq++, out: '' });

  /** Ends a stream: what its filter held back, as one more event (none when nothing was held). */
  const flush = (key: string, s: TextStream, out: SseEvent[]) => {
    streams.delete(key);
    const tail = s.filter.end();
    if (!tail) return;
    if (s.main) s.main.out += tail;
    out.push(s.shape(tail));
  };
  const flushWhere = (
    pred: (s: TextStream) => boolean,
    keep: ReadonlySet<TextStream> | undefined,
    out: SseEvent[],
  ) => {
    let due: [string, TextStream][] | undefined;
    for (const e of streams) {
      if (!keep?.has(e[1]) && pred(e[1])) {
        due ??= [];
        due.push(e);
      }
    }
    if (due) for (const [key, s] of due) flush(key, s, out);
  };

  /**
   * Passes the slots' strings through their streams, in order; a stream `closing` says is ended, its
   * rest appended to its last slot in the event.
   */
  const runSlots = (slots: readonly Slot[], closing: ((s: TextStream) => boolean) | undefined) => {
    for (const slot of slots) {
      const s = slot.stream;
      const v = s.filter.push(slot.obj[slot.key] as string);
      if (s.main) s.main.out += v;
      slot.obj[slot.key] = v;
    }
    if (!closing) return;
    const last = new Map<TextStream, Slot>();
    for (const slot of slots) last.set(slot.stream, slot);
    for (const [s, slot] of last) {
      if (!closing(s)) continue;
      const tail = s.filter.end();
      for (const [k, x] of streams) if (x === s) streams.delete(k);
      if (s.main) s.main.out += tail;
      slot.obj[slot.key] += tail;
    }
  };

  // ------------------------------------------------------------ Chat Completions

  /** A chunk shaped like the provider's, for `choice` (envelope of the last chunk sent). */
  const chunkFor = (choice: Json): SseEvent => {
    const env: Json = { ...(lastChunk ?? { object: 'chat.completion.chunk' }) };
    delete env.obfuscation;
    if ('usage' in env) env.usage = null;
    env.choices = [choice];
    return serialize(undefined, env);
  };

  /** The delta object holding `text` at `path` (`tool_calls` entries by their index; names cleaned). */
  const deltaAt = (path: readonly (string | number)[], text: string): Json => {
    const root: Json = {};
    let cur = root;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      if (seg === 'tool_calls') {
        const tc: Json = { index: path[i + 1] };
        cur.tool_calls = [tc];
        cur = tc;
        i++;
        continue;
      }
      const name = jc.cleanStr(String(seg));
      if (i === path.length - 1) cur[name] = text;
      else {
        const next: Json = {};
        cur[name] = next;
        cur = next;
      }
    }
    return root;
  };

  /** The slots of a chat delta: `prefix` names the stream (`c<choice>:` then the path), `path` builds its delta. */
  const chatSlots = (
    obj: Json,
    ci: number,
    prefix: string,
    path: readonly (string | number)[],
    slots: Slot[],
  ) => {
    for (const k in obj) {
      if (!Object.hasOwn(obj, k)) continue;
      const v = obj[k];
      if (typeof v === 'string') {
        if (OVERWRITTEN.has(k)) continue;
        const stream = open(prefix + k, () => {
          const p = [...path, k];
          return {
            group: 'chat',
            choice: ci,
            main: p.length === 1 && k === 'content' ? mainOf(ci) : undefined,
            shape: (text) =>
              chunkFor({ index: ci, delta: deltaAt(p, text), logprobs: null, finish_reason: null }),
          };
        });
        slots.push({ obj, key: k, stream });
      } else if (k === 'tool_calls' && Array.isArray(v)) {
        v.forEach((tc, pos) => {
          if (!isObj(tc)) return;
          const ti = typeof tc.index === 'number' ? tc.index : pos;
          chatSlots(tc, ci, `${prefix}tool_calls.${ti}.`, [...path, 'tool_calls', ti], slots);
        });
      } else if (isObj(v)) chatSlots(v, ci, `${prefix}${k}.`, [...path, k], slots);
    }
  };

  const holdLogprobs = (ci: number, lp: unknown) => {
    if (!isObj(lp)) return;
    let h = heldLogprobs.get(ci);
    if (!h) {
      h = {};
      heldLogprobs.set(ci, h);
    }
    for (const k of ['content', 'refusal'] as const) {
      const l = lp[k];
      if (Array.isArray(l)) {
        h[k] ??= [];
        h[k].push(...l);
      }
    }
  };
  /** The held logprobs of a choice, checked (null if anything in them would be redacted). */
  const releaseLogprobs = (ci: number): unknown => {
    const h = heldLogprobs.get(ci);
    heldLogprobs.delete(ci);
    if (!h) return null;
    const lp: Json = { content: h.content ?? null, refusal: h.refusal ?? null };
    return jc.safeLogprobs(lp);
  };

  const chatChunk = (ev: string | undefined, data: Json, out: SseEvent[]) => {
    const slots: Slot[] = [];
    let closing: number[] | undefined;
    const choices = data.choices as unknown[];
    for (let pos = 0; pos < choices.length; pos++) {
      const c = choices[pos];
      if (!isObj(c)) continue;
      const ci = typeof c.index === 'number' ? c.index : pos;
      if (isObj(c.delta)) chatSlots(c.delta, ci, `c${ci}:`, [], slots);
      if (c.logprobs !== undefined && c.logprobs !== null) {
        holdLogprobs(ci, c.logprobs);
        c.logprobs = null;
      }
      if (c.finish_reason !== undefined && c.finish_reason !== null) {
        closing ??= [];
        closing.push(ci);
      }
    }
    if (!closing) runSlots(slots, undefined);
    else {
      const ending = closing;
      const closes = (s: TextStream) => s.choice !== undefined && ending.includes(s.choice);
      flushWhere(closes, new Set(slots.map((s) => s.stream).filter(closes)), out);
      runSlots(slots, closes);
      for (let pos = 0; pos < choices.length; pos++) {
        const c = choices[pos];
        if (!isObj(c)) continue;
        const ci = typeof c.index === 'number' ? c.index : pos;
        if (ending.includes(ci) && heldLogprobs.has(ci)) c.logprobs = releaseLogprobs(ci);
      }
    }
    // the released logprobs are checked; without escapes, their tokens are in the serialization
    emitEvent(ev, data, slots, out);
    lastChunk = data;
  };

  /** Held chat logprobs of choices that never closed, as chunks. */
  const releaseAllLogprobs = (out: SseEvent[]) => {
    for (const ci of [...heldLogprobs.keys()]) {
      const lp = releaseLogprobs(ci);
      out.push(chunkFor({ index: ci, delta: {}, logprobs: lp, finish_reason: null }));
    }
  };

  // ------------------------------------------------------------ Responses

  const responsesEvent = (ev: string | undefined, data: Json, out: SseEvent[], terminal: boolean) => {
    const type = data.type as string;
    const slots: Slot[] = [];
    if (type.endsWith('.delta') && typeof data.delta === 'string') {
      const ids: TextStream['ids'] = {};
      for (const f of RESPONSE_IDS) if (data[f] !== undefined) ids[f] = data[f];
      const key = `${type}|${RESPONSE_IDS.map((f) => JSON.stringify(data[f] ?? null)).join('|')}`;
      const stream = open(key, () => {
        const like: Json = { type: jc.cleanStr(type) };
        for (const f of RESPONSE_IDS) {
          const v = data[f];
          if (v !== undefined) like[f] = typeof v === 'string' ? jc.cleanStr(v) : v;
        }
        const hasLogprobs = 'logprobs' in data;
        return {
          group: key,
          type,
          ids,
          main: type === 'response.output_text.delta' ? mainOf(seq) : undefined,
          shape: (text) =>
            serialize(ev === undefined ? undefined : type, {
              ...like,
              delta: text,
              ...(hasLogprobs ? { logprobs: [] } : {}),
              sequence_number: lastSeq,
            }),
        };
      });
      // the complete list comes with the `.done` event, checked whole
      if (Array.isArray(data.logprobs)) data.logprobs = [];
      slots.push({ obj: data, key: 'delta', stream });
    }
    if (typeof data.sequence_number === 'number') lastSeq = data.sequence_number;
    if (terminal) {
      // everything before the terminal event; a terminal event carrying text gets its rest inline
      const inline = new Set(slots.map((s) => s.stream));
      flushWhere(() => true, inline, out);
      runSlots(slots, () => true);
    } else if (type.endsWith('.done')) {
      const base = `${type.slice(0, -'.done'.length)}.delta`;
      const container = RESPONSE_CONTAINERS.has(type);
      flushWhere(
        (s) =>
          s.type !== undefined &&
          (container || s.type === base) &&
          RESPONSE_IDS.every((f) => data[f] === undefined || s.ids?.[f] === data[f]),
        undefined,
        out,
      );
      runSlots(slots, undefined);
    } else runSlots(slots, undefined);
    emitEvent(ev, data, slots, out);
  };

  // ------------------------------------------------------------ Anthropic

  const anthropicEvent = (ev: string | undefined, data: Json, out: SseEvent[], terminal: boolean) => {
    const slots: Slot[] = [];
    const idx = data.index;
    const blockStream = (field: string, deltaType: string) =>
      open(`b${JSON.stringify(idx)}:${field}`, () => ({
        group: `b${JSON.stringify(idx)}`,
        main: field === 'text' && deltaType === 'text_delta' ? mainOf(seq) : undefined,
        shape: (text) =>
          serialize(ev === undefined ? undefined : 'content_block_delta', {
            type: 'content_block_delta',
            index: typeof idx === 'string' ? jc.cleanStr(idx) : idx,
            delta: { type: jc.cleanStr(deltaType), [jc.cleanStr(field)]: text },
          }),
      }));
    if (data.type === 'content_block_start' && isObj(data.content_block)) {
      const cb = data.content_block;
      if (cb.type === 'text' && typeof cb.text === 'string')
        slots.push({ obj: cb, key: 'text', stream: blockStream('text', 'text_delta') });
      if (cb.type === 'thinking' && typeof cb.thinking === 'string')
        slots.push({ obj: cb, key: 'thinking', stream: blockStream('thinking', 'thinking_delta') });
    } else if (data.type === 'content_block_delta' && isObj(data.delta)) {
      const d = data.delta;
      for (const k in d) {
        if (!Object.hasOwn(d, k) || typeof d[k] !== 'string' || k === 'type' || OVERWRITTEN.has(k)) continue;
        slots.push({ obj: d, key: k, stream: blockStream(k, typeof d.type === 'string' ? d.type : '') });
      }
    }
    if (terminal) {
      const inline = new Set(slots.map((s) => s.stream));
      flushWhere(() => true, inline, out);
      runSlots(slots, () => true);
    } else if (data.type === 'content_block_stop') {
      const group = `b${JSON.stringify(idx)}`;
      flushWhere((s) => s.group === group, undefined, out);
      runSlots(slots, undefined);
    } else runSlots(slots, undefined);
    emitEvent(ev, data, slots, out);
  };

  // ------------------------------------------------------------ any event

  const flushAll = (out: SseEvent[]) => {
    flushWhere(() => true, undefined, out);
    releaseAllLogprobs(out);
  };

  return {
    push(ev, raw) {
      const out: SseEvent[] = [];
      if (raw === '[DONE]') {
        flushAll(out);
        out.push({ event: eventName(ev), data: raw });
        return { events: out, terminal: true };
      }
      let data: unknown;
      try {
        data = JSON.parse(raw);
      } catch {
        out.push({ event: eventName(ev), data: clean(raw) });
        return { events: out, terminal: false };
      }
      if (!isObj(data)) {
        out.push(serialize(ev, jc.value(data)));
        return { events: out, terminal: false };
      }
      opts.observe?.(ev, data);
      walkAll = needsWalk(raw);
      const type = typeof data.type === 'string' ? data.type : undefined;
      if (api === 'anthropic') {
        const terminal =
          type === 'message_stop' ||
          type === 'error' ||
          (type === undefined && (ev === 'message_stop' || ev === 'error'));
        anthropicEvent(ev, data, out, terminal);
        return { events: out, terminal };
      }
      if (Array.isArray(data.choices)) {
        chatChunk(ev, data, out);
        return { events: out, terminal: false };
      }
      if (type !== undefined) {
        const terminal = RESPONSE_TERMINALS.has(type);
        responsesEvent(ev, data, out, terminal);
        return { events: out, terminal };
      }
      // another event: an in-stream error object (`{"error": {...}}`) ends the stream
      const terminal = isObj(data.error) || ev === 'error';
      if (terminal) flushAll(out);
      emitEvent(ev, data, undefined, out);
      return { events: out, terminal };
    },
    end() {
      const out: SseEvent[] = [];
      flushAll(out);
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
