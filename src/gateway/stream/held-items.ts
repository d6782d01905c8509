import type { HeldJoin } from './held-join.ts';
import {
  blank,
  type Held,
  type HeldItem,
  type HeldPart,
  type HeldState,
  JOIN_SLOT,
  MAX_HELD,
} from './held-values.ts';
import { isObj } from './json-values.ts';
import { JOIN_WINDOW, type Piece, pieceOf, refuse } from './relay-basics.ts';

/**
 * The items and parts the openai SDK holds for a Responses stream, made from what an event gives
 * (a clone, as the SDK keeps it), counted (MAX_HELD at most), and dropped when an event replaces them.
 */
export interface HeldItems {
  /** The string an event sets (`obj[key]`), at place `at` of the join. */
  heldOf(obj: unknown, key: string, at?: number): Held;
  /** A part, at place `at` of the join if it is an `output_text` part of a message (-1: it is not). */
  partOf(v: unknown, at: number): HeldPart;
  /** Item `i` (`v`, as an event gives it). */
  itemOf(v: unknown, i: number): HeldItem;
  /** An item or part an event replaces: out of the join, and of the count. */
  dropPart(p: HeldPart): void;
  dropItem(it: HeldItem): void;
}

/** `pieceAt`: the piece of a text stream the step put at `obj[key]` (step-record.ts). */
export function createHeldItems(
  st: HeldState,
  join: HeldJoin,
  pieceAt: (obj: unknown, key: string, text: string) => Piece | undefined,
): HeldItems {
  /** The string an event sets (`obj[key]`, kept as the SDK keeps it: a clone), at place `at` of the join. */
  const heldOf = (obj: unknown, key: string, at = -1): Held => {
    const v = isObj(obj) ? obj[key] : undefined;
    if (v === null || v === undefined) return blank(String(v), at);
    const t = pieceOf(v, 'always') as string;
    const p = pieceAt(obj, key, t);
    return {
      pieces: t === '' ? [] : [t],
      len: t.length,
      head: t.slice(0, JOIN_WINDOW),
      tail: t.slice(-JOIN_WINDOW),
      src: p?.stream,
      end: p ? p.from + t.length : 0,
      run: p ? t.length : 0,
      nil: undefined,
      at,
      listed: false,
    };
  };

  const count = (n: number) => {
    st.count += n;
    if (st.count > MAX_HELD) refuse('too many items and parts in one answer');
  };
  /** A part, at place `at` of the join if it is an `output_text` part of a message (-1: it is not). */
  const partOf = (v: unknown, at: number): HeldPart => {
    count(1);
    const type = isObj(v) ? v.type : undefined;
    const text = heldOf(v, 'text', type === 'output_text' ? at : -1);
    join.relist(text);
    return { type, text, refusal: heldOf(v, 'refusal') };
  };
  /** Item `i` (`v`, as an event gives it). */
  const itemOf = (v: unknown, i: number): HeldItem => {
    count(1);
    const it = isObj(v) ? v : {};
    const message = it.type === 'message';
    return {
      type: it.type,
      content: Array.isArray(it.content)
        ? it.content.map((p, c) => partOf(p, message ? i * JOIN_SLOT + c : -1))
        : undefined,
      summary: Array.isArray(it.summary) ? it.summary.map((p) => partOf(p, -1)) : undefined,
      arguments: heldOf(it, 'arguments'),
      input: heldOf(it, 'input'),
      code: heldOf(it, 'code'),
    };
  };
  /** An item or part an event replaces: out of the join, and of the count. */
  const dropPart = (p: HeldPart) => {
    join.unlist(p.text);
    st.count--;
  };
  const dropItem = (it: HeldItem) => {
    for (const p of it.content ?? []) dropPart(p);
    st.count -= 1 + (it.summary?.length ?? 0);
  };

  return { heldOf, partOf, itemOf, dropPart, dropItem };
}
