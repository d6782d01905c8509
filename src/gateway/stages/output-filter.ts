// biome-ignore-all lint/style/noExcessiveLinesPerFile: the streaming redactor: the secret matcher, its encodings and the carry-over between chunks are one state machine
import type { Rule } from '../../scan/rules.ts';
import type { CallInfo, ResponseFilter, ResponseStage } from '../types.ts';
import {
  credentialDetectors,
  type Detector,
  type Hit,
  nextHit,
  PII_KINDS,
  type PiiKind,
  piiDetector,
} from './detect.ts';

/**
 * The output filter (issue 7, item 7): a response stage that redacts, from
 * text streamed chunk by chunk,
 *
 * - each secret of the call (the injected provider key) as written, and as
 *   base64 (standard and URL-safe, at any of the 3 byte alignments inside a
 *   larger encoded blob) and hex (lower and upper case);
 * - known credential formats (src/scan/rules.ts, the rules that need no line
 *   context, with every quantifier bounded);
 * - the configured PII kinds.
 *
 * `secretRedactor` is the gateway's always-on redaction of the injected keys:
 * the secret forms above, plus partial and masked forms of each key (runs of
 * its secret part: `SecretRuns`).
 *
 * Matches are chosen the same way whatever the chunking: the leftmost match,
 * the longest at that position, then the next one after it. A match depends
 * on at most `span` characters from its start (plus 16 of look-behind), so
 * `push` emits everything except a tail of at most `maxSpan` characters that
 * could still be the start of a match, and the concatenated output equals
 * what one push of the whole text gives. See docs/stages.md.
 */

export interface OutputFilterConfig {
  /** Stage name (default `output-filter`). */
  name?: string;
  /** Replacement text (default `[REDACTED]`). */
  marker?: string;
  /** Known credential formats: on by default. */
  credentialFormats?: boolean;
  /** Rules to use instead of src/scan/rules.ts. */
  rules?: readonly Rule[];
  /** PII kinds to redact (default none). */
  pii?: readonly PiiKind[];
  /** Secrets shorter than this are refused (they would redact ordinary text). Default 8. */
  minSecretLength?: number;
}

/** The look-behind context kept from text already emitted (the rules look back one character). */
const CONTEXT = 16;

/**
 * The base64 of `secret` at byte alignment `a` inside a larger encoded
 * stream: only the characters whose 6 bits all come from the secret, so the
 * fragment does not depend on the bytes around it (RFC 4648 §4).
 */
export function base64Fragments(secret: Buffer): string[] {
  const out: string[] = [];
  for (let a = 0; a < 3; a++) {
    const enc = Buffer.concat([Buffer.alloc(a), secret]).toString('base64');
    const first = Math.ceil((8 * a) / 6);
    const last = Math.floor((8 * (a + secret.length)) / 6);
    out.push(enc.slice(first, last));
  }
  return out;
}

/** Every form a secret is redacted in: itself, base64 and base64url at 3 alignments, hex. */
export function secretForms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const b64 = base64Fragments(bytes);
  const forms = [
    secret,
    ...b64,
    ...b64.map((f) => f.replace(/\+/g, '-').replace(/\//g, '_')),
    bytes.toString('hex'),
    bytes.toString('hex').toUpperCase(),
  ];
  return [...new Set(forms)].filter((f) => f.length > 0);
}

/** A secret's forms, derived once (bounded: the secrets are in memory anyway). */
function cachedForms(secret: string): string[] {
  let f = FORMS_CACHE.get(secret);
  if (!f) {
    if (FORMS_CACHE.size >= 64) FORMS_CACHE.clear();
    f = secretForms(secret);
    FORMS_CACHE.set(secret, f);
  }
  return f;
}

/** A 128-entry table of the ASCII characters in a character-class body such as `A-Za-z0-9_-`. */
function asciiTable(cls: string): Uint8Array {
  // built once per class: every filter a call opens shares it (read-only)
  let t = TABLES.get(cls);
  if (t) return t;
  t = new Uint8Array(128);
  const re = new RegExp(`[${cls}]`);
  for (let c = 0; c < 128; c++) if (re.test(String.fromCharCode(c))) t[c] = 1;
  TABLES.set(cls, t);
  return t;
}
const TABLES = new Map<string, Uint8Array>();
/** Derived forms of the secrets filters were opened with (bounded; the secrets are in memory anyway). */
const FORMS_CACHE = new Map<string, string[]>();

/** Start of the longest suffix of `text` (not before `from`) made of characters in `table`. */
function suffixIn(table: Uint8Array, text: string, from: number): number {
  let i = text.length;
  while (i > from) {
    const c = text.charCodeAt(i - 1);
    if (c >= 128 || table[c] === 0) break;
    i--;
  }
  return i;
}

/**
 * A lower bound of the length (UTF-16 units) of any match of a regular
 * expression, from its source: 0 whenever the source holds anything not
 * understood here (so a text shorter than the bound cannot match, and the
 * search can be skipped). Backreferences and look-arounds count 0, classes
 * and escapes 1, a quantified atom its minimum repeat.
 */
function minMatchLength(re: RegExp): number {
  // `v` classes may match strings (even empty ones): not analysed
  if (re.flags.includes('v')) return 0;
  const src = re.source;
  const unicode = re.flags.includes('u');
  let i = 0;
  const fail = () => {
    throw new RangeError('unsupported');
  };
  const hex = (n: number) => {
    for (let k = 0; k < n; k++) if (!/[0-9A-Fa-f]/.test(src[i++] ?? '')) fail();
  };
  /** An alternation, up to `)` or the end. */
  const alternation = (): number => {
    let best = sequence();
    while (src[i] === '|') {
      i++;
      best = Math.min(best, sequence());
    }
    return best;
  };
  const sequence = (): number => {
    let total = 0;
    while (i < src.length && src[i] !== '|' && src[i] !== ')') {
      const atomLen = atom();
      total += atomLen * quantifier();
    }
    return total;
  };
  /** The least repeat count of a quantifier after an atom (1 without one). */
  const quantifier = (): number => {
    const c = src[i];
    let n = 1;
    if (c === '*' || c === '?') {
      i++;
      n = 0;
    } else if (c === '+') i++;
    else if (c === '{') {
      const m = /^\{(\d+)(,\d*)?\}/.exec(src.slice(i));
      if (!m) {
        if (unicode) fail();
        return 1; // a literal brace (the atom after it is parsed next)
      }
      i += m[0].length;
      n = Number(m[1]);
    } else return 1;
    if (src[i] === '?') i++;
    if (src[i] === '*' || src[i] === '+' || src[i] === '?' || src[i] === '{') fail();
    return n;
  };
  const atom = (): number => {
    const c = src[i]!;
    if (c === '^' || c === '$') {
      i++;
      return 0;
    }
    if (c === '(') {
      i++;
      let zero = false;
      if (src[i] === '?') {
        const m = /^\?(:|=|!|<=|<!|<[A-Za-z_$][\w$]*>)/.exec(src.slice(i));
        if (!m) fail();
        i += m![0].length;
        const kind = m![1]!;
        zero = kind === '=' || kind === '!' || kind === '<=' || kind === '<!';
      }
      const n = alternation();
      if (src[i] !== ')') fail();
      i++;
      return zero ? 0 : n;
    }
    if (c === '[') {
      i++;
      if (src[i] === '^') i++;
      // a class matches one character (`[]` matches none: 1 is still a bound of what matches)
      while (i < src.length && src[i] !== ']') i += src[i] === '\\' ? 2 : 1;
      if (src[i] !== ']') fail();
      i++;
      return 1;
    }
    if (c === '\\') {
      const e = src[i + 1];
      i += 2;
      if (e === undefined) fail();
      if (e === 'b' || e === 'B') return 0;
      if (e === 'k') {
        // a named backreference (may be empty), or a literal k outside unicode mode
        if (src[i] === '<') {
          const end = src.indexOf('>', i);
          if (end < 0) fail();
          i = end + 1;
          return 0;
        }
        return 1;
      }
      if (/[1-9]/.test(e!)) {
        // a backreference (may be empty) or a legacy octal escape: count nothing
        while (/[0-9]/.test(src[i] ?? '')) i++;
        return 0;
      }
      if (e === '0') {
        while (/[0-7]/.test(src[i] ?? '') && !unicode) i++;
        return 1;
      }
      if (e === 'x') {
        hex(2);
        return 1;
      }
      if (e === 'u') {
        if (unicode && src[i] === '{') {
          const end = src.indexOf('}', i);
          if (end < 0) fail();
          i = end + 1;
          // an astral code point is 2 units, a BMP one 1: count the lower
          return 1;
        }
        hex(4);
        return 1;
      }
      if (e === 'c') {
        i++;
        return 1;
      }
      if ((e === 'p' || e === 'P') && unicode) {
        if (src[i] !== '{') fail();
        const end = src.indexOf('}', i);
        if (end < 0) fail();
        i = end + 1;
        return 1;
      }
      return 1;
    }
    if (c === '*' || c === '+' || c === '?' || c === '|' || c === ')') fail();
    if (c === '{' && unicode) fail();
    i++;
    // one half of a surrogate pair counts nothing (the pair may fold to a shorter character)
    const code = c.charCodeAt(0);
    return code >= 0xd800 && code <= 0xdfff ? 0 : 1;
  };
  try {
    const n = alternation();
    if (i !== src.length) return 0;
    return n;
  } catch {
    return 0;
  }
}

/** The compiled, read-only part of a set of literals (shared by every filter opened with the same secrets). */
interface LiteralSet {
  /** Longest first. */
  readonly lits: readonly string[];
  readonly span: number;
  /** The characters of the literals, when all are ASCII. */
  readonly table: Uint8Array | undefined;
}

function literalSet(lits: readonly string[]): LiteralSet {
  const sorted = [...lits].sort((a, b) => b.length - a.length);
  const span = sorted.reduce((n, l) => Math.max(n, l.length), 0);
  const chars = new Set(sorted.join(''));
  const table = [...chars].every((c) => c.charCodeAt(0) < 128) ? new Uint8Array(128) : undefined;
  if (table) for (const c of chars) table[c.charCodeAt(0)] = 1;
  return { lits: sorted, span, table };
}

/** A set of literals: the leftmost occurrence of any, the longest at a tie. */
class Literals implements Source {
  readonly span: number;
  readonly min: number;
  readonly table: Uint8Array | undefined;
  readonly #lits: readonly string[];
  constructor(set: LiteralSet) {
    this.#lits = set.lits;
    this.span = set.span;
    this.min = set.lits.at(-1)?.length ?? 0;
    this.table = set.table;
  }
  undecided(text: string, from: number): number {
    // a literal starting before a character it does not contain ends before it
    return this.table ? suffixIn(this.table, text, from) : from;
  }
  // Where each literal next occurs in the text last searched (-1: nowhere at or after the position
  // searched from), so a literal that is absent is scanned for once per text, not once per hit. Valid
  // while the searches move forward: a search of the same text from further back (a filter reused
  // for an equal text, as the gateway does per string) starts afresh. Per filter, not shared.
  #text: string | undefined;
  #last = 0;
  #at: number[] = [];
  next(text: string, from: number): Hit | undefined {
    const lits = this.#lits;
    if (text !== this.#text || from < this.#last) {
      this.#text = text;
      this.#at.length = lits.length;
      this.#at.fill(-2);
    }
    this.#last = from;
    let best: Hit | undefined;
    for (let k = 0; k < lits.length; k++) {
      const l = lits[k]!;
      let i = this.#at[k]!;
      if (i === -2 || (i >= 0 && i < from)) {
        i = text.indexOf(l, from);
        this.#at[k] = i;
      }
      // sorted longest first: a later literal wins only by starting earlier
      if (i >= 0 && (best === undefined || i < best.start)) {
        best = { start: i, end: i + l.length, valueStart: i, valueEnd: i + l.length, id: 'secret' };
      }
    }
    return best;
  }
}

interface Source {
  /** The most characters a match (with its look-ahead) can read from its start. */
  span: number;
  /** The fewest characters a match takes from its start: a shorter rest of the text is not searched. */
  min: number;
  next(text: string, from: number): Hit | undefined;
  /** The earliest position at or after `from` where a match may start that more text could change. */
  undecided(text: string, from: number): number;
  /**
   * Set when `undecided(text, from)` is `suffixIn(table, text, from)`: the sources sharing a table
   * are asked once, with the longest of their spans (the same answer as the least of theirs).
   */
  table?: Uint8Array | undefined;
  /**
   * A source that keeps state per filter (SecretRuns) is told, before each search, the window and
   * the position of its first character in the whole text, and whether the text is complete.
   */
  advance?(window: string, base: number, final: boolean): void;
  /** The earliest position of the whole text the next `advance` must see again (with `advance`). */
  retain?(): number;
  /** Forgets the text: the filter takes a new one (`end`). */
  reset?(): void;
}

/**
 * A detector as a source. Shared by every filter of a stage: it keeps no state between calls (each
 * search sets its RegExp's lastIndex first, and a filter runs synchronously to the end of a push).
 */
function detectorSource(d: Detector): Source {
  const min = minMatchLength(d.re);
  if (d.alphabet !== undefined) {
    const table = asciiTable(d.alphabet);
    return {
      span: d.span,
      min,
      table,
      next: (text, from) => nextHit(d, text, from),
      undecided: (text, from) => suffixIn(table, text, from),
    };
  }
  let undecided = (_text: string, from: number) => from;
  if (d.keywords) {
    // a match starts on a keyword: the first keyword (or keyword prefix at the very end) in the tail
    const kw = d.keywords.map((k) => k.toLowerCase());
    const longest = kw.reduce((n, k) => Math.max(n, k.length), 0);
    const re = new RegExp(kw.join('|'), 'gi');
    undecided = (text, from) => {
      re.lastIndex = from;
      const m = re.exec(text);
      if (m) return m.index;
      const tail = text.slice(Math.max(from, text.length - 16)).toLowerCase();
      // a rest longer than every keyword is the start of none
      for (let i = Math.max(0, tail.length - longest); i < tail.length; i++) {
        const rest = tail.slice(i);
        if (kw.some((k) => k.startsWith(rest))) return text.length - rest.length;
      }
      return text.length;
    };
  }
  return { span: d.span, min, next: (text, from) => nextHit(d, text, from), undecided };
}

/** How a filter finds where the undecided tail starts: one scan per table, then the other sources. */
interface CutPlan {
  tables: { table: Uint8Array; span: number }[];
  others: Source[];
}

function cutPlan(sources: readonly Source[]): CutPlan {
  const tables = new Map<Uint8Array, number>();
  const others: Source[] = [];
  for (const s of sources) {
    if (s.table) tables.set(s.table, Math.max(tables.get(s.table) ?? 0, s.span));
    else others.push(s);
  }
  return { tables: [...tables].map(([table, span]) => ({ table, span })), others };
}

// ---------------------------------------------------------------- partial and masked key forms

/**
 * Public prefixes of provider keys: what follows is the key's secret part. Longest first, so
 * `sk-proj-` wins over `sk-`. A key starting with none of them gets the generic rule of
 * `secretPart`.
 */
const KEY_PREFIXES = [
  'sk-proj-',
  'sk-svcacct-',
  'sk-admin-',
  'sk-None-',
  'sk-ant-api03-',
  'sk-ant-admin01-',
  'sk-ant-oat01-',
  'sk-ant-',
  'sk-or-v1-',
  'sk_live_',
  'sk_test_',
  'rk_live_',
  'rk_test_',
  'sk-',
  'gsk_',
  'xai-',
  'hf_',
  'AIza',
  'github_pat_',
  'ghp_',
  'gho_',
  'ghu_',
  'ghs_',
  'ghr_',
  'glpat-',
  'xoxb-',
  'xoxp-',
  'pplx-',
  'nvapi-',
  'csk-',
  'r8_',
  'fw_',
  'AKIA',
  'ASIA',
].sort((a, b) => b.length - a.length);

/** One leading lowercase word or version tag of a key, ending in `-` or `_` (`sk-`, `v1-`, `api03-`). */
const PREFIX_WORD = /^[a-z][a-z0-9]{0,11}[-_]/;

/**
 * The secret part of a key: what follows its public prefix. A known prefix (KEY_PREFIXES) is
 * taken when at least 8 characters follow it; otherwise up to three leading lowercase words or
 * version tags ending in `-` or `_` are, while at least 16 characters follow; otherwise the whole
 * key is secret. A prefix taken too short only makes more text count as secret (fail closed).
 */
export function secretPart(key: string): string {
  for (const p of KEY_PREFIXES)
    if (key.startsWith(p) && key.length - p.length >= 8) return key.slice(p.length);
  let at = 0;
  for (let n = 0; n < 3; n++) {
    const m = PREFIX_WORD.exec(key.slice(at));
    if (!m || key.length - at - m[0].length < 16) break;
    at += m[0].length;
  }
  return key.slice(at);
}

/** A run of the secret part this long is redacted wherever it is (rule a). */
const ANY_RUN = 6;
/** The shortest run that counts (a candidate): shorter ones are everywhere in ordinary text. */
const WORD_RUN = 4;
/** This many `x` (or `X`) in a row are a mask (`abcdxxxxxxxxwxyz`). */
const MASK_RUN = 3;
/** Rule c: two distinct candidates with no whitespace between them, at most this many characters apart. */
const PAIR_GAP = 64;
/** Rule d: three distinct candidates starting within this many characters of each other. */
const CLUSTER_WINDOW = 256;
const CLUSTER_COUNT = 3;
/** Rule e: after this many distinct candidates of a key in a call, every further distinct one is redacted. */
const STICKY_AFTER = 2;

const isAlnum = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
/** Whether `text` has a mask run of x or X ending just before `i`. */
function maskBefore(text: string, i: number): boolean {
  if (i < MASK_RUN) return false;
  const c = text.charCodeAt(i - 1);
  if (c !== 120 && c !== 88) return false;
  for (let k = 2; k <= MASK_RUN; k++) if (text.charCodeAt(i - k) !== c) return false;
  return true;
}
/** Whether `text` has a mask run of x or X starting at `e`. */
function maskAfter(text: string, e: number): boolean {
  if (e + MASK_RUN > text.length) return false;
  const c = text.charCodeAt(e);
  if (c !== 120 && c !== 88) return false;
  for (let k = 1; k < MASK_RUN; k++) if (text.charCodeAt(e + k) !== c) return false;
  return true;
}
/** White space as `\s` has it: what separates tokens (rule c). */
const isSpace = (c: number) =>
  c <= 32 ||
  c === 0x85 ||
  c === 0xa0 ||
  c === 0x1680 ||
  (c >= 0x2000 && c <= 0x200a) ||
  c === 0x2028 ||
  c === 0x2029 ||
  c === 0x202f ||
  c === 0x205f ||
  c === 0x3000 ||
  c === 0xfeff;

/** The compiled, read-only index of the secret parts' 4-character runs (shared by every filter of a secret set). */
interface RunIndex {
  readonly parts: readonly string[];
  /** Open addressing: each slot holds a packed 4-gram (7 bits a character) or 0. */
  readonly grams: Int32Array;
  /** Per slot, the first occurrence of its gram; per occurrence, the next one (-1: none). */
  readonly first: Int32Array;
  readonly nextOcc: Int32Array;
  readonly occPart: Int32Array;
  readonly occPos: Int32Array;
  readonly shift: number;
  readonly slotMask: number;
  /** The characters of the parts (white space aside), and x and X (masks): the only ones a run or mask holds. */
  readonly table: Uint8Array;
  /** The most characters after a position that decide the run starting there: the longest part, a mask and one. */
  readonly span: number;
  /** The longest part: no run is longer. */
  readonly longest: number;
  /** How far back a candidate can still be evidence for a new one (rules c and d). */
  readonly reach: number;
}

const pack4 = (s: string, j: number) =>
  (s.charCodeAt(j) << 21) | (s.charCodeAt(j + 1) << 14) | (s.charCodeAt(j + 2) << 7) | s.charCodeAt(j + 3);

function runIndex(parts: readonly string[]): RunIndex {
  let count = 0;
  for (const p of parts) count += Math.max(0, p.length - WORD_RUN + 1);
  let bits = 6;
  while (1 << bits < count * 4) bits++;
  const size = 1 << bits;
  const grams = new Int32Array(size);
  const first = new Int32Array(size).fill(-1);
  const nextOcc = new Int32Array(count).fill(-1);
  const occPart = new Int32Array(count);
  const occPos = new Int32Array(count);
  const table = new Uint8Array(128);
  table[120] = 1;
  table[88] = 1;
  const shift = 32 - bits;
  let o = 0;
  for (let pi = 0; pi < parts.length; pi++) {
    const p = parts[pi]!;
    // a run never holds white space (keys have none): tokens (rule c) are cut at white space
    for (let j = 0; j < p.length; j++) if (!isSpace(p.charCodeAt(j))) table[p.charCodeAt(j)] = 1;
    for (let j = 0; j + WORD_RUN <= p.length; j++, o++) {
      const g = pack4(p, j);
      let s = Math.imul(g, 0x9e3779b1) >>> shift;
      while (grams[s] !== 0 && grams[s] !== g) s = (s + 1) & (size - 1);
      occPart[o] = pi;
      occPos[o] = j;
      // occurrences kept in order: appended at the end of the slot's chain
      if (grams[s] === 0) {
        grams[s] = g;
        first[s] = o;
      } else {
        let last = first[s]!;
        while (nextOcc[last]! >= 0) last = nextOcc[last]!;
        nextOcc[last] = o;
      }
    }
  }
  const longest = parts.reduce((n, p) => Math.max(n, p.length), 0);
  const span = longest + MASK_RUN + 1;
  const reach = Math.max(CLUSTER_WINDOW, PAIR_GAP + longest + 1);
  return {
    parts,
    grams,
    first,
    nextOcc,
    occPart,
    occPos,
    shift,
    slotMask: size - 1,
    table,
    span,
    longest,
    reach,
  };
}

/** A candidate: a run of 4 or more characters of a secret part that the run starting one character earlier does not hold. */
interface Candidate {
  /** Start and end in the whole text (positions since the filter was opened or last ended). */
  readonly s: number;
  readonly e: number;
  /** Which secret part (the one with the longest run here; the first at a tie). */
  readonly part: number;
  readonly text: string;
  /** Once every candidate starting before this is known, none can make this one redacted any more. */
  readonly horizon: number;
  red: boolean;
  /** A run inside a candidate that stands alone: redacted, and no evidence for rules c to e. */
  readonly inner?: true;
}

/**
 * Partial and masked forms of secrets (issue 12, item 3). A *candidate* is a run of at least
 * WORD_RUN characters of a secret part (`secretPart`), inside words too, that the run starting one
 * character earlier does not contain (the longest run at each position, over all parts). A
 * candidate is redacted, whole, when
 *
 * - (a) it is at least ANY_RUN long;
 * - (b) it stands alone: bounded on each side by a character that is not an ASCII letter or digit,
 *   the text's edge, or a mask of MASK_RUN x or X (`sk-proj-abcd****wxyz`, `abcd...wxyz`, `…wxyz`,
 *   "ends in wxyz", `abcdxxxxxxxxwxyz`; on the right, a shorter run that stands alone suffices);
 * - (c) another candidate of the same part with a different text lies in the same token (no white
 *   space between them) at most PAIR_GAP characters away: a mask of anything (`abcd00000000wxyz`,
 *   `abcdxxwxyz`, `abcdyyyywxyz`) — both are redacted;
 * - (d) it is one of CLUSTER_COUNT candidates of the same part with pairwise different texts that
 *   start within CLUSTER_WINDOW characters: a key spelled out in pieces (`qabcdq qefghq …`);
 * - (e) STICKY_AFTER candidates of the same part with other texts came before it in the call —
 *   this text, or an earlier one through a filter opened with the same `secrets` array
 *   (CALL_MEMORY): a spelling spread out thinly, or over strings and streams, loses all but its
 *   first STICKY_AFTER pieces.
 *
 * Overlapping redacted candidates make one match. So one coincidental 4- or 5-character run inside
 * a word ("tion" in a key, a camelCase piece of an identifier) stays, however often it repeats,
 * and so do two different ones in different words.
 *
 * Per filter: the candidates of the text so far that are still evidence or not yet emitted, and
 * per part its most recent texts (rule d); the call's memory holds what each part showed (rule e).
 * `advance` reads the redactor's window (which keeps the text not yet scanned: `retain`); a
 * candidate is *pending* while it is not redacted and more text could still make it so (until
 * every candidate starting before its `horizon` is known), and the text from it on is held back.
 * Ordinary text with no candidate is held back exactly as before (the trailing run of table
 * characters, at most `span` of the index).
 */
class SecretRuns implements Source {
  readonly span = Number.POSITIVE_INFINITY;
  readonly min = 1;
  readonly #ix: RunIndex;
  /** The window last advanced over, and the position of its first character in the whole text. */
  #window = '';
  #base = 0;
  /** Every position before #scanned has its run (and candidate) decided. */
  #scanned = 0;
  /** The longest run found at #scanned - 1 (0: none). */
  #prevLen = 0;
  /** The last white space scanned: two candidates share a token when none lies between them (rule c). */
  #lastSpace = -1;
  /** Candidates in order of start: evidence for new ones, or not yet emitted. */
  #cands: Candidate[] = [];
  /**
   * Per part (made at the first candidate): its CLUSTER_COUNT most recent different texts, newest
   * first, with where each last started (rule d); the start of the candidate at which rule d last
   * fired.
   */
  #parts: { texts: string[]; starts: number[]; marked: number }[] | undefined;
  /** Per part, up to STICKY_AFTER + 1 different texts of its candidates (rule e): shared by the call's filters, kept by `end`. */
  #seen: string[][] | undefined;
  readonly #memory: () => string[][];
  /** Where held-back text starts (absolute): the earliest pending candidate, or the unscanned rest. */
  #cut = 0;

  constructor(ix: RunIndex, memory: () => string[][]) {
    this.#ix = ix;
    this.#memory = memory;
  }

  reset(): void {
    // most filters end with nothing read since the last reset (the gateway reuses one per string)
    if (this.#scanned === 0 && this.#base === 0) return;
    this.#window = '';
    this.#scanned = 0;
    this.#prevLen = 0;
    this.#lastSpace = -1;
    if (this.#cands.length > 0) this.#cands = [];
    this.#parts = undefined;
    this.#cut = 0;
    this.#base = 0;
    this.#first = 0;
  }

  /** Scans what `window` (which starts at position `base` of the whole text) decides, and finds where to hold back. */
  advance(window: string, base: number, final: boolean): void {
    const ix = this.#ix;
    this.#base = base;
    this.#window = window;
    const known = base + window.length;
    // runs starting before `limit` are decided: they end at a character no run holds, or they
    // would be longer than the longest part
    const limit = final
      ? known
      : base + suffixIn(ix.table, window, Math.max(this.#scanned, known - ix.span) - base);
    if (limit > this.#scanned) this.#scan(limit);
    // every candidate starting before `#scanned` is known: the ones whose horizon is passed are decided
    let cut = limit;
    const cands = this.#cands;
    if (cands.length > 0) {
      for (let k = cands.length - 1; k >= 0; k--) {
        const c = cands[k]!;
        if (c.s + ix.reach < cut) break;
        if (!final && !c.red && c.horizon > this.#scanned && c.s < cut) cut = c.s;
      }
      // a redacted candidate reaching the cut may still join a later one into one match
      for (let k = cands.length - 1; k >= 0; k--) {
        const c = cands[k]!;
        if (c.s + ix.reach < cut) break;
        if (c.red && c.s < cut && c.e > cut) cut = c.s;
      }
      // forget what is neither evidence nor still to be emitted
      let drop = 0;
      while (drop < cands.length && cands[drop]!.s + ix.reach < this.#scanned && cands[drop]!.e <= base)
        drop++;
      if (drop > 0) {
        cands.splice(0, drop);
        this.#first = Math.max(0, this.#first - drop);
      }
    }
    this.#cut = cut;
  }

  /** The earliest position of the text the next `advance` must see again (the unscanned rest and a mask's look-behind). */
  retain(): number {
    return Math.max(0, this.#scanned - MASK_RUN - 1);
  }

  /** Finds the runs starting in [#scanned, limit), and judges each candidate. */
  #scan(limit: number): void {
    const { table, grams, first, shift, slotMask } = this.#ix;
    const text = this.#window;
    const t0 = this.#base;
    const n = text.length;
    let code = 0;
    let run = 0;
    let prevLen = this.#prevLen;
    let prevAt = this.#scanned - 1;
    // the last white space seen since the last candidate (an index of `text`; -1: none)
    let lastSpace = -1;
    // a gram starting at i is complete at i + 3; none starting at or after `limit` is looked at
    const stop = Math.min(n, limit - t0 + WORD_RUN - 1);
    for (let k = this.#scanned - t0; k < stop; k++) {
      const c = text.charCodeAt(k);
      if (c >= 128 || table[c] === 0) {
        run = 0;
        if (c <= 32 ? true : c >= 128 && isSpace(c)) lastSpace = k;
        continue;
      }
      code = ((code << 7) | c) & 0xfffffff;
      if (++run < WORD_RUN) continue;
      let s = Math.imul(code, 0x9e3779b1) >>> shift;
      let g = grams[s]!;
      while (g !== 0 && g !== code) {
        s = (s + 1) & slotMask;
        g = grams[s]!;
      }
      if (g === 0) continue;
      const i = k - WORD_RUN + 1;
      this.#lastSpace = lastSpace < 0 ? this.#lastSpace : t0 + lastSpace;
      lastSpace = -1;
      const [len, part] = this.#longest(text, i, first[s]!);
      // not a candidate when the run starting one character earlier holds it; but a run that
      // stands alone inside a longer one (after its `-` or `_`) is still redacted (rule b)
      if (!(prevAt === t0 + i - 1 && prevLen > len)) this.#judge(text, i, len, part);
      else if (this.#alone(text, i, len))
        this.#cands.push({ s: t0 + i, e: t0 + i + len, part, text: '', horizon: 0, red: true, inner: true });
      prevAt = t0 + i;
      prevLen = len;
    }
    if (lastSpace >= 0) this.#lastSpace = t0 + lastSpace;
    this.#prevLen = prevAt === limit - 1 ? prevLen : 0;
    this.#scanned = limit;
  }

  /** The longest run at `i` of `text` whose first 4 characters are the gram of occurrence `occ`, and its part. */
  #longest(text: string, i: number, occ: number): [number, number] {
    const { parts, nextOcc, occPart, occPos } = this.#ix;
    const n = text.length;
    let best = 0;
    let part = 0;
    for (let o = occ; o >= 0; o = nextOcc[o]!) {
      const p = parts[occPart[o]!]!;
      let j = occPos[o]! + WORD_RUN;
      let m = WORD_RUN;
      while (i + m < n && j < p.length && text.charCodeAt(i + m) === p.charCodeAt(j)) {
        m++;
        j++;
      }
      if (m > best || (m === best && occPart[o]! < part)) {
        best = m;
        part = occPart[o]!;
      }
    }
    return [best, part];
  }

  /** Records the candidate at `i` of the window and applies the rules to it and the candidates before it. */
  #judge(text: string, i: number, len: number, part: number): void {
    const s = this.#base + i;
    const e = s + len;
    const str = text.slice(i, i + len);
    let red = len >= ANY_RUN || this.#alone(text, i, len);
    this.#parts ??= this.#ix.parts.map(() => ({ texts: [], starts: [], marked: -1 }));
    const ps = this.#parts[part]!;
    // rule e: what this part showed before, in this text or another of the same call
    this.#seen ??= this.#memory();
    const seen = this.#seen[part]!;
    let others = 0;
    for (const t of seen) if (t !== str) others++;
    if (others >= STICKY_AFTER) red = true;
    if (seen.length < STICKY_AFTER + 1 && !seen.includes(str)) seen.push(str);
    // rule c: the candidates that end after the last white space, at most PAIR_GAP before this one
    // (or overlap it)
    const cands = this.#cands;
    const from = Math.max(this.#lastSpace + 1, s - PAIR_GAP);
    for (let k = cands.length - 1; k >= 0; k--) {
      const a = cands[k]!;
      if (a.s + this.#ix.longest < from) break;
      if (a.e < from || a.part !== part || a.inner || a.text === str) continue;
      a.red = true;
      red = true;
    }
    // rule d: the part's most recent different texts, and where each last started (newest first)
    const { texts, starts } = ps;
    let at = texts.indexOf(str);
    if (at < 0) at = texts.length < CLUSTER_COUNT ? texts.length : CLUSTER_COUNT - 1;
    for (let k = at; k > 0; k--) {
      texts[k] = texts[k - 1]!;
      starts[k] = starts[k - 1]!;
    }
    texts[0] = str;
    starts[0] = s;
    let inWindow = 0;
    for (const r of starts) if (r > s - CLUSTER_WINDOW) inWindow++;
    if (inWindow >= CLUSTER_COUNT) {
      // every candidate of the part starting in the window belongs to such a set (those up to
      // `marked` were marked when it last fired)
      red = true;
      const stop = Math.max(s - CLUSTER_WINDOW, ps.marked);
      for (let k = cands.length - 1; k >= 0 && cands[k]!.s > stop; k--)
        if (cands[k]!.part === part) cands[k]!.red = true;
      ps.marked = s;
    }
    const horizon = Math.max(s + CLUSTER_WINDOW, e + PAIR_GAP + 1);
    cands.push({ s, e, part, text: str, horizon, red });
  }

  /** Rule b: the run at `i` (or a shorter start of it of at least WORD_RUN) stands alone. */
  #alone(text: string, i: number, len: number): boolean {
    const abs = this.#base + i;
    if (abs > 0 && isAlnum(text.charCodeAt(i - 1)) && !maskBefore(text, i)) return false;
    for (let m = len; m >= WORD_RUN; m--) {
      const e = i + m;
      // past the window is past the whole text: a scan reaches that far only at the end
      if (e >= text.length || !isAlnum(text.charCodeAt(e)) || maskAfter(text, e)) return true;
    }
    return false;
  }

  undecided(_window: string, from: number): number {
    // `from` is where the window's unemitted text starts: nothing held back is before it
    return Math.max(from, this.#cut - this.#base);
  }

  /** Candidates before this index end before every position `next` can still be asked for (it only moves forward). */
  #first = 0;

  next(_window: string, from: number): Hit | undefined {
    const base = this.#base;
    const at = base + from;
    const cands = this.#cands;
    while (this.#first < cands.length && cands[this.#first]!.e <= at) this.#first++;
    for (let k = this.#first; k < cands.length; k++) {
      const c = cands[k]!;
      if (!c.red || c.e <= at) continue;
      // overlapping redacted candidates make one match
      let end = c.e;
      for (let j = k + 1; j < cands.length && cands[j]!.s < end; j++)
        if (cands[j]!.red && cands[j]!.e > end) end = cands[j]!.e;
      const start = Math.max(c.s, at) - base;
      return { start, end: end - base, valueStart: start, valueEnd: end - base, id: 'secret' };
    }
    return undefined;
  }
}

/**
 * Rule e's memory (the different texts each secret part showed), per `secrets` array: the filters
 * opened with the same array share it, and keep it across `end`. The gateway opens every filter of
 * a call (one per text stream, and one for complete strings and events) with the call's own array
 * of injected keys, so a spelling spread over strings, choices, tool calls or fields of one call
 * still keeps at most STICKY_AFTER pieces; another call starts afresh.
 */
const CALL_MEMORY = new WeakMap<readonly string[], { key: string; seen: string[][] }>();

/** The compiled sources of a set of secrets (bounded; the secrets are in memory anyway). */
const SECRET_SETS = new Map<
  string,
  { lits: LiteralSet; runs: RunIndex | undefined; tables: CutPlan['tables'] }
>();

/**
 * The gateway's always-on redaction of the injected keys (docs/gateway.md, "What reaches the
 * client"): a streaming filter, chunk-independent like every output filter, replacing with
 * `marker`
 *
 * - each secret as written, as base64/base64url at its 3 alignments and as hex (`secretForms`);
 * - partial and masked forms (`SecretRuns`): any run of 6+ characters of a secret's secret part
 *   (`secretPart`), and runs of 4–5 that stand alone or next to a mask, that share a token with
 *   another run, that come 3 to a window, or after 2 others in the call (rules a–e there).
 *
 * Filters opened with the same `secrets` array share what the key's runs showed (rule e): the
 * gateway opens every filter of a call with the call's own array.
 *
 * Secrets shorter than 8 characters are redacted as written only (their derived forms and runs
 * would redact ordinary text); secret parts that are not ASCII have no run rule (keys travel in
 * HTTP headers: they are ASCII).
 */
export function secretRedactor(secrets: readonly string[], marker = '[REDACTED]'): ResponseFilter {
  for (const s of secrets)
    if (typeof s !== 'string') throw new TypeError('secretRedactor: a secret must be a string');
  const key = secrets.length === 1 ? `1:${secrets[0]}` : JSON.stringify(secrets);
  let c = SECRET_SETS.get(key);
  if (!c) {
    const forms: string[] = [];
    const parts: string[] = [];
    for (const s of secrets) {
      if (s.length === 0) continue;
      if (s.length < 8) {
        forms.push(s);
        continue;
      }
      forms.push(...cachedForms(s));
      const part = secretPart(s);
      // the 4-gram index packs 7-bit characters (none of them 0)
      let ascii = true;
      for (let i = 0; i < part.length; i++) {
        const ch = part.charCodeAt(i);
        if (ch === 0 || ch >= 128) ascii = false;
      }
      if (ascii && !parts.includes(part)) parts.push(part);
    }
    const lits = literalSet(forms);
    const runs = parts.length ? runIndex(parts) : undefined;
    c = { lits, runs, tables: cutPlan([new Literals(lits)]).tables };
    if (SECRET_SETS.size >= 64) SECRET_SETS.clear();
    SECRET_SETS.set(key, c);
  }
  // the runs source keeps state per filter (the candidates so far): its own, in the filter's plan
  const lits = new Literals(c.lits);
  if (!c.runs) return new Redactor([lits], { tables: c.tables, others: [] }, marker);
  const ix = c.runs;
  const runs = new SecretRuns(ix, () => {
    // made at the first candidate of the first filter of the call (most answers have none)
    let m = CALL_MEMORY.get(secrets);
    if (!m || m.key !== key) {
      m = { key, seen: ix.parts.map(() => []) };
      CALL_MEMORY.set(secrets, m);
    }
    return m.seen;
  });
  return new Redactor([lits, runs], { tables: c.tables, others: [runs] }, marker);
}

/** Streams text through `sources`, replacing the value of every selected hit with `marker`. */
class Redactor implements ResponseFilter {
  readonly #sources: readonly Source[];
  readonly #plan: CutPlan;
  readonly #marker: string;
  /** Each source's next hit in the current run (null: not searched yet). */
  readonly #next: (Hit | undefined | null)[];
  /** The fewest characters any source's match takes. */
  readonly #shortest: number;
  readonly #stateful: readonly Source[];
  #before = '';
  #pending = '';
  /** The position of the window's first character (the start of `#before`) in the whole text. */
  #base = 0;

  constructor(sources: readonly Source[], plan: CutPlan, marker: string) {
    this.#sources = sources;
    const stateful: Source[] = [];
    for (const s of sources) if (s.advance !== undefined) stateful.push(s);
    this.#stateful = stateful;
    this.#plan = plan;
    this.#marker = marker;
    this.#next = sources.map(() => null);
    this.#shortest = sources.reduce((n, s) => Math.min(n, s.min), Number.POSITIVE_INFINITY);
  }

  push(text: string): string {
    if (typeof text !== 'string') throw new TypeError('push() takes a string');
    this.#pending += text;
    return this.#run(false);
  }

  /** Flushes what was held back and resets: the filter can take a new text (the gateway reuses it per call). */
  end(): string {
    const out = this.#run(true);
    this.#before = '';
    this.#pending = '';
    this.#base = 0;
    for (const s of this.#stateful) s.reset?.();
    return out;
  }

  #run(final: boolean): string {
    const window = this.#before + this.#pending;
    const offset = this.#before.length;
    for (const s of this.#stateful) s.advance!(window, this.#base, final);
    // A match starting before `cut` is decided: all it can read is in the window. Each source says
    // where its undecided tail starts (at most its span back, often just the last word).
    let cut = window.length;
    if (!final) {
      for (const t of this.#plan.tables) {
        cut = Math.min(cut, suffixIn(t.table, window, Math.max(offset, window.length - t.span)));
        if (cut <= offset) return '';
      }
      for (const s of this.#plan.others) {
        cut = Math.min(cut, s.undecided(window, Math.max(offset, window.length - s.span)));
        if (cut <= offset) return '';
      }
    }
    if (cut <= offset) return '';
    const next = this.#next;
    next.fill(null);
    let out = '';
    let q = offset;
    // a rest shorter than every source's shortest match holds none (most strings of an answer)
    for (; window.length - q >= this.#shortest; ) {
      let best: Hit | undefined;
      for (let i = 0; i < this.#sources.length; i++) {
        let h = next[i];
        if (h === null || (h !== undefined && h.start < q)) {
          const src = this.#sources[i]!;
          h = window.length - q < src.min ? undefined : src.next(window, q);
          next[i] = h;
        }
        if (
          h &&
          h.start < cut &&
          (!best || h.start < best.start || (h.start === best.start && h.end > best.end))
        ) {
          best = h;
        }
      }
      if (!best) break;
      out += window.slice(q, best.valueStart) + this.#marker;
      q = best.valueEnd;
      // text of the match after the value (none for the rules today) stays, and scanning resumes after the match
      if (best.end > q) {
        out += window.slice(q, best.end);
        q = best.end;
      }
    }
    const emitTo = Math.max(q, cut);
    out += window.slice(q, emitTo);
    let keep = Math.max(0, emitTo - CONTEXT);
    // a stateful source may need to read again text already emitted (its unscanned rest)
    for (const s of this.#stateful) keep = Math.min(keep, Math.max(0, s.retain!() - this.#base));
    this.#before = window.slice(keep, emitTo);
    this.#pending = window.slice(emitTo);
    this.#base += keep;
    return out;
  }
}

export function createOutputFilter(config: OutputFilterConfig = {}): ResponseStage {
  const name = config.name ?? 'output-filter';
  const marker = config.marker ?? '[REDACTED]';
  const minSecret = config.minSecretLength ?? 8;
  for (const k of config.pii ?? []) {
    if (!(PII_KINDS as readonly string[]).includes(k))
      throw new TypeError(`unknown PII kind ${JSON.stringify(k)}`);
  }
  // detectors are compiled once, and their sources are shared by every filter of this stage
  const detectors: Detector[] = [
    ...(config.credentialFormats === false ? [] : credentialDetectors(config.rules)),
    ...(config.pii ?? []).map((k) => piiDetector(k)),
  ];
  const detectorSources = detectors.map(detectorSource);
  const plain = cutPlan(detectorSources);
  /** Per set of secrets: the compiled literals and the cut plan with them (bounded; the secrets are in memory anyway). */
  const compiled = new Map<string, { set: LiteralSet; plan: CutPlan }>();
  return {
    name,
    open(_call: CallInfo, secrets: readonly string[]): ResponseFilter {
      for (const s of secrets) {
        if (typeof s !== 'string' || s.length < minSecret) {
          throw new TypeError(`output filter: a secret must be a string of at least ${minSecret} characters`);
        }
      }
      if (secrets.length === 0) return new Redactor(detectorSources, plain, marker);
      // one secret (the gateway's case) is its own key; a list is keyed by its JSON (no two lists share one)
      const key = secrets.length === 1 ? `1:${secrets[0]}` : JSON.stringify(secrets);
      let c = compiled.get(key);
      if (!c) {
        const forms: string[] = [];
        for (const s of secrets) forms.push(...cachedForms(s));
        const set = literalSet(forms);
        // the literals come first, as they always have (a tie at the same start and end goes to the first source)
        const probe = new Literals(set);
        c = { set, plan: cutPlan([probe, ...detectorSources]) };
        if (compiled.size >= 64) compiled.clear();
        compiled.set(key, c);
      }
      return new Redactor([new Literals(c.set), ...detectorSources], c.plan, marker);
    },
  };
}
