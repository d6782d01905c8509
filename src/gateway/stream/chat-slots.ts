import type { JsonCleaner } from './json-cleaner.ts';
import { isObj, type Json, put } from './json-values.ts';
import { indexKey, MAX_INDEX, OVERWRITTEN, pieceOf, refuse, type Slot } from './relay-basics.ts';
import type { RelayKit } from './relay-kit.ts';
import type { SseEvent } from './sse-parser.ts';

/**
 * Chat Completions: the strings of a choice's delta the client appends
 * (ChatCompletionStream#accumulateChatCompletion), each in the text stream `c<index>|path`, as slots.
 */

/** A path in a chat delta: field names, and tool calls by their `index` (as sent). */
export type Seg = string | { tool: unknown };
/** The delta object holding `text` at `path` (names cleaned). */
function deltaAt(jc: JsonCleaner, path: readonly Seg[], text: string): Json {
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
}

/** A choice of a chunk: its stream group (`c<index>`, `cu` without one), index as sent, place in the chunk. */
export interface Choice {
  group: string;
  index: unknown;
  pos: number;
}

export interface ChatSlots {
  /** The slots of delta `d` of `choice`, in `slots`. */
  chatDelta(d: Json, choice: Choice, slots: Slot[]): void;
}

/** `chunkFor`: a chunk shaped like the provider's, for a choice (the events of a stream's later pieces). */
export function createChatSlots(kit: RelayKit, chunkFor: (choice: Json) => SseEvent): ChatSlots {
  const { jc, streams } = kit;
  const jAll = kit.checks.join();
  const jFirst = kit.checks.join();
  /** Choices whose `function_call` the client stored (later ones append to its arguments). */
  const functionCalls = new Set<string>();

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
    if (streams.isClosed(choice.group, k)) refuse('a delta to a choice whose message an event replaced');
    const content = path.length === 1 && path[0] === 'content';
    // JSON text: `tool_calls[].function.arguments`, `function_call.arguments`
    const json =
      (content && kit.jsonOutput) ||
      (path.at(-1) === 'arguments' &&
        ((path.length === 2 && path[0] === 'function_call') ||
          (path.length === 3 && typeof path[0] !== 'string' && path[1] === 'function')));
    const stream = streams.open(k, () => ({
      json,
      joins: content ? [jAll, jFirst] : [],
      ...(content ? { main: choice.group === 'cu' ? MAX_INDEX : Number(choice.group.slice(1)) } : {}),
      shape: (text) =>
        chunkFor({
          ...(choice.index === undefined ? {} : { index: choice.index }),
          delta: deltaAt(jc, path, text),
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

  return { chatDelta };
}
