import type { ResponseFilter } from '../types.ts';
import { jsonTextFilter } from './json-text.ts';
import { put } from './json-values.ts';
import {
  JOIN_WINDOW,
  type Join,
  type Kept,
  MAX_CLOSED,
  type Main,
  refuse,
  type Slot,
  type StreamSpec,
  type TextStream,
} from './relay-basics.ts';
import type { SseEvent } from './sse-parser.ts';
import type { StepRecord } from './step-record.ts';

/**
 * The text streams of one answer: one cross-event filter per string a client builds (opened at its
 * first piece, ended by an event that replaces the string or at the terminal event, when what the
 * filter held goes out as one more event shaped like the provider's), the strings replaced (closed
 * to deltas), and what each stream sent, for the joins, the final join check and the generated text.
 */
export interface TextStreams {
  /** How many main streams were opened so far: a new main stream's place among equals. */
  readonly seq: number;
  has(key: string): boolean;
  keys(): IterableIterator<string>;
  /** Whether any of `keys` (strings, or groups `o<i>`, `o<i>|c<j>`, `c<i>`) was replaced. */
  isClosed(...keys: string[]): boolean;
  /** Closes `key` to deltas. */
  close(key: string): void;
  /** The stream of `key`, opened with `make()`'s spec at its first piece. */
  open(key: string, make: () => StreamSpec): TextStream;
  /** Ends the streams `pred` picks (but the ones in `except`), in the order they started. */
  flushWhere(pred: (s: TextStream) => boolean, out: SseEvent[], except?: ReadonlySet<TextStream>): void;
  /** A string was replaced: what its stream held goes out first, and no delta may follow. */
  replaced(key: string, out: SseEvent[]): void;
  /** Every string under `group` (`o1`, `o1|c0`, `c0`) was replaced. */
  replacedGroup(group: string, out: SseEvent[]): void;
  /** Passes the slots' pieces through their streams, in order; with `finish`, each stream ends inline. */
  runSlots(slots: readonly Slot[], finish: boolean): void;
  /** The final join of the texts kept (parts and blocks of text, by place), checked. */
  checkKept(): void;
  /** The generated text sent (see StreamRelay.text). */
  text(): string;
}

/** Text a stream sent, kept as far as the final join needs it: its first and last JOIN_WINDOW characters. */
function keep(k: Kept, text: string) {
  if (k.head === undefined) {
    k.text += text;
    if (k.text.length > 2 * JOIN_WINDOW) {
      k.head = k.text.slice(0, JOIN_WINDOW);
      k.text = k.text.slice(-JOIN_WINDOW);
    }
  } else k.text = (k.text + text).slice(-JOIN_WINDOW);
}

/** The generated text: the main streams' output, by order then by when they opened. */
const generated = (mains: readonly Main[]) =>
  [...mains]
    .sort((a, b) => a.order - b.order || a.seq - b.seq)
    .map((m) => m.out)
    .join('');

export function createTextStreams(deps: {
  /** A new cross-event filter (push/end), one per text stream. */
  filter: () => ResponseFilter;
  maxStreams: number;
  checkJoined: (texts: readonly string[]) => void;
  step: StepRecord;
}): TextStreams {
  const { filter, maxStreams, checkJoined, step } = deps;
  const streams = new Map<string, TextStream>();
  /** Strings replaced by an event: keys, and `o<i>`, `o<i>|c<j>`, `c<i>` groups. */
  const closed = new Set<string>();
  let opened = 0;
  let seq = 0;
  const mains: Main[] = [];
  /** Streams ended before the terminal event whose text still counts in the final join. */
  const retired: TextStream[] = [];
  const checkKept = () => {
    const kept = [...streams.values(), ...retired]
      .filter((s): s is TextStream & { kept: Kept; place: number[] } => !!s.kept && !!s.place)
      .sort((a, b) => {
        for (let i = 0; i < Math.max(a.place.length, b.place.length); i++) {
          const d = (a.place[i] ?? -1) - (b.place[i] ?? -1);
          if (d !== 0) return d;
        }
        return 0;
      });
    checkJoined(
      kept.map((s) => (s.kept.head === undefined ? s.kept.text : `${s.kept.head}\n${s.kept.text}`)),
    );
  };

  const close = (key: string) => {
    if (closed.has(key)) return;
    if (closed.size >= MAX_CLOSED) refuse('too many strings replaced');
    closed.add(key);
  };

  const open = (key: string, make: () => StreamSpec): TextStream => {
    let s = streams.get(key);
    if (s) return s;
    if (closed.has(key)) refuse('a delta to a string an event replaced');
    if (++opened > maxStreams) refuse('too many text streams in one answer');
    const spec = make();
    s = {
      key,
      filter: spec.json ? jsonTextFilter(filter()) : filter(),
      shape: spec.shape,
      joins: spec.joins ?? [],
      kept: spec.place ? { text: '', head: undefined } : undefined,
      place: spec.place,
      main: spec.main === undefined ? undefined : { order: spec.main, seq: seq++, out: '' },
      sentLen: 0,
    };
    if (s.main) mains.push(s.main);
    streams.set(key, s);
    return s;
  };

  /**
   * Text of `s` about to be sent: through the joins it goes into (which may refuse), then kept.
   * Returns where it starts in the stream's output.
   */
  const sent = (s: TextStream, text: string, joins: readonly Join[]): number => {
    const from = s.sentLen;
    if (text === '') return from;
    for (const j of joins) j.add(text, s);
    if (s.kept) keep(s.kept, text);
    if (s.main) s.main.out += text;
    s.sentLen += text.length;
    return from;
  };

  /** Ends a stream: what its filter held back, as one more event (none when nothing was held). */
  const flush = (s: TextStream, out: SseEvent[]) => {
    streams.delete(s.key);
    if (s.kept) retired.push(s);
    const tail = s.filter.end();
    if (!tail) return;
    const from = sent(s, tail, s.joins);
    const e = s.shape(tail);
    const last = step.exact - 1;
    if (last >= 0 && step.events[last] === e) step.notePiece(step.objects[last]!, 'delta', s, from, tail);
    out.push(e);
  };
  /** Ends the streams `pred` picks (but the ones in `keep`), in the order they started. */
  const flushWhere = (
    pred: (s: TextStream) => boolean,
    out: SseEvent[],
    except?: ReadonlySet<TextStream>,
  ) => {
    for (const s of [...streams.values()]) if (!except?.has(s) && pred(s)) flush(s, out);
  };
  /** A string was replaced: what its stream held goes out first, and no delta may follow. */
  const replaced = (key: string, out: SseEvent[]) => {
    const s = streams.get(key);
    if (s) flush(s, out);
    close(key);
  };
  /** Every string under `group` (`o1`, `o1|c0`, `c0`) was replaced. */
  const replacedGroup = (group: string, out: SseEvent[]) => {
    flushWhere((s) => s.key.startsWith(`${group}|`), out);
    close(group);
  };
  const isClosed = (...keys: string[]) => keys.some((k) => closed.has(k));

  /** Passes the slots' pieces through their streams, in order; with `finish`, each stream ends inline. */
  const runSlots = (slots: readonly Slot[], finish: boolean) => {
    for (const slot of slots) {
      const s = slot.stream;
      const v = s.filter.push(slot.piece);
      const from = sent(s, v, slot.joins);
      put(slot.obj, slot.key, v);
      step.notePiece(slot.obj, slot.key, s, from, v);
    }
    if (!finish) return;
    const last = new Map<TextStream, Slot>();
    for (const slot of slots) last.set(slot.stream, slot);
    for (const [s, slot] of last) {
      streams.delete(s.key);
      if (s.kept) retired.push(s);
      const tail = s.filter.end();
      const from = s.sentLen - (slot.obj[slot.key] as string).length;
      sent(s, tail, slot.joins);
      const v = (slot.obj[slot.key] as string) + tail;
      put(slot.obj, slot.key, v);
      step.notePiece(slot.obj, slot.key, s, from, v);
    }
  };

  return {
    get seq() {
      return seq;
    },
    has: (key) => streams.has(key),
    keys: () => streams.keys(),
    isClosed,
    close,
    open,
    flushWhere,
    replaced,
    replacedGroup,
    runSlots,
    checkKept,
    text: () => generated(mains),
  };
}
