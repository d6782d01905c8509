import type { WireApi } from './providers.ts';
import { createAnthropicEvents } from './stream/anthropic-events.ts';
import { type ChatEvents, createChatEvents } from './stream/chat-events.ts';
import { createEventWriter } from './stream/event-writer.ts';
import { createJoinChecks } from './stream/joins.ts';
import { jsonCleaner, needsWalk } from './stream/json-cleaner.ts';
import { isObj } from './stream/json-values.ts';
import { MAX_STREAMS, refuse } from './stream/relay-basics.ts';
import type { RelayKit } from './stream/relay-kit.ts';
import { RESPONSE_TERMINALS } from './stream/responses-event-types.ts';
import { createResponsesEvents } from './stream/responses-events.ts';
import { createResponsesHeld } from './stream/responses-held.ts';
import type { SseEvent } from './stream/sse-parser.ts';
import { createStepRecord } from './stream/step-record.ts';
import { createTextStreams } from './stream/text-streams.ts';
import type { GatewayRoute, ResponseFilter } from './types.ts';

export { joinedTexts, jsonCleaner, needsWalk } from './stream/json-cleaner.ts';
export { jsonTextNormalizer, normalizeJsonText } from './stream/json-text.ts';
export { StreamRefused } from './stream/relay-basics.ts';
export { createSseParser, type SseEvent } from './stream/sse-parser.ts';

/**
 * The stream relay (issue 12, items 1 and 2; docs/gateway.md, "What reaches the
 * client"): what the gateway writes to the client for each event of a streamed
 * answer. Pure: parsed SSE events in, events to write out, no I/O. The SSE
 * parser (`createSseParser`, stream/sse-parser.ts) that feeds it is re-exported here.
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
 * ASCII normalised to the characters (`jsonTextNormalizer`, stream/json-text.ts): a key written `\u0073k-…` in
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
 * `output_text`) and checks the text around each change before the event goes out
 * (stream/responses-held.ts); an event that would make one of them hold a key is refused.
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

const LINE_BREAK = /[\r\n]/;

/**
 * The relay of one streamed answer, put together from its parts (stream/): the JSON cleaner, the
 * join checks, the text streams, the event writer and the reader of the endpoint's events.
 */
export function createStreamRelay(opts: StreamRelayOptions): StreamRelay {
  const kind =
    opts.api === 'openai' && opts.route === 'chat.completions'
      ? 'chat'
      : opts.api === 'openai' && opts.route === 'responses'
        ? 'responses'
        : opts.api === 'anthropic' && opts.route === 'messages'
          ? 'messages'
          : undefined;
  const maxStreams = opts.maxStreams ?? MAX_STREAMS;
  const jc = jsonCleaner(opts.clean, opts.route, opts.jsonOutput === true);
  const checks = createJoinChecks(opts.secrets, opts.clean);
  const step = createStepRecord(kind === 'responses');
  const streams = createTextStreams({
    filter: opts.filter,
    maxStreams,
    checkJoined: checks.checkJoined,
    step,
  });
  const writer = createEventWriter(jc, step, kind === 'responses');
  let chat: ChatEvents | undefined;
  const kit: RelayKit = {
    jc,
    checks,
    streams,
    writer,
    step,
    flushAll(out, except) {
      streams.flushWhere(() => true, out, except);
      chat?.releaseAllLogprobs(out);
    },
    jsonOutput: opts.jsonOutput === true,
    maxStreams,
  };
  chat = kind === 'chat' ? createChatEvents(kit) : undefined;
  const responses = kind === 'responses' ? createResponsesEvents(kit) : undefined;
  const held = kind === 'responses' ? createResponsesHeld(kit) : undefined;
  const anthropic = kind === 'messages' ? createAnthropicEvents(kit) : undefined;
  let ended = false;

  return {
    get ended() {
      return ended;
    },
    push(ev, raw) {
      if (ended) return { events: [], terminal: false };
      if (!kind) return refuse('a stream from an endpoint that does not stream');
      const out: SseEvent[] = [];
      step.newStep();
      // the openai clients end a stream at any data starting with [DONE]
      if (raw.startsWith('[DONE]')) {
        kit.flushAll(out);
        if (kind === 'messages') streams.checkKept();
        else if (kind === 'responses') held!.step(out);
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
      writer.walkAll = needsWalk(raw);
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
        chat!.chunk(data, out, terminal);
      } else if (kind === 'responses') {
        terminal = (type !== undefined && RESPONSE_TERMINALS.has(type)) || !!data.error;
        if (type === undefined) {
          if (terminal) kit.flushAll(out);
          writer.emitEvent(name, data, [], out);
        } else responses!.event(type, data, out, terminal);
        // what the client's SDK holds after each event of the step (fail closed: none is written)
        held!.step(out);
      } else {
        terminal =
          type === 'message_stop' ||
          type === 'error' ||
          (type === undefined && (name === 'message_stop' || name === 'error'));
        anthropic!.event(type, name, data, out, terminal);
      }
      if (terminal) ended = true;
      return { events: out, terminal };
    },
    end() {
      if (ended) return [];
      const out: SseEvent[] = [];
      step.newStep();
      kit.flushAll(out);
      if (kind === 'messages') streams.checkKept();
      else if (kind === 'responses') held!.step(out);
      return out;
    },
    text: () => streams.text(),
  };
}
