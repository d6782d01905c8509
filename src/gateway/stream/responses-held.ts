import { createHeldItems, type HeldItems } from './held-items.ts';
import { createHeldJoin, type HeldJoin } from './held-join.ts';
import { createHeldText, type HeldText } from './held-text.ts';
import {
  entry,
  type Held,
  type HeldItem,
  type HeldState,
  JOIN_SLOT,
  joinText,
  newHeldState,
} from './held-values.ts';
import { isObj, type Json } from './json-values.ts';
import { type Piece, pieceOf } from './relay-basics.ts';
import type { RelayKit } from './relay-kit.ts';
import {
  HELD_EVENTS,
  ITEM_STRING_OWNER,
  RESPONSE_SNAPSHOTS,
  RESPONSE_TERMINALS,
  STRING_EVENTS,
  type StringEvent,
} from './responses-event-types.ts';
import type { SseEvent } from './sse-parser.ts';

/**
 * Responses: what the openai SDK holds (see stream.ts). The strings the SDK holds for a Responses
 * stream, rebuilt from the events the client gets (as ResponseAccumulator and addOutputText build
 * them), checked after every event before it goes out: each string an event appends to or sets, and
 * `output_text` (its own string, reset to the join of every `output_text` part of every message at
 * the events that call addOutputText, appended to by each `output_text` delta) and that join, the
 * final text. Only the text around a change is checked (JOIN_WINDOW characters each side), and not
 * even that when the change is a piece a text stream sends right after the ones the string ends with
 * (its filter saw them together) or a string of one event (cleaned whole) with nothing else in reach.
 */

/** What the checks of one answer work on. */
interface HeldTools {
  st: HeldState;
  join: HeldJoin;
  items: HeldItems;
  text: HeldText;
  pieceAt: (obj: unknown, key: string, text: string) => Piece | undefined;
}

/** A delta or done event (`str`) for item `at`: the string it appends to or sets, checked. */
function heldString(tools: HeldTools, d: Json, at: number, item: HeldItem, str: StringEvent) {
  const { join, items, text: changes } = tools;
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
    const old = text ? join.joinedNow(at, c) : '';
    join.unlist(h);
    Object.assign(h, items.heldOf(d, known.field, h.at));
    join.relist(h);
    if (text) {
      changes.rejoinedAt(at, c, old);
      join.rejoin();
    }
  } else {
    const t = pieceOf(d.delta, 'always') as string;
    const p = tools.pieceAt(d, 'delta', t);
    if (text) changes.appendText(at, c as number, h, t, p);
    else changes.append(h, t, p, nilAs);
  }
}

/** One event as the client gets it (`d`, parsed): the SDK's strings after it, checked. */
function heldEvent(tools: HeldTools, d: Json) {
  const { st, join, items, text: changes } = tools;
  const type = d.type;
  if (typeof type !== 'string') return;
  const str = STRING_EVENTS.get(type);
  const i = d.output_index;
  if (str) {
    const item = entry(st.held, i);
    if (item) heldString(tools, d, i as number, item, str);
    return;
  }
  if (RESPONSE_SNAPSHOTS.has(type) || RESPONSE_TERMINALS.has(type)) {
    if (type === 'error') return;
    // cloneResponse: the whole snapshot, and its own `output_text` unless it has none (or null)
    const r = isObj(d.response) ? d.response : {};
    const old = st.joined.map(joinText).join('');
    st.count = 0;
    st.joined = [];
    st.held = Array.isArray(r.output) ? r.output.map(items.itemOf) : [];
    changes.rejoined(old, st.joined.slice(), '', '');
    if (Object.hasOwn(r, 'output_text') && r.output_text !== null && r.output_text !== undefined)
      st.outputText = { ...items.heldOf(r, 'output_text'), src: undefined, run: 0 };
    else join.rejoin();
    return;
  }
  if (type === 'response.output_item.added') {
    // pushed at the end, whatever its output_index says
    const n = st.held.length;
    st.held.push(items.itemOf(d.item, n));
    if (st.held[n]!.type === 'message') {
      changes.rejoinedAt(n, undefined, '');
      join.rejoin();
    }
    return;
  }
  const item = entry(st.held, i);
  if (!item) return;
  const at = i as number;
  const message = item.type === 'message';
  const reasoning = item.type === 'reasoning';
  if (type === 'response.output_item.done') {
    const old = join.joinedNow(at);
    items.dropItem(item);
    st.held[at] = items.itemOf(d.item, at);
    changes.rejoinedAt(at, undefined, old);
    if (st.held[at]!.type === 'message') join.rejoin();
  } else if (type === 'response.content_part.added' || type === 'response.content_part.done') {
    const part = d.part;
    const pt = isObj(part) ? part.type : undefined;
    const added = type === 'response.content_part.added';
    if (message && pt !== 'reasoning_text') {
      if (!item.content) return;
      const c = added ? item.content.length : d.content_index;
      const was = entry(item.content, c);
      if (!added && !was) return;
      const old = added ? '' : join.joinedNow(at, c as number);
      if (was) items.dropPart(was);
      item.content[c as number] = items.partOf(part, at * JOIN_SLOT + (c as number));
      changes.rejoinedAt(at, c as number, old);
      if (pt === 'output_text') join.rejoin();
    } else if (reasoning && pt === 'reasoning_text') {
      if (added) {
        item.content ??= [];
        item.content.push(items.partOf(part, -1));
      } else {
        const was = entry(item.content, d.content_index);
        if (!was) return;
        items.dropPart(was);
        item.content![d.content_index as number] = items.partOf(part, -1);
      }
    }
  } else if (type === 'response.reasoning_summary_part.added') {
    if (reasoning && item.summary) item.summary.push(items.partOf(d.part, -1));
  } else if (type === 'response.reasoning_summary_part.done') {
    const was = reasoning ? entry(item.summary, d.summary_index) : undefined;
    if (!was) return;
    items.dropPart(was);
    item.summary![d.summary_index as number] = items.partOf(d.part, -1);
  }
}

export interface ResponsesHeld {
  /** The events of a step as the client reads them: what its SDK holds after each, checked. */
  step(out: readonly SseEvent[]): void;
}

export function createResponsesHeld(kit: RelayKit): ResponsesHeld {
  const st = newHeldState();
  const join = createHeldJoin(st);
  const tools: HeldTools = {
    st,
    join,
    items: createHeldItems(st, join, kit.step.pieceAt),
    text: createHeldText(st, join, kit.checks.windowClean),
    pieceAt: kit.step.pieceAt,
  };
  /** The events of a step as the client reads them: what its SDK holds after each, checked. */
  const heldStep = (out: readonly SseEvent[]) => {
    let k = 0;
    for (const e of out) {
      // the objects of exact events, in the same order
      const exact = k < kit.step.exact && kit.step.events[k] === e;
      if (exact) k++;
      if (e.event === undefined || !HELD_EVENTS.has(e.event)) continue;
      const d = exact ? kit.step.objects[k - 1] : (JSON.parse(e.data) as unknown);
      if (isObj(d)) heldEvent(tools, d);
    }
  };
  return { step: heldStep };
}
