import { isObj, type Json } from './json-values.ts';
import {
  indexKey,
  type Mode,
  OVERWRITTEN,
  pieceOf,
  refuse,
  type Slot,
  type StreamSpec,
} from './relay-basics.ts';
import type { RelayKit } from './relay-kit.ts';
import type { SseEvent } from './sse-parser.ts';

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

/**
 * Anthropic Messages events through the relay: per content block position (`content.at(index)`,
 * blocks pushed by `content_block_start`) and delta field, every string in its text stream; blocks
 * only after one `message_start`, each started at the next index; at the end, the text of all blocks
 * in order is checked joined.
 */
export interface AnthropicEvents {
  /** One event (`type` from its data, `name` as sent), its events in `out`; `terminal`: everything held goes out first. */
  event(
    type: string | undefined,
    name: string | undefined,
    data: Json,
    out: SseEvent[],
    terminal: boolean,
  ): void;
}

export function createAnthropicEvents(kit: RelayKit): AnthropicEvents {
  const { jc, streams, writer } = kit;
  const jText = kit.checks.join();
  const jThinking = kit.checks.join();
  /** The SDK's content list: blocks pushed by `content_block_start` (and `message_start`). */
  let blocks = 0;
  let messageStarted = false;

  const blockSpec = (p: number, field: string, deltaType: string): StreamSpec => {
    const text = field === 'text';
    return {
      json: field === 'partial_json',
      joins: text ? [jText] : field === 'thinking' ? [jThinking] : [],
      ...(text ? { place: [p], main: streams.seq } : {}),
      shape: (t) =>
        writer.serialize('content_block_delta', {
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
    const stream = streams.open(`b${p}|${field}`, () => blockSpec(p, field, ANTHROPIC_DELTA_TYPE[field]!));
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
          const stream = streams.open(`b${p}|${f}`, () => blockSpec(p, f, ANTHROPIC_DELTA_TYPE[f] ?? dt));
          slots.push({ obj: d, key: f, stream, piece, joins: stream.joins });
        }
      }
    }
    if (terminal) {
      kit.flushAll(out, new Set(slots.map((s) => s.stream)));
      streams.runSlots(slots, true);
      streams.checkKept();
    } else streams.runSlots(slots, false);
    writer.emitEvent(name, data, slots, out);
  };

  return { event: anthropicEvent };
}
