import { isObj, type Json } from './json-values.ts';
import { pieceOf, type Slot, type StreamSpec } from './relay-basics.ts';
import type { RelayKit } from './relay-kit.ts';

/**
 * Responses: the text streams' specs (the delta events a stream's later pieces go out as, shaped
 * from the provider's own), and the strings an item or part starts with, as slots.
 */

/** What the relay follows of a Responses answer. */
export interface ResponsesState {
  /** The SDK's `output` list: an entry per `output_item.added` (or per item of a snapshot). */
  items: { id: unknown; parts: number; summary: number }[];
  /** The sequence number of the last event (the relay's events reuse it). */
  lastSeq: unknown;
}

/** The strings an item starts with (its parts' texts, its arguments, ...), as slots at position `p`. */
export function itemStrings(item: unknown, p: number): [Json, string, string][] {
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
}

export interface ResponseSpecs {
  /** The delta event of a Responses stream, shaped from the first event of it. */
  responseSpec(type: string, data: Json, main: boolean): StreamSpec;
  /** The spec of a string an item or part starts with: later deltas to it are shaped as `type`. */
  startSpec(key: string): StreamSpec;
  /** The strings `found` (object, field, stream key) an event starts, as slots. */
  startSlots(
    found: readonly [Json, string, string][],
    shape: (key: string) => StreamSpec,
    slots: Slot[],
  ): void;
}

export function createResponseSpecs(kit: RelayKit, state: ResponsesState): ResponseSpecs {
  const { jc, streams, writer } = kit;
  const jOutput = kit.checks.join();
  const startSlots = (
    found: readonly [Json, string, string][],
    shape: (key: string) => StreamSpec,
    slots: Slot[],
  ) => {
    for (const [obj, f, key] of found) {
      const piece = pieceOf(obj[f], 'nonnull');
      if (piece === undefined || piece === '') continue;
      const stream = streams.open(key, () => shape(key));
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
        (type === 'response.output_text.delta' && kit.jsonOutput),
      ...(type === 'response.output_text.delta' ? { joins: [jOutput] } : {}),
      ...(main ? { main: streams.seq } : {}),
      shape: (text) =>
        writer.serialize(type, {
          ...like,
          delta: text,
          ...(hasLogprobs ? { logprobs: [] } : {}),
          sequence_number: state.lastSeq,
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
    const item = state.items[Number(o.slice(1))];
    if (typeof item?.id === 'string') ids.item_id = item.id;
    if (sub.startsWith('c')) ids.content_index = Number(sub.slice(1));
    if (sub.startsWith('s')) ids.summary_index = Number(sub.slice(1));
    return responseSpec(type, ids, type === 'response.output_text.delta');
  };

  return { responseSpec, startSpec, startSlots };
}
