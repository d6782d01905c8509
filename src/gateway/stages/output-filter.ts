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
export function minMatchLength(re: RegExp): number {
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

/** A run of the secret part this long is redacted wherever it is. */
const ANY_RUN = 6;
/** A run this long (up to ANY_RUN - 1) is redacted when it stands alone or next to a mask. */
const WORD_RUN = 4;
/** This many `x` (or `X`) in a row are a mask (`abcdxxxxxxxxwxyz`). */
const MASK_RUN = 3;

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
  /** The characters of the parts, and x and X (masks): the only ones a decision can wait on. */
  readonly table: Uint8Array;
  readonly span: number;
}

const pack4 = (s: string, j: number) =>
  (s.charCodeAt(j) << 21) | (s.charCodeAt(j + 1) << 14) | (s.charCodeAt(j + 2) << 7) | s.charCodeAt(j + 3);

function runIndex(parts: readonly string[]): RunIndex {
  let count = 0;
  for (const p of parts) count += p.length - WORD_RUN + 1;
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
    for (let j = 0; j < p.length; j++) table[p.charCodeAt(j)] = 1;
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
  const span = parts.reduce((n, p) => Math.max(n, p.length), 0) + MASK_RUN + 1;
  return { parts, grams, first, nextOcc, occPart, occPos, shift, slotMask: size - 1, table, span };
}

/**
 * Partial and masked forms of secrets (issue 12, item 3): runs of a secret part (`secretPart`) of
 * at least ANY_RUN characters anywhere, and of WORD_RUN to ANY_RUN - 1 characters that stand
 * alone — bounded on each side by a character that is not an ASCII letter or digit, the text's
 * edge, or a mask of x or X — as in `sk-proj-abcd****wxyz`, `abcd...wxyz`, `…wxyz`, "ends in
 * wxyz", `abcdxxxxxxxxwxyz`. At each position the longest run counts. Stateless: shared by every
 * filter of a secret set.
 *
 * A match starting at i reads the run (at most the longest part), one character after it and a
 * possible mask (MASK_RUN), so `span` bounds it; every character it can wait on is in `table`
 * (run characters, x, X), so the trailing run of table characters is all that is undecided.
 */
class SecretRuns implements Source {
  readonly span: number;
  readonly min = WORD_RUN;
  readonly table: Uint8Array;
  readonly #ix: RunIndex;
  constructor(ix: RunIndex) {
    this.#ix = ix;
    this.span = ix.span;
    this.table = ix.table;
  }
  undecided(text: string, from: number): number {
    return suffixIn(this.table, text, from);
  }
  next(text: string, from: number): Hit | undefined {
    const { table, grams, first, shift, slotMask } = this.#ix;
    const n = text.length;
    let code = 0;
    let run = 0;
    for (let k = from; k < n; k++) {
      const c = text.charCodeAt(k);
      if (c >= 128 || table[c] === 0) {
        run = 0;
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
      const hit = this.#at(text, k - WORD_RUN + 1, first[s]!);
      if (hit) return hit;
    }
    return undefined;
  }
  /** The match starting at `i`, whose first 4 characters are the gram of occurrence `occ`, if any. */
  #at(text: string, i: number, occ: number): Hit | undefined {
    const { parts, nextOcc, occPart, occPos } = this.#ix;
    const n = text.length;
    let best = 0;
    for (let o = occ; o >= 0; o = nextOcc[o]!) {
      const p = parts[occPart[o]!]!;
      let j = occPos[o]! + WORD_RUN;
      let m = WORD_RUN;
      while (i + m < n && j < p.length && text.charCodeAt(i + m) === p.charCodeAt(j)) {
        m++;
        j++;
      }
      if (m > best) best = m;
    }
    if (best >= ANY_RUN) return { start: i, end: i + best, valueStart: i, valueEnd: i + best, id: 'secret' };
    if (i > 0 && isAlnum(text.charCodeAt(i - 1)) && !maskBefore(text, i)) return undefined;
    // the longest run that stands alone (a shorter one may end on a run character that is not alphanumeric)
    for (let m = best; m >= WORD_RUN; m--) {
      const e = i + m;
      if (e === n || !isAlnum(text.charCodeAt(e)) || maskAfter(text, e)) {
        return { start: i, end: e, valueStart: i, valueEnd: e, id: 'secret' };
      }
    }
    return undefined;
  }
}

/** The compiled sources of a set of secrets (bounded; the secrets are in memory anyway). */
const SECRET_SETS = new Map<string, { lits: LiteralSet; runs: SecretRuns | undefined; plan: CutPlan }>();

/**
 * The gateway's always-on redaction of the injected keys (docs/gateway.md, "What reaches the
 * client"): a streaming filter, chunk-independent like every output filter, replacing with
 * `marker`
 *
 * - each secret as written, as base64/base64url at its 3 alignments and as hex (`secretForms`);
 * - partial and masked forms (`SecretRuns`): any run of 6+ characters of a secret's secret part
 *   (`secretPart`), and runs of 4–5 that stand alone or next to a mask.
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
      let f = FORMS_CACHE.get(s);
      if (!f) {
        if (FORMS_CACHE.size >= 64) FORMS_CACHE.clear();
        f = secretForms(s);
        FORMS_CACHE.set(s, f);
      }
      forms.push(...f);
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
    const runs = parts.length ? new SecretRuns(runIndex(parts)) : undefined;
    c = { lits, runs, plan: cutPlan([new Literals(lits), ...(runs ? [runs] : [])]) };
    if (SECRET_SETS.size >= 64) SECRET_SETS.clear();
    SECRET_SETS.set(key, c);
  }
  return new Redactor([new Literals(c.lits), ...(c.runs ? [c.runs] : [])], c.plan, marker);
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
  #before = '';
  #pending = '';

  constructor(sources: readonly Source[], plan: CutPlan, marker: string) {
    this.#sources = sources;
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
    return out;
  }

  #run(final: boolean): string {
    const window = this.#before + this.#pending;
    const offset = this.#before.length;
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
    this.#before = window.slice(Math.max(0, emitTo - CONTEXT), emitTo);
    this.#pending = window.slice(emitTo);
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
        for (const s of secrets) {
          let f = FORMS_CACHE.get(s);
          if (!f) {
            if (FORMS_CACHE.size >= 64) FORMS_CACHE.clear();
            f = secretForms(s);
            FORMS_CACHE.set(s, f);
          }
          forms.push(...f);
        }
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
