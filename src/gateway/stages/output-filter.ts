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
