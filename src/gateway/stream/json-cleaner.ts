import type { GatewayRoute } from '../types.ts';
import { normalizeJsonTexts } from './json-text.ts';
import { isObj, type Json, put, type Skip } from './json-values.ts';

/**
 * Cleaning parsed JSON values (a complete answer, a streamed event) string by string, and the texts
 * clients join in a complete answer (part of the stream relay, src/gateway/stream.ts).
 */

const MAX_DEPTH = 64;
/** Logprobs with entries (a non-empty list, or chat's `{content, refusal}`), not `null` or `[]`. */
const LOGPROBS_LIST = /"logprobs"\s*:\s*(?:\{|\[\s*[^\]\s])/;

/**
 * Whether the JSON text `raw` must be cleaned string by string: it has escapes (a key written
 * `\u0073k-…` only shows once parsed) or logprobs (text repeated token by token). Otherwise every
 * string appears in the serialized text as it is, and one pass over that text sees all of them.
 */
export function needsWalk(raw: string): boolean {
  return raw.includes('\\') || LOGPROBS_LIST.test(raw);
}

/** Short strings (ids, names, keys of objects) repeat in every event: their cleaned form is kept. */
const MEMO_MAX_LENGTH = 64;
const MEMO_MAX_SIZE = 512;

/**
 * The strings clients join in a complete answer, by group: the Responses API's `output_text` (every
 * output_text part of every message, in order) and an Anthropic message's text blocks. Each string is
 * cleaned on its own; a key split across two of them would only show joined, so the joined text is
 * checked too (empty when there is nothing to join).
 */
export function joinedTexts(route: GatewayRoute, answer: unknown): string[][] {
  if (!isObj(answer)) return [];
  const texts: string[] = [];
  if (route === 'responses' && Array.isArray(answer.output)) {
    for (const item of answer.output) {
      if (!isObj(item) || !Array.isArray(item.content)) continue;
      for (const part of item.content)
        if (isObj(part) && part.type === 'output_text' && typeof part.text === 'string')
          texts.push(part.text);
    }
  } else if (route === 'messages' && Array.isArray(answer.content)) {
    for (const block of answer.content)
      if (isObj(block) && block.type === 'text' && typeof block.text === 'string') texts.push(block.text);
  }
  return texts.length > 1 ? [texts] : [];
}

/**
 * Logprobs repeat the generated text token by token: a list of entries is delivered only when the
 * joined tokens, the decoded joined bytes and every single token (alternatives too) come through the
 * cleaner unchanged (see stream.ts).
 */
function logprobsGuard(clean: (text: string) => string, cleanStr: (s: string) => string) {
  /** Whether a list of logprob entries is safe to deliver: see `logprobsGuard`. */
  const logprobsSafe = (list: unknown[]): boolean => {
    let tokens = '';
    const bytes: number[] = [];
    const alone: string[] = [];
    const altBytes: number[][] = [];
    for (const e of list) {
      if (!isObj(e)) continue;
      if (typeof e.token === 'string') {
        tokens += e.token;
        alone.push(e.token);
      }
      if (Array.isArray(e.bytes)) for (const b of e.bytes) if (typeof b === 'number') bytes.push(b);
      if (Array.isArray(e.top_logprobs)) {
        for (const t of e.top_logprobs) {
          if (!isObj(t)) continue;
          if (typeof t.token === 'string') alone.push(t.token);
          if (Array.isArray(t.bytes))
            altBytes.push(t.bytes.filter((b): b is number => typeof b === 'number'));
        }
      }
    }
    const same = (s: string) => clean(s) === s;
    if (!same(tokens)) return false;
    if (bytes.length && !same(Buffer.from(bytes.map((b) => b & 0xff)).toString('utf8'))) return false;
    for (const t of alone) if (cleanStr(t) !== t) return false;
    for (const b of altBytes) {
      const t = Buffer.from(b.map((x) => x & 0xff)).toString('utf8');
      if (cleanStr(t) !== t) return false;
    }
    return true;
  };

  /** A `logprobs` value: a list of entries (Responses), or `{content, refusal}` lists (chat). */
  const safeLogprobs = (v: unknown): unknown => {
    if (Array.isArray(v)) return logprobsSafe(v) ? v : [];
    if (isObj(v)) {
      for (const k of ['content', 'refusal']) {
        const l = v[k];
        if (Array.isArray(l) && !logprobsSafe(l)) return null;
      }
    }
    return v;
  };

  return { safeLogprobs };
}

/**
 * A memoizing cleaner and the walk over a parsed value that cleans every string in place (keys of
 * objects too), except the slots, with logprobs checked (`logprobsGuard`); with a `route`, the JSON
 * texts of its values are normalised first (`normalizeJsonTexts`). Shared by the relay and the
 * gateway's complete answers.
 */
export function jsonCleaner(clean: (text: string) => string, route?: GatewayRoute, jsonOutput = false) {
  const memo = new Map<string, string>();
  const cleanStr = (s: string): string => {
    if (s.length > MEMO_MAX_LENGTH) return clean(s);
    let c = memo.get(s);
    if (c === undefined) {
      if (memo.size >= MEMO_MAX_SIZE) memo.clear();
      c = clean(s);
      memo.set(s, c);
    }
    return c;
  };

  const { safeLogprobs } = logprobsGuard(clean, cleanStr);

  /** A number whose decimal form the cleaner changes (digits of a key): that cleaned text instead. */
  const cleanNum = (n: number): unknown => {
    const t = String(n);
    if (t.length < 4) return n;
    const c = cleanStr(t);
    return c === t ? n : c;
  };

  let deep = false;
  /**
   * Cleans `v` in place (returns the cleaned value for a string); `skip` are the slots left alone;
   * with `numbers`, numbers too (only needed when the whole-text pass matched digits).
   */
  const walk = (v: unknown, skip: readonly Skip[] | undefined, depth: number, numbers: boolean): unknown => {
    if (typeof v === 'string') return cleanStr(v);
    if (typeof v === 'number') return numbers ? cleanNum(v) : v;
    if (typeof v !== 'object' || v === null) return v;
    if (depth > MAX_DEPTH) {
      // not walked: the serialized event is then sent cleaned whatever it looks like
      deep = true;
      return v;
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i];
        if (typeof x === 'string') v[i] = cleanStr(x);
        else if (typeof x === 'number') {
          if (numbers) v[i] = cleanNum(x);
        } else if (typeof x === 'object' && x !== null) walk(x, skip, depth + 1, numbers);
      }
      return v;
    }
    const o = v as Json;
    let renamed: [string, string][] | undefined;
    for (const k of Object.keys(o)) {
      if (skip?.some((s) => s.obj === o && s.key === k)) continue;
      let x = o[k];
      if (k === 'logprobs' && x !== null && typeof x === 'object') {
        x = safeLogprobs(x);
        put(o, k, x);
      }
      if (typeof x === 'string') put(o, k, cleanStr(x));
      else if (typeof x === 'number') {
        if (numbers) put(o, k, cleanNum(x));
      } else if (typeof x === 'object' && x !== null) walk(x, skip, depth + 1, numbers);
      const ck = cleanStr(k);
      if (ck !== k) {
        renamed ??= [];
        renamed.push([k, ck]);
      }
    }
    if (renamed) {
      for (const [k, ck] of renamed) {
        const x = o[k];
        delete o[k];
        put(o, ck, x);
      }
    }
    return o;
  };

  /** `s` cleaned whole, or undefined when that breaks the JSON (a key's run matched across syntax). */
  const wholeText = (s: string): string | undefined => {
    const c = clean(s);
    if (c === s || deep) return c;
    try {
      JSON.parse(c);
      return c;
    } catch {
      return undefined;
    }
  };

  /** Whether the last `serialize`/`trySerialize` text is exactly the value serialized (nothing cleaned after). */
  let exact = false;

  return {
    cleanStr,
    safeLogprobs,
    /**
     * Cleans a parsed JSON value in place (a string is returned cleaned), its JSON texts normalised
     * first (with a `route`).
     */
    value(v: unknown, skip?: readonly Skip[]): unknown {
      if (route) normalizeJsonTexts(route, v, skip, jsonOutput);
      return walk(v, skip, 0, false);
    },
    /**
     * The value (walked: its strings are clean) serialized, then cleaned whole once more. If that
     * last pass changed the text into something that is not JSON (a run of a key matched across
     * JSON syntax, such as the digits of a number), the numbers are cleaned too and the value
     * serialized again; a value too deep to walk is sent cleaned in any case.
     */
    serialize(v: unknown, skip?: readonly Skip[]): string {
      const s = JSON.stringify(v);
      const c = wholeText(s);
      if (c !== undefined) {
        exact = c === s;
        return c;
      }
      const w = walk(v, skip, 0, true);
      const s2 = JSON.stringify(w);
      const c2 = wholeText(s2);
      exact = c2 === undefined || c2 === s2;
      return c2 ?? s2;
    },
    /**
     * As `serialize`, for a value whose strings were not walked (`walked` false): undefined when
     * the whole-text pass would break the JSON (the caller walks it, then serializes it).
     */
    trySerialize(v: unknown, walked: boolean): string | undefined {
      if (walked) return this.serialize(v);
      const s = JSON.stringify(v);
      const c = wholeText(s);
      exact = c === s;
      return c;
    },
    /**
     * The last text `serialize` or `trySerialize` gave is the value as it now stands, serialized: a
     * client parsing it reads that value (the last whole-text pass changed nothing).
     */
    get exact() {
      return exact;
    },
    /** Set when a value was too deep to walk; reset by the caller per value. */
    get deep() {
      return deep;
    },
    set deep(d: boolean) {
      deep = d;
    },
  };
}

/** A cleaner made by `jsonCleaner`. */
export type JsonCleaner = ReturnType<typeof jsonCleaner>;
