import type { GatewayRoute, ResponseFilter } from '../types.ts';
import { isObj, put, type Skip } from './json-values.ts';

/**
 * Strings that are themselves JSON text, which clients parse (`JSON.parse` of tool-call arguments,
 * the SDKs' parsed arguments, Anthropic's `input` built from `partial_json`): a key written in them
 * with `\u0073`-style escapes is one the redactor cannot read, but every client that parses them gets
 * it. So before their filter these strings are normalised: an escape `\u00XX` of a printable ASCII
 * character (0x20–0x7E) other than `"` and `\`, and `\/`, becomes that character, which is exactly
 * what a JSON parser reads from it (in a string; in valid JSON there is no backslash anywhere else,
 * and lenient parsers, JSON5 identifiers and single-quoted strings included, read these escapes the
 * same way). Backslashes are read in pairs from the start of the text (`\\u0073` is an escaped
 * backslash and the text `u0073`, left alone). Escapes of anything else stay as they are: `\"`,
 * `\\`, control characters (which cannot be written bare in a string), and every character beyond
 * ASCII, surrogate pairs included (keys are ASCII: `\u0441` is not `s`, whatever it looks like). So
 * a text with no printable-ASCII escape passes unchanged, byte for byte.
 */
export interface JsonTextNormalizer {
  /** The normalised text that `text` (the next piece) completes; an escape not yet whole is held. */
  push(text: string): string;
  /** What was held (an escape the text ended in the middle of), as it was. */
  end(): string;
}

/** The character a `\uXXXX` escape at `s[i]` (the backslash) stands for, if it is normalised. */
function asciiEscape(s: string, i: number): string | undefined {
  // `\u00` then two hex digits of 0x20–0x7E
  if (s.charCodeAt(i + 2) !== 48 || s.charCodeAt(i + 3) !== 48) return undefined;
  const hi = s.charCodeAt(i + 4) - 48;
  if (hi < 2 || hi > 7) return undefined;
  const d = s.charCodeAt(i + 5);
  const lo = d >= 48 && d <= 57 ? d - 48 : d >= 97 && d <= 102 ? d - 87 : d >= 65 && d <= 70 ? d - 55 : -1;
  if (lo < 0) return undefined;
  const c = hi * 16 + lo;
  return c === 0x22 || c === 0x5c || c === 0x7f ? undefined : String.fromCharCode(c);
}
/** After `\u`, the text `rest` (fewer than 4 characters) could still make an escape that is normalised. */
const ESCAPE_START = /^(?:0(?:0[2-7]?)?)?$/;

/**
 * One step: `s` normalised, and the escape it ends in the middle of (held, unless `final`) that
 * could still be one to normalise (`\`, `\u`, `\u0`, `\u00`, `\u00X`).
 */
function normalizeStep(s: string, final: boolean): [string, string] {
  let out = '';
  let last = 0;
  let i = s.indexOf('\\');
  while (i >= 0) {
    const n = s.length;
    let next = i + 2;
    if (i + 1 >= n) {
      if (!final) return [out + s.slice(last, i), s.slice(i)];
      break;
    }
    const e = s.charCodeAt(i + 1);
    if (e === 117 /* u */) {
      if (i + 6 > n) {
        if (!final && ESCAPE_START.test(s.slice(i + 2))) return [out + s.slice(last, i), s.slice(i)];
      } else {
        const c = asciiEscape(s, i);
        if (c !== undefined) {
          out += s.slice(last, i) + c;
          last = next = i + 6;
        }
      }
    } else if (e === 47 /* / */) {
      out += `${s.slice(last, i)}/`;
      last = next;
    }
    // any other escape (`\\`, `\"`, `\n`, ...) is its two characters: the next backslash starts one
    i = s.indexOf('\\', next);
  }
  return [last === 0 ? s : out + s.slice(last), ''];
}

/** A normaliser for one JSON text that arrives in pieces (see JsonTextNormalizer). */
export function jsonTextNormalizer(): JsonTextNormalizer {
  let held = '';
  return {
    push(text) {
      if (held === '' && !text.includes('\\')) return text;
      const [out, h] = normalizeStep(held + text, false);
      held = h;
      return out;
    },
    end() {
      const h = held;
      held = '';
      return h;
    },
  };
}

/** A whole JSON text, normalised (see JsonTextNormalizer). */
export function normalizeJsonText(text: string): string {
  return text.includes('\\') ? normalizeStep(text, true)[0] : text;
}

/** `f`, reading the normalised text of the JSON text pushed to it. */
export function jsonTextFilter(f: ResponseFilter): ResponseFilter {
  const n = jsonTextNormalizer();
  return {
    push: (t) => f.push(n.push(t)),
    end: () => {
      const rest = n.end();
      return (rest === '' ? '' : f.push(rest)) + f.end();
    },
  };
}

/** A JSON text value as a client parses it (`JSON.parse(v)` reads `String(v)`: an array's strings too), normalised. */
function normalizeJsonValue(v: unknown): unknown {
  if (typeof v === 'string') return normalizeJsonText(v);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = normalizeJsonValue(v[i]);
  }
  return v;
}

/**
 * Normalises in place the JSON texts of a complete value (an answer, or a streamed event) of
 * `route`, but for the `skip` slots (strings of text streams, normalised by their stream):
 *
 * - Chat Completions: each choice's `message` and `delta`, their `tool_calls[].function.arguments`
 *   and `function_call.arguments`;
 * - Responses: the `arguments` of each item (`output[]` of an answer or of an event's `response`,
 *   an event's `item`) and of `response.function_call_arguments.done` and `mcp_call_arguments.done`;
 * - Anthropic: a delta's `partial_json` (a `tool_use` block's `input` is an object, parsed already).
 */
export function normalizeJsonTexts(
  route: GatewayRoute,
  v: unknown,
  skip?: readonly Skip[],
  jsonOutput = false,
): void {
  if (!isObj(v)) return;
  const at = (o: unknown, k: string) => {
    if (!isObj(o) || !Object.hasOwn(o, k) || skip?.some((s) => s.obj === o && s.key === k)) return;
    const x = o[k];
    if (typeof x === 'string' || Array.isArray(x)) put(o, k, normalizeJsonValue(x));
  };
  const each = (l: unknown, f: (x: unknown) => void) => {
    if (Array.isArray(l)) for (const x of l) f(x);
  };
  if (route === 'chat.completions') {
    each(v.choices, (c) => {
      if (!isObj(c)) return;
      for (const m of [c.message, c.delta]) {
        if (!isObj(m)) continue;
        // structured output: the generated text is JSON the client parses
        if (jsonOutput) at(m, 'content');
        each(m.tool_calls, (tc) => {
          if (isObj(tc)) at(tc.function, 'arguments');
        });
        at(m.function_call, 'arguments');
      }
    });
  } else if (route === 'responses') {
    const items = (l: unknown) =>
      each(l, (it) => {
        at(it, 'arguments');
        if (jsonOutput && isObj(it))
          each(it.content, (part) => {
            if (isObj(part) && part.type === 'output_text') at(part, 'text');
          });
      });
    items(v.output);
    if (isObj(v.response)) items(v.response.output);
    at(v.item, 'arguments');
    if (v.type === 'response.function_call_arguments.done' || v.type === 'response.mcp_call_arguments.done')
      at(v, 'arguments');
    if (jsonOutput) {
      if (v.type === 'response.output_text.done') at(v, 'text');
      if (isObj(v.part) && v.part.type === 'output_text') at(v.part, 'text');
      at(v, 'output_text');
      if (isObj(v.response)) at(v.response, 'output_text');
    }
  } else if (route === 'messages') {
    if (isObj(v.delta) && v.delta.type === 'input_json_delta') at(v.delta, 'partial_json');
  }
}
