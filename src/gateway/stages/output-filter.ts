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

/** A set of literals: the leftmost occurrence of any, the longest at a tie. */
class Literals implements Source {
  readonly span: number;
  readonly #lits: readonly string[];
  readonly #table: Uint8Array | undefined;
  constructor(lits: readonly string[]) {
    this.#lits = [...lits].sort((a, b) => b.length - a.length);
    this.span = this.#lits.reduce((n, l) => Math.max(n, l.length), 0);
    const chars = new Set(this.#lits.join(''));
    this.#table = [...chars].every((c) => c.charCodeAt(0) < 128) ? new Uint8Array(128) : undefined;
    if (this.#table) for (const c of chars) this.#table[c.charCodeAt(0)] = 1;
  }
  undecided(text: string, from: number): number {
    // a literal starting before a character it does not contain ends before it
    return this.#table ? suffixIn(this.#table, text, from) : from;
  }
  // Where each literal next occurs in the text last searched (-1: nowhere after), so a literal that is
  // absent is scanned for once per text, not once per hit.
  #text: string | undefined;
  #at: number[] = [];
  next(text: string, from: number): Hit | undefined {
    if (text !== this.#text) {
      this.#text = text;
      this.#at = this.#lits.map(() => -2);
    }
    let best: Hit | undefined;
    for (let k = 0; k < this.#lits.length; k++) {
      const l = this.#lits[k]!;
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
  next(text: string, from: number): Hit | undefined;
  /** The earliest position at or after `from` where a match may start that more text could change. */
  undecided(text: string, from: number): number;
}

function detectorSource(d: Detector): Source {
  let undecided = (_text: string, from: number) => from;
  if (d.alphabet !== undefined) {
    const table = asciiTable(d.alphabet);
    undecided = (text, from) => suffixIn(table, text, from);
  } else if (d.keywords) {
    // a match starts on a keyword: the first keyword (or keyword prefix at the very end) in the tail
    const kw = d.keywords.map((k) => k.toLowerCase());
    const re = new RegExp(kw.join('|'), 'gi');
    undecided = (text, from) => {
      re.lastIndex = from;
      const m = re.exec(text);
      if (m) return m.index;
      const tail = text.slice(Math.max(from, text.length - 16)).toLowerCase();
      for (let i = 0; i < tail.length; i++) {
        const rest = tail.slice(i);
        if (kw.some((k) => k.startsWith(rest))) return text.length - rest.length;
      }
      return text.length;
    };
  }
  return { span: d.span, next: (text, from) => nextHit(d, text, from), undecided };
}

/** Streams text through `sources`, replacing the value of every selected hit with `marker`. */
class Redactor implements ResponseFilter {
  readonly #sources: readonly Source[];
  readonly #marker: string;
  #before = '';
  #pending = '';

  constructor(sources: readonly Source[], marker: string) {
    this.#sources = sources;
    this.#marker = marker;
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
      for (const s of this.#sources)
        cut = Math.min(cut, s.undecided(window, Math.max(offset, window.length - s.span)));
    }
    if (cut <= offset) return '';
    const next: (Hit | undefined | null)[] = this.#sources.map(() => null);
    let out = '';
    let q = offset;
    for (;;) {
      let best: Hit | undefined;
      for (let i = 0; i < this.#sources.length; i++) {
        let h = next[i];
        if (h === null || (h !== undefined && h.start < q)) {
          h = this.#sources[i]!.next(window, q);
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
  // detectors are compiled once; each filter gets its own copies (RegExp lastIndex is state)
  const detectors: Detector[] = [
    ...(config.credentialFormats === false ? [] : credentialDetectors(config.rules)),
    ...(config.pii ?? []).map((k) => piiDetector(k)),
  ];
  return {
    name,
    open(_call: CallInfo, secrets: readonly string[]): ResponseFilter {
      const forms: string[] = [];
      for (const s of secrets) {
        if (typeof s !== 'string' || s.length < minSecret) {
          throw new TypeError(`output filter: a secret must be a string of at least ${minSecret} characters`);
        }
        let f = FORMS_CACHE.get(s);
        if (!f) {
          if (FORMS_CACHE.size >= 64) FORMS_CACHE.clear();
          f = secretForms(s);
          FORMS_CACHE.set(s, f);
        }
        forms.push(...f);
      }
      const sources: Source[] = [];
      if (forms.length) sources.push(new Literals(forms));
      for (const d of detectors)
        sources.push(detectorSource({ ...d, re: new RegExp(d.re.source, d.re.flags) }));
      return new Redactor(sources, marker);
    },
  };
}
