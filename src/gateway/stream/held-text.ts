import type { HeldJoin } from './held-join.ts';
import { blank, follows, type Held, type HeldState, JOIN_SLOT, joinText } from './held-values.ts';
import { JOIN_WINDOW, type Piece, refuse } from './relay-basics.ts';

/**
 * Changes to the strings the openai SDK holds for a Responses stream, each checked before the event
 * that makes it goes out: an append (`+=`) checks the text around its junction, a change to the
 * `output_text` join the text around what changed; neither when the text in reach is one stretch a
 * single text stream's filter saw together, or strings of one event (cleaned whole).
 */
export interface HeldText {
  /** `+=` on a `null` or `undefined` value starts from its name (`code` from `''`: `?? ''`). */
  unnil(h: Held, word: string): void;
  /** The SDK appends `t` to `h`, a string that is not part of the `output_text` join. */
  append(h: Held, t: string, p: Piece | undefined, nilAs?: string): void;
  /** Some parts of the join changed (`now`, between `before` and `after`; `old` their text before): checked. */
  rejoined(old: string, now: readonly Held[], before: string, after: string): void;
  /** Item `i`'s part `c` (all its parts: `c` undefined) changed: `old` was their joined text. */
  rejoinedAt(i: number, c: number | undefined, old: string): void;
  /** The SDK appends an `output_text` delta to part `c` of message `i`, and to `output_text`. */
  appendText(i: number, c: number, h: Held, t: string, p: Piece | undefined): void;
}

/** `windowClean`: whether a text holds none of the injected keys (joins.ts). */
export function createHeldText(st: HeldState, join: HeldJoin, windowClean: (w: string) => boolean): HeldText {
  const clear = (window: string) => {
    if (!windowClean(window)) refuse('a string the client’s SDK builds would hold a key');
  };
  /** Appends `t` to `h` (`+=`), after the caller checked it; `keep`: its whole text is kept (the join's parts). */
  const grow = (h: Held, t: string, p: Piece | undefined, keep: boolean) => {
    const on = follows(h, p);
    h.run = on ? h.run + t.length : p ? t.length : 0;
    h.src = p?.stream;
    h.end = p ? p.from + t.length : 0;
    if (keep) h.pieces.push(t);
    h.len += t.length;
    if (h.head.length < JOIN_WINDOW) h.head = (h.head + t).slice(0, JOIN_WINDOW);
    h.tail += t;
    if (h.tail.length > 2 * JOIN_WINDOW) h.tail = h.tail.slice(-JOIN_WINDOW);
    if (!h.listed) join.relist(h);
  };
  /** `+=` on a `null` or `undefined` value starts from its name (`code` from `''`: `?? ''`). */
  const unnil = (h: Held, word: string) => {
    Object.assign(h, { ...blank(undefined, h.at), listed: h.listed, len: word.length });
    h.pieces = word ? [word] : [];
    h.head = h.tail = word;
    join.relist(h);
  };
  /** The SDK appends `t` to `h`, a string that is not part of the `output_text` join. */
  const append = (h: Held, t: string, p: Piece | undefined, nilAs?: string) => {
    if (h.nil !== undefined) unnil(h, nilAs ?? h.nil);
    if (t === '') return;
    if (!(follows(h, p) && h.run >= Math.min(h.len, JOIN_WINDOW))) clear(h.tail.slice(-JOIN_WINDOW) + t);
    grow(h, t, p, false);
  };

  /**
   * Some parts of the `output_text` join changed (`now`, between the texts `before` and `after` them;
   * `old` their text before): the text around what changed is checked, unless it lies within one of
   * them (strings of one event, cleaned whole, or a piece of one stream).
   */
  const rejoined = (old: string, now: readonly Held[], before: string, after: string) => {
    const texts = now.map(joinText);
    const text = texts.join('');
    if (text === old) return;
    const max = Math.min(old.length, text.length);
    let a = 0;
    while (a < max && old.charCodeAt(a) === text.charCodeAt(a)) a++;
    let z = 0;
    while (z < max - a && old.charCodeAt(old.length - 1 - z) === text.charCodeAt(text.length - 1 - z)) z++;
    const from = Math.max(a - JOIN_WINDOW, -before.length);
    const to = Math.min(text.length - z + JOIN_WINDOW, text.length + after.length);
    let at = 0;
    for (const t of texts) {
      if (from >= at && to <= at + t.length) return;
      at += t.length;
    }
    clear(
      (from < 0 ? before.slice(before.length + from) : '') +
        text.slice(Math.max(from, 0), Math.min(to, text.length)) +
        (to > text.length ? after.slice(0, to - text.length) : ''),
    );
  };
  /** Item `i`'s part `c` (all its parts: `c` undefined) changed: `old` was their joined text. */
  const rejoinedAt = (i: number, c: number | undefined, old: string) =>
    rejoined(
      old,
      join.joinedIn(i, c),
      join.joinedBefore(i * JOIN_SLOT + (c ?? 0), JOIN_WINDOW),
      join.joinedAfter(c === undefined ? (i + 1) * JOIN_SLOT - 1 : i * JOIN_SLOT + c, JOIN_WINDOW),
    );

  /** The SDK appends an `output_text` delta to part `c` of message `i`, and to `output_text`. */
  const appendText = (i: number, c: number, h: Held, t: string, p: Piece | undefined) => {
    if (h.nil !== undefined) {
      const old = join.joinedNow(i, c);
      unnil(h, h.nil);
      rejoinedAt(i, c, old);
    }
    if (t !== '') {
      const right = join.joinedAfter(h.at, JOIN_WINDOW);
      // the text in reach is this piece and the ones of its stream just before it
      const own =
        right === '' &&
        follows(h, p) &&
        (h.len >= JOIN_WINDOW ? h.run >= JOIN_WINDOW : h.run >= h.len && join.joinedBefore(h.at, 1) === '');
      if (!own)
        clear(
          (h.len >= JOIN_WINDOW
            ? h.tail.slice(-JOIN_WINDOW)
            : join.joinedBefore(h.at, JOIN_WINDOW - h.len) + h.tail) +
            t +
            right,
        );
      grow(h, t, p, true);
    }
    append(st.outputText, t, p);
  };

  return { unnil, append, rejoined, rejoinedAt, appendText };
}
