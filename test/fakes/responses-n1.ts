/**
 * Responses stream events of the re-verification's finding N1, shared by the relay's unit tests
 * (src/gateway/stream.test.ts) and the end-to-end ones (test/e2e/gateway-streams.test.ts): the key in
 * pieces over events the openai SDK rebuilds `output_text` from — one piece a message item, part or
 * snapshot item (`response.created`, `in_progress`, `queued` snapshots; `output_item.done`;
 * `content_part.done`; `output_text.done`) — then `response.completed` with the same items, or
 * nothing (the stream just ends, and `finalResponse()` is the snapshot as it stands).
 */
export type N1Event = { type: string } & Record<string, unknown>;

export const N1_MODES = [
  'snapshot_created',
  'snapshot_in_progress',
  'snapshot_queued',
  'item_done',
  'part_done',
  'text_done',
] as const;

export function n1Events(
  mode: (typeof N1_MODES)[number],
  completed: boolean,
  pieces: readonly string[],
): N1Event[] {
  let seq = 0;
  const evs: N1Event[] = [];
  const ev = (o: N1Event) => evs.push({ ...o, sequence_number: seq++ });
  const text = (p: string) => ({ type: 'output_text', text: p, annotations: [] });
  const items = pieces.map((p, i) => ({
    id: `msg_${i}`,
    type: 'message',
    role: 'assistant',
    status: 'completed',
    content: [text(p)],
  }));
  const response = (output: unknown[], status = 'in_progress') => ({
    id: 'resp_1',
    object: 'response',
    created_at: 1,
    status,
    model: 'gpt-4o',
    output,
    usage: null,
  });
  ev({ type: 'response.created', response: response(mode === 'snapshot_created' ? items : []) });
  if (mode === 'snapshot_in_progress') ev({ type: 'response.in_progress', response: response(items) });
  if (mode === 'snapshot_queued') ev({ type: 'response.queued', response: response(items, 'queued') });
  const message = (i: number) => ({
    id: `msg_${i}`,
    type: 'message',
    role: 'assistant',
    status: 'in_progress',
    content: [],
  });
  if (mode === 'item_done')
    pieces.forEach((_, i) => {
      ev({ type: 'response.output_item.added', output_index: i, item: message(i) });
      ev({ type: 'response.output_item.done', output_index: i, item: items[i] });
    });
  if (mode === 'part_done' || mode === 'text_done') {
    ev({ type: 'response.output_item.added', output_index: 0, item: message(0) });
    pieces.forEach((p, i) => {
      const ids = { item_id: 'msg_0', output_index: 0, content_index: i };
      ev({ type: 'response.content_part.added', ...ids, part: text('') });
      if (mode === 'part_done') ev({ type: 'response.content_part.done', ...ids, part: text(p) });
      else ev({ type: 'response.output_text.done', ...ids, text: p, logprobs: [] });
    });
  }
  if (completed)
    ev({
      type: 'response.completed',
      response: {
        ...response(items, 'completed'),
        usage: { input_tokens: 1, output_tokens: 1, total_tokens: 2 },
      },
    });
  return evs;
}
