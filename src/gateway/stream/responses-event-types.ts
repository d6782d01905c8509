/**
 * The Responses API's stream events the relay reads (openai: lib/responses/ResponseAccumulator):
 * which end a stream, which carry a snapshot, which strings each delta family appends to.
 */

export const RESPONSE_TERMINALS = new Set([
  'response.completed',
  'response.failed',
  'response.incomplete',
  'error',
]);
export const RESPONSE_SNAPSHOTS = new Set(['response.created', 'response.queued', 'response.in_progress']);
/**
 * Responses delta families the SDK appends (`X.delta`), the string each appends to (`field`, and
 * `text`, `refusal`, ... on `X.done`), and whether it is a part's (`content_index`) or a summary
 * part's (`summary_index`) or the item's own.
 */
export const RESPONSE_STREAMS: Record<string, { sub: 'c' | 's' | ''; field: string }> = {
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
export interface StringEvent {
  base: string;
  done: boolean;
  known: { sub: string; field: string };
}
export const STRING_EVENTS = new Map<string, StringEvent>(
  Object.entries(RESPONSE_STREAMS).flatMap(([base, known]) =>
    [false, true].map((done) => [`${base}.${done ? 'done' : 'delta'}`, { base, done, known }] as const),
  ),
);
/** The events that change a string the SDK holds (ResponseAccumulator): snapshots, items, parts, texts. */
export const HELD_EVENTS = new Set([
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
export const ITEM_STRING_OWNER: Record<string, string> = {
  'response.function_call_arguments': 'function_call',
  'response.mcp_call_arguments': 'mcp_call',
  'response.custom_tool_call_input': 'custom_tool_call',
  'response.code_interpreter_call_code': 'code_interpreter_call',
};
/** Response-wide deltas no SDK joins, which clients may. */
export const RESPONSE_AUDIO = new Set(['response.audio', 'response.audio.transcript']);
