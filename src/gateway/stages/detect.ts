import { RULES, type Rule } from '../../scan/rules.ts';

/**
 * Detectors shared by the prompt firewall and the output filter: PII kinds
 * with their checksums, and the credential rules of src/scan/rules.ts made
 * bounded (every quantifier capped) so a match never depends on more than a
 * known number of characters — what lets the output filter hold back a finite
 * tail between stream chunks.
 */

export const PII_KINDS = ['email', 'phone', 'credit_card', 'us_ssn', 'iban'] as const;
export type PiiKind = (typeof PII_KINDS)[number];

/** A bounded detector: `re` is global with indices (`gd`); `span` is the longest text a match (and its look-around) can read. */
export interface Detector {
  id: string;
  re: RegExp;
  /** Upper bound on (match length + look-ahead), in UTF-16 units. */
  span: number;
  /** Group whose text is the sensitive value (0: the whole match). */
  group: number;
  validate?: (value: string) => boolean;
  /**
   * Every character a match consumes is in this class (ASCII only), so a
   * match starting before the last character outside it is decided. Absent:
   * unknown, and a streaming caller holds back `span` characters.
   */
  alphabet?: string;
  /** For rules that start with a keyword: the keywords (a match can only start on one). */
  keywords?: readonly string[];
}

// ---------------------------------------------------------------- checksums

/** Luhn (ISO/IEC 7812-1 Annex B) over a string of digits. */
function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Issuer prefixes of the card networks (ISO/IEC 7812 IIN ranges), so a Luhn-valid order number is not a card. */
function cardNetwork(d: string): boolean {
  const n = d.length;
  const p2 = Number(d.slice(0, 2));
  const p4 = Number(d.slice(0, 4));
  const p6 = Number(d.slice(0, 6));
  if (d[0] === '4') return n === 13 || n === 16 || n === 19; // Visa
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return n === 16; // Mastercard
  if (p2 === 34 || p2 === 37) return n === 15; // American Express
  if (p4 === 6011 || p2 === 65 || (p6 >= 644000 && p6 <= 649999)) return n >= 16 && n <= 19; // Discover
  if (p4 >= 3528 && p4 <= 3589) return n >= 16 && n <= 19; // JCB
  if (p2 === 36 || p2 === 38 || p2 === 39 || (p4 >= 3000 && p4 <= 3059)) return n >= 14 && n <= 19; // Diners
  if (p2 === 62) return n >= 16 && n <= 19; // UnionPay
  return false;
}

function isCardNumber(text: string): boolean {
  const d = text.replace(/[ -]/g, '');
  return d.length >= 13 && d.length <= 19 && cardNetwork(d) && luhn(d) && !/^(\d)\1+$/.test(d);
}

/** IBAN lengths by country (ISO 13616 registry, SEPA and common others). */
// biome-ignore format: a table
const IBAN_LENGTH: Record<string, number> = {
  AD: 24, AE: 23, AT: 20, BE: 16, BG: 22, BH: 22, BR: 29, CH: 21, CY: 28, CZ: 24, DE: 22, DK: 18,
  EE: 20, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GI: 23, GL: 18, GR: 27, HR: 21, HU: 28, IE: 22,
  IL: 23, IS: 26, IT: 27, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MT: 31, NL: 18, NO: 15, PL: 28,
  PT: 25, RO: 24, SA: 24, SE: 24, SI: 19, SK: 24, SM: 27, TR: 26, UA: 29, VA: 22,
};

/** ISO 13616 / ISO 7064 mod 97-10: the rearranged number mod 97 is 1, and the length fits the country. */
function isIban(text: string): boolean {
  const s = text.replace(/ /g, '');
  const want = IBAN_LENGTH[s.slice(0, 2)];
  if (want === undefined || s.length !== want) return false;
  const r = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < r.length; i++) {
    const c = r.charCodeAt(i);
    const v = c >= 65 ? c - 55 : c - 48;
    rem = v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

/** SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000. */
function isUsSsn(text: string): boolean {
  const d = text.replace(/[ -]/g, '');
  const area = d.slice(0, 3);
  return area !== '000' && area !== '666' && d[0] !== '9' && d.slice(3, 5) !== '00' && d.slice(5) !== '0000';
}

/** E.164 allows at most 15 digits; national numbers have at least 8 with the area code. */
function phoneDigits(text: string): boolean {
  const n = text.replace(/\D/g, '').length;
  return n >= 8 && n <= 15;
}

// ---------------------------------------------------------------- PII detectors

const PII: Record<PiiKind, Detector> = {
  email: {
    id: 'email',
    // RFC 5321 §4.5.3.1: local part ≤ 64, domain ≤ 255; a dotted domain with a 2+ letter TLD
    re: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])/dg,
    span: 64 + 1 + 8 * 64 + 24 + 1,
    group: 0,
    alphabet: 'A-Za-z0-9._%+@-',
  },
  phone: {
    id: 'phone',
    re: new RegExp(
      [
        // international: +CC then groups, E.164 (RFC 3966 visual separators allowed)
        String.raw`\+[1-9]\d{0,3}(?:[ .-]?\(?\d{1,4}\)?){1,6}[ .-]?\d{2,4}`,
        // US/NANP: (415) 555-0123, 415-555-0123, 415.555.0123, 415 555 0123
        String.raw`(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}`,
        // EU national with a trunk 0: 06 12 34 56 78 (FR), 030 1234567 / 0301 234567 (DE), 020 7946 0958 (UK)
        String.raw`0[1-9](?:[ .]\d{2}){4}`,
        String.raw`0\d{2,4}[ /]\d{3,4} ?\d{3,4}`,
      ]
        .map((a) => `(?:${a})`)
        .join('|')
        // not inside a word, a version, a URL, or a group of an IBAN printed in fours
        .replace(/^/, String.raw`(?<![\w+.:/-])(?<![A-Z0-9]{4} )(?:`)
        .concat(String.raw`)(?![\w.:/-]|-\d)`),
      'dg',
    ),
    span: 60,
    group: 0,
    validate: phoneDigits,
    alphabet: '0-9 +()./-',
  },
  credit_card: {
    id: 'credit_card',
    re: /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/dg,
    span: 40,
    group: 0,
    validate: isCardNumber,
    alphabet: '0-9 -',
  },
  us_ssn: {
    id: 'us_ssn',
    re: /(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])/dg,
    span: 13,
    group: 0,
    validate: isUsSsn,
    alphabet: '0-9 -',
  },
  iban: {
    id: 'iban',
    // printed in groups of four (ISO 13616 §5) or compact
    re: /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])/dg,
    span: 48,
    group: 0,
    validate: isIban,
    alphabet: 'A-Z0-9 ',
  },
};

export function piiDetector(kind: PiiKind): Detector {
  const d = PII[kind];
  return { ...d, re: new RegExp(d.re.source, d.re.flags) };
}

// ---------------------------------------------------------------- credentials

const QUANTIFIER_CAP = 64;
const REPEAT_CAP = 256;

/**
 * The same pattern with every unbounded quantifier capped: `*` → `{0,64}`,
 * `+` → `{1,64}`, `{n,}` → `{n,256}` (outside character classes; escapes
 * kept). Returns the new source and an upper bound of the characters a match
 * may span.
 */
function boundPattern(source: string): { source: string; span: number } {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      out += c + (source[i + 1] ?? '');
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') inClass = true;
    if (c === '*') out += `{0,${QUANTIFIER_CAP}}`;
    else if (c === '+' && !/[*+?}]$/.test(out)) out += `{1,${QUANTIFIER_CAP}}`;
    else if (c === '{') {
      const m = /^\{(\d+),\}/.exec(source.slice(i));
      if (m) {
        out += `{${m[1]},${Math.max(REPEAT_CAP, Number(m[1]))}}`;
        i += m[0].length - 1;
      } else out += c;
    } else out += c;
  }
  // A crude but safe bound: the longest a bounded pattern of this source can match is less than
  // (number of quantified atoms × cap) + literal length; every rule today is far below 512.
  const quantified = (out.match(/\{\d+,\d+\}/g) ?? []).reduce((n, q) => n + Number(/,(\d+)/.exec(q)![1]), 0);
  return { source: out, span: quantified + out.length + 1 };
}

/** What the built-in rules consume (see Detector.alphabet / keywords); other rules get neither. */
const RULE_SHAPE: Record<string, { alphabet?: string; keywords?: readonly string[] }> = {
  'openai-project-key': { alphabet: 'A-Za-z0-9_-' },
  'openai-legacy-key': { alphabet: 'A-Za-z0-9_-' },
  'anthropic-key': { alphabet: 'A-Za-z0-9_-' },
  'google-ai-key': { alphabet: 'A-Za-z0-9_-' },
  'huggingface-token': { alphabet: 'A-Za-z0-9_-' },
  'groq-key': { alphabet: 'A-Za-z0-9_-' },
  'openrouter-key': { alphabet: 'A-Za-z0-9_-' },
  'aws-access-key-id': { alphabet: 'A-Za-z0-9_-' },
  'strongroom-token': { alphabet: 'A-Za-z0-9_-' },
  'generic-high-entropy': { keywords: ['key', 'secret', 'token', 'passw', 'pwd', 'credential'] },
};

export interface CredentialDetector extends Detector {
  provider: string;
  rule: Rule;
}

/**
 * Detectors for the credential rules that need no line context (a keyword
 * elsewhere on the line: Azure, Mistral, Cohere), bounded. The context rules
 * are plain hex/alphanumerics that only the keyword makes meaningful.
 */
export function credentialDetectors(rules: readonly Rule[] = RULES): CredentialDetector[] {
  return rules
    .filter((r) => !r.context)
    .map((rule) => {
      const { source, span } = boundPattern(rule.re.source);
      const flags = `${rule.re.flags.replace(/[gd]/g, '')}gd`;
      return {
        id: rule.id,
        provider: rule.provider,
        rule,
        re: new RegExp(source, flags),
        span,
        // group 1, when the rule has one, is the secret (src/scan/rules.ts)
        group: new RegExp(`${source}|`).exec('')!.length > 1 ? 1 : 0,
        ...(rule.validate ? { validate: rule.validate } : {}),
        // trusted only for the rule as shipped (a caller's rule with the same id may differ)
        ...(RULES.includes(rule) ? RULE_SHAPE[rule.id] : {}),
      };
    });
}

/** One hit of a detector: the match, and the part of it that is sensitive. */
export interface Hit {
  start: number;
  end: number;
  valueStart: number;
  valueEnd: number;
  id: string;
}

/** The leftmost valid hit of `d` at or after `from` in `text`. */
export function nextHit(d: Detector, text: string, from: number): Hit | undefined {
  const re = d.re;
  re.lastIndex = from;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const idx = m.indices![d.group] ?? m.indices![0]!;
    const value = m[d.group] ?? m[0];
    if (!d.validate || d.validate(value)) {
      return { start: m.index, end: m.index + m[0].length, valueStart: idx[0], valueEnd: idx[1], id: d.id };
    }
    // an invalid candidate here: look for one starting at the next position
    re.lastIndex = m.index + 1;
  }
  return undefined;
}
