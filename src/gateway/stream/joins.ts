import { secretRedactor } from '../stages/output-filter.ts';
import { JOIN_WINDOW, type Join, refuse, type TextStream } from './relay-basics.ts';

/**
 * Text clients join across strings (chat choices, Responses `output_text` parts, Anthropic text
 * blocks) checked for the injected keys: at each junction (a window of JOIN_WINDOW characters each
 * side), or whole.
 */
export interface JoinChecks {
  /** Whether `w` holds none of the keys (the last window found clean is remembered). */
  windowClean(w: string): boolean;
  /** A join over strings of several streams, checked at each piece when its window mixes them. */
  join(): Join;
  /** The texts of several strings as a client joins them, in order, checked (their ends meet). */
  checkJoined(texts: readonly string[]): void;
}

/**
 * `secrets`: the keys injected, checked with no other stage (which may change ordinary text);
 * without them, with `clean`.
 */
export function createJoinChecks(
  secrets: readonly string[] | undefined,
  clean: (text: string) => string,
): JoinChecks {
  const keyCheck = (() => {
    if (!secrets) return clean;
    const r = secretRedactor(secrets);
    return (t: string) => r.push(t) + r.end();
  })();
  /** The last window found clean: joins that see the same text (one choice a chunk) check it once. */
  let lastClean = '';
  const windowClean = (w: string) => {
    if (w === lastClean) return true;
    if (keyCheck(w) !== w) return false;
    lastClean = w;
    return true;
  };

  /** A join over strings of several streams, checked at each piece when its window mixes them. */
  const join = (): Join => {
    let tail = '';
    let src: TextStream | undefined;
    /** How many characters at the end of `tail` came from `src`. */
    let run = 0;
    return {
      add(text, from) {
        if (text === '') return;
        const same = from === src;
        const others = same ? tail.length > run : tail.length > 0;
        const window = tail + text;
        if (others && !windowClean(window)) refuse('text a client joins across streams holds a key');
        run = same ? run + text.length : text.length;
        src = from;
        tail = window.length > JOIN_WINDOW ? window.slice(-JOIN_WINDOW) : window;
        if (run > tail.length) run = tail.length;
      },
    };
  };
  /** The texts of several strings as a client joins them, in order, checked (their ends meet). */
  const checkJoined = (texts: readonly string[]) => {
    if (texts.filter((t) => t !== '').length < 2) return;
    const joined = texts.join('');
    if (keyCheck(joined) !== joined) refuse('text a client joins across parts holds a key');
  };

  return { windowClean, join, checkJoined };
}
