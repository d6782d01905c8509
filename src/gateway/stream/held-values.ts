import { MAX_STREAMS, type Piece, type TextStream } from './relay-basics.ts';

/**
 * The strings the openai SDK holds for a Responses stream, as the relay keeps them to check what a
 * client holds after each event (responses-held.ts): their shapes and the pure helpers on them.
 */

/**
 * A string the openai SDK builds for a Responses stream (lib/responses/ResponseAccumulator) as the
 * client holds it after the events sent so far: a part's `text` or `refusal`, a summary part's `text`,
 * an item's `arguments`, `input` or `code`, the response's `output_text`. Its text is kept in pieces
 * (joined when an event replaces it), with its first and last JOIN_WINDOW characters.
 */
export interface Held {
  pieces: string[];
  len: number;
  /** Its first min(len, JOIN_WINDOW) characters. */
  head: string;
  /** Its last characters: min(len, JOIN_WINDOW) of them at least, fewer than 2·JOIN_WINDOW + a piece. */
  tail: string;
  /**
   * Its last `run` characters are one stretch of the output of the relay stream `src`, which ends at
   * `end` of that output: that stream's filter saw them together, so the piece it sends next (from
   * `end`) joins them with nothing else to check.
   */
  src: TextStream | undefined;
  end: number;
  run: number;
  /** Its value is `null` or `undefined`: `''` where the SDK joins it, that word where it appends (`+=`). */
  nil: string | undefined;
  /** Its place in the `output_text` join (item · JOIN_SLOT + part), -1 for a string not in it. */
  at: number;
  /** It is in the list of the join's parts that hold text. */
  listed: boolean;
}
export interface HeldPart {
  type: unknown;
  text: Held;
  refusal: Held;
}
export interface HeldItem {
  type: unknown;
  content: HeldPart[] | undefined;
  summary: HeldPart[] | undefined;
  arguments: Held;
  input: Held;
  code: Held;
}
/** Items and parts of a Responses answer the relay follows, at most. */
export const MAX_HELD = 4 * MAX_STREAMS;
/** Places in the join: an item's parts are numbered from item · JOIN_SLOT (MAX_HELD parts fit). */
export const JOIN_SLOT = 2 ** 21;

/** What the SDK holds for one answer. */
export interface HeldState {
  /** Its `output` list. */
  held: HeldItem[];
  /** Items and parts in `held`. */
  count: number;
  /** The parts of the `output_text` join that hold text, in order (of `at`). */
  joined: Held[];
  /** The SDK's own `output_text` (its last characters). */
  outputText: Held;
}

/** A string with no text yet (`nil`: its value is `null` or `undefined`, by that word). */
export const blank = (nil: string | undefined, at = -1): Held => ({
  pieces: [],
  len: 0,
  head: '',
  tail: '',
  src: undefined,
  end: 0,
  run: 0,
  nil,
  at,
  listed: false,
});

export const newHeldState = (): HeldState => ({ held: [], count: 0, joined: [], outputText: blank('') });

/** The entry of `list` an event's index names, if it exists (the SDK throws otherwise). */
export const entry = <T>(list: readonly T[] | undefined, at: unknown): T | undefined =>
  list && typeof at === 'number' && Number.isInteger(at) && at >= 0 && at < list.length
    ? list[at]
    : undefined;
const whole = (h: Held): string => {
  if (h.pieces.length > 1) h.pieces = [h.pieces.join('')];
  return h.pieces[0] ?? '';
};
/** A string's text as addOutputText joins it (`null` and `undefined` as nothing). */
export const joinText = (h: Held): string => (h.nil === undefined ? whole(h) : '');
/** Whether piece `p` goes on where `h` ends, in the same stream's output (an empty `h`: at its start). */
export const follows = (h: Held, p: Piece | undefined) =>
  p !== undefined && (h.len === 0 ? p.from === 0 : h.src === p.stream && h.end === p.from);
