import { blank, type Held, type HeldState, joinText } from './held-values.ts';
import { JOIN_WINDOW } from './relay-basics.ts';

/**
 * The `output_text` join the openai SDK builds for a Responses stream (addOutputText: every
 * `output_text` part of every message, in order): its parts that hold text, kept in order, and the
 * text each side of a place in it.
 */
export interface HeldJoin {
  /** Keeps the join right for `h`, a part of it that may have come to hold text or no longer does. */
  relist(h: Held): void;
  /** `h` is out of the join. */
  unlist(h: Held): void;
  /** The last `n` characters of the join before place `at`. */
  joinedBefore(at: number, n: number): string;
  /** The first `n` characters of the join after place `at`. */
  joinedAfter(at: number, n: number): string;
  /** The parts of the join in item `i` (all of them: `c` undefined) or its part `c`. */
  joinedIn(i: number, c?: number): Held[];
  /** Their text, joined. */
  joinedNow(i: number, c?: number): string;
  /** addOutputText: `output_text` is the join again. */
  rejoin(): void;
}

export function createHeldJoin(st: HeldState): HeldJoin {
  /** The index in `joined` of the first part at or after place `at`. */
  const seek = (at: number): number => {
    let lo = 0;
    let hi = st.joined.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (st.joined[m]!.at < at) lo = m + 1;
      else hi = m;
    }
    return lo;
  };
  /** Keeps `joined` right for `h`, a part of the join that may have come to hold text or no longer does. */
  const relist = (h: Held) => {
    if (h.at < 0) return;
    const has = h.nil === undefined && h.len > 0;
    if (has === h.listed) return;
    if (has) st.joined.splice(seek(h.at), 0, h);
    else st.joined.splice(seek(h.at), 1);
    h.listed = has;
  };
  const unlist = (h: Held) => {
    if (h.listed) st.joined.splice(seek(h.at), 1);
    h.listed = false;
  };
  /** The last `n` characters of the `output_text` join before place `at`. */
  const joinedBefore = (at: number, n: number): string => {
    let out = '';
    for (let k = seek(at) - 1; k >= 0 && out.length < n; k--) {
      const h = st.joined[k]!;
      const need = n - out.length;
      out = (h.len > need ? h.tail.slice(-need) : h.tail) + out;
    }
    return out;
  };
  /** The first `n` characters of the `output_text` join after place `at`. */
  const joinedAfter = (at: number, n: number): string => {
    let out = '';
    for (let k = seek(at + 1); k < st.joined.length && out.length < n; k++) {
      const h = st.joined[k]!;
      const need = n - out.length;
      out += h.len > need ? h.head.slice(0, need) : h.head;
    }
    return out;
  };
  /** The parts of the join in item `i` (all of them: `c` undefined) or its part `c`. */
  const joinedIn = (i: number, c?: number): Held[] => {
    const it = st.held[i];
    const parts = it?.type === 'message' ? (it.content ?? []) : [];
    const some = c === undefined ? parts : parts.slice(c, c + 1);
    return some.filter((p) => p.text.at >= 0).map((p) => p.text);
  };
  const joinedNow = (i: number, c?: number) => joinedIn(i, c).map(joinText).join('');
  /** addOutputText: `output_text` is the join again. */
  const rejoin = () => {
    const tail = joinedBefore(Number.MAX_SAFE_INTEGER, JOIN_WINDOW);
    const last = st.joined.at(-1);
    st.outputText = {
      ...blank(undefined),
      len: tail.length,
      tail,
      src: last?.src,
      end: last?.end ?? 0,
      run: last ? Math.min(last.run, tail.length) : 0,
    };
  };

  return { relist, unlist, joinedBefore, joinedAfter, joinedIn, joinedNow, rejoin };
}
