import { isObj, type Json } from './json-values.ts';
import { indexKey, MAX_INDEX, pieceOf, refuse, type Slot } from './relay-basics.ts';
import type { RelayKit } from './relay-kit.ts';
import { RESPONSE_AUDIO, RESPONSE_SNAPSHOTS, RESPONSE_STREAMS } from './responses-event-types.ts';
import { createResponseSpecs, itemStrings, type ResponsesState } from './responses-specs.ts';
import type { SseEvent } from './sse-parser.ts';

/**
 * Responses events through the relay: per output position and part, every string a delta family
 * appends to in its text stream; snapshots, `*.done`, `content_part.done` and `output_item.done`
 * end the strings they replace; items and parts must be added at the next position. What the SDK
 * holds after each event is checked apart (responses-held.ts).
 */
export interface ResponsesEvents {
  /** One event of type `type` (parsed), its events in `out`; `terminal`: everything held goes out first. */
  event(type: string, data: Json, out: SseEvent[], terminal: boolean): void;
}

export function createResponsesEvents(kit: RelayKit): ResponsesEvents {
  const { streams, writer } = kit;
  const state: ResponsesState = { items: [], lastSeq: undefined };
  const { items } = state;
  const { responseSpec, startSpec, startSlots } = createResponseSpecs(kit, state);

  /** An output position the event addresses: an index of an item that exists. */
  const outputIndex = (data: Json) => indexKey(data.output_index, 'output_index', items.length);

  const snapshot = (data: Json, out: SseEvent[]) => {
    // the SDK replaces its whole snapshot: every output string ends (a position that had a stream
    // takes no more deltas), and a delta would append to the strings the snapshot's items bring
    // (a position with one that is not empty takes none either)
    const had = new Set([...streams.keys()].filter((k) => k.startsWith('o')).map((k) => k.split('|')[0]!));
    streams.flushWhere((s) => s.key.startsWith('o'), out);
    const output = isObj(data.response) && Array.isArray(data.response.output) ? data.response.output : [];
    for (let p = 0; p < Math.max(items.length, output.length); p++) {
      const brings = itemStrings(output[p], p).some(([o, f]) => (pieceOf(o[f], 'nonnull') ?? '') !== '');
      if (had.has(`o${p}`) || brings) streams.close(`o${p}`);
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
  };
  const itemAdded = (data: Json, slots: Slot[]) => {
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
    if (streams.isClosed(`o${p}`)) refuse('an item added at a position whose strings were replaced');
    startSlots(itemStrings(item, p), startSpec, slots);
  };
  const partAdded = (type: string, data: Json, slots: Slot[]) => {
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
  };
  const partDone = (type: string, data: Json, out: SseEvent[]) => {
    const p = outputIndex(data);
    const summary = type === 'response.reasoning_summary_part.done';
    const at = indexKey(summary ? data.summary_index : data.content_index, 'part index');
    streams.replacedGroup(`o${p}|${summary ? 's' : 'c'}${at}`, out);
  };
  /** A delta or done event of a string (a known family, audio, or one no SDK joins). */
  const stringEvent = (type: string, data: Json, out: SseEvent[], slots: Slot[]) => {
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
      if (done) streams.replaced(key, out);
      else {
        if (streams.isClosed(...group, key)) refuse('a delta to a string an event replaced');
        const piece = pieceOf(data.delta, known || RESPONSE_AUDIO.has(base) ? 'always' : 'string');
        if (piece !== undefined) {
          const stream = streams.open(key, () => responseSpec(type, data, base === 'response.output_text'));
          // the complete list comes with the `.done` event, checked whole
          if (Array.isArray(data.logprobs)) data.logprobs = [];
          slots.push({ obj: data, key: 'delta', stream, piece, joins: stream.joins });
        }
      }
    }
  };

  const event = (type: string, data: Json, out: SseEvent[], terminal: boolean) => {
    const slots: Slot[] = [];
    // the events the relay makes before this one take its number
    if (typeof data.sequence_number === 'number') state.lastSeq = data.sequence_number;
    if (RESPONSE_SNAPSHOTS.has(type)) snapshot(data, out);
    else if (type === 'response.output_item.added') itemAdded(data, slots);
    else if (type === 'response.output_item.done') streams.replacedGroup(`o${outputIndex(data)}`, out);
    else if (type === 'response.content_part.added' || type === 'response.reasoning_summary_part.added')
      partAdded(type, data, slots);
    else if (type === 'response.content_part.done' || type === 'response.reasoning_summary_part.done')
      partDone(type, data, out);
    else if (type.endsWith('.delta') || type.endsWith('.done')) stringEvent(type, data, out, slots);
    if (terminal) {
      kit.flushAll(out, new Set(slots.map((s) => s.stream)));
      streams.runSlots(slots, true);
      // what the SDK holds after it (a terminal response is its final snapshot) is checked by heldStep
      writer.emitEvent(type, data, slots, out);
      return;
    }
    streams.runSlots(slots, false);
    writer.emitEvent(type, data, slots, out);
  };

  return { event };
}
