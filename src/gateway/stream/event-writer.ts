import type { JsonCleaner } from './json-cleaner.ts';
import { isObj } from './json-values.ts';
import type { Slot } from './relay-basics.ts';
import type { SseEvent } from './sse-parser.ts';
import type { StepRecord } from './step-record.ts';

/** The events the relay writes: upstream events cleaned (their text streams' slots already filtered), and its own. */
export interface EventWriter {
  /** Set per input event: whether its strings must be walked one by one (see createEventWriter). */
  walkAll: boolean;
  /** An event sent as `data` (slots already through their streams), cleaned; its text. */
  emitEvent(ev: string | undefined, data: unknown, slots: readonly Slot[], out: SseEvent[]): string;
  /** An event the relay makes (its strings are clean already), serialized and cleaned whole. */
  serialize(ev: string | undefined, data: unknown): SseEvent;
}

/** `exact`: events whose text is exactly their object serialized are noted in `step` (Responses). */
export function createEventWriter(jc: JsonCleaner, step: StepRecord, exact: boolean): EventWriter {
  /**
   * Set per input event: whether its strings must be walked one by one. Without JSON escapes every
   * string of the event is in its serialization as is, between quotes, and the serialization is
   * cleaned whole: the walk adds nothing but the logprobs checks (and a fallback, in the cleaner's `serialize`).
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
    if (exact && jc.exact && isObj(data)) step.noteExact(e, data);
    out.push(e);
    return text;
  };
  /** An event the relay makes (its strings are clean already), serialized and cleaned whole. */
  const serialize = (ev: string | undefined, data: unknown): SseEvent => {
    jc.deep = false;
    const e = { event: eventName(ev), data: jc.serialize(data) };
    if (exact && jc.exact && isObj(data)) step.noteExact(e, data);
    return e;
  };

  return {
    get walkAll() {
      return walkAll;
    },
    set walkAll(w: boolean) {
      walkAll = w;
    },
    emitEvent,
    serialize,
  };
}
