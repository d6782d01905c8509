import type { ErrorCode } from '../../errors/errors.ts';
import { RULES, type Rule } from '../../scan/rules.ts';
import { type CallInfo, type PromptView, type RequestStage, StageRefusal } from '../types.ts';
import {
  credentialDetectors,
  type Detector,
  nextHit,
  PII_KINDS,
  type PiiKind,
  piiDetector,
} from './detect.ts';

/**
 * The prompt firewall (issue 7, item 7): a request stage that refuses a
 * prompt carrying a prompt-injection phrase, a blocked topic, configured PII,
 * a known credential format, or any value stored in the vault (asked of the
 * gateway by fingerprint: `holdsAny` checks HMACs, the firewall never
 * holds plaintext lists). Refusal messages name the rule, never the text.
 * See docs/stages.md.
 */

export interface InjectionPattern {
  id: string;
  re: RegExp;
}

export interface BlockedTopic {
  /** Shown in the refusal (so keep it presentable): "weapons", "medical advice". */
  name: string;
  /** Whole words or phrases, case-insensitive; spaces match any whitespace. */
  keywords?: readonly string[];
  /** A regular expression (source or RegExp); tested case-insensitively when given as a string. */
  regex?: string | RegExp;
}

export type PiiAction = 'refuse' | 'ignore';

export interface FirewallConfig {
  /** Stage name (default `prompt-firewall`). */
  name?: string;
  /** Injection patterns; default DEFAULT_INJECTION_PATTERNS. `[]` turns the check off. */
  injection?: readonly InjectionPattern[];
  /** Extra patterns on top of the list in use. */
  extraInjection?: readonly InjectionPattern[];
  blockedTopics?: readonly BlockedTopic[];
  /** Per PII kind; default DEFAULT_PII_ACTIONS. */
  pii?: Partial<Record<PiiKind, PiiAction>>;
  /** Known credential formats (src/scan/rules.ts): on by default. */
  credentialFormats?: boolean;
  /** Rules to use instead of src/scan/rules.ts. */
  rules?: readonly Rule[];
  /** Vault values by fingerprint: on by default when `deps.holdsAny` is given. */
  vaultValues?: boolean;
  /** Candidate lengths for the vault lookup (default 12–512). */
  candidateLength?: { min: number; max: number };
}

export interface HoldsAnswer {
  found: boolean;
  compromised?: boolean;
}

export interface FirewallDeps {
  /**
   * True (or `found`) when any candidate is a value stored in the vault (the vault compares HMACs; a
   * remote vault is asked once per prompt, with every candidate of the prompt). `compromised`: the
   * value was outside the caller's reach and the vault revoked the caller (decision 0010).
   */
  holdsAny?: (
    candidates: readonly string[],
    call: CallInfo,
  ) => boolean | HoldsAnswer | Promise<boolean | HoldsAnswer>;
}

/**
 * Precise phrases only (DESIGN: low false positives). Encoded (base64, rot13)
 * variants are out of scope: a classifier, not a regex list, is the tool there.
 */
const DEFAULT_INJECTION_PATTERNS: readonly InjectionPattern[] = [
  {
    id: 'ignore-previous-instructions',
    re: /\b(?:ignore|forget|skip|override)\s+(?:(?:all|any|the|your|my|of|these|those)\s+){0,3}(?:previous|prior|above|earlier|preceding|foregoing)\s+(?:instructions?|prompts?|directions|directives|rules|guidelines|commands)\b/i,
  },
  {
    id: 'disregard-instructions',
    re: /\bdisregard\s+(?:(?:all|any|the|your|of|these|those)\s+){0,3}(?:(?:previous|prior|above|earlier|preceding|original|system)\s+)?(?:instructions?|prompts?|directions|directives|rules|guidelines|programming|system\s+prompt)\b/i,
  },
  {
    id: 'jailbreak-persona',
    // "DAN" only in capitals: "you are now Dan's manager" is not a jailbreak
    re: /\b[Yy]ou\s+are\s+now\s+(?:DAN\b|(?:in\s+)?(?:developer|god|jailbreak|unrestricted)\s+mode\b|jailbroken\b)|\bDo\s+Anything\s+Now\b/,
  },
  {
    id: 'reveal-system-prompt',
    re: /\b(?:reveal|show|print|output|repeat|display|leak|dump|tell\s+me|give\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:(?:full|entire|original|hidden|initial|secret|exact)\s+)*(?:system\s+prompt|system\s+message|hidden\s+(?:instructions|prompt)|initial\s+instructions)\b/i,
  },
  {
    id: 'print-instructions',
    re: /\b(?:print|repeat|output|reveal|show|display|dump|recite)\s+(?:me\s+)?(?:your|the\s+(?:above|previous|preceding))\s+(?:(?:full|entire|original|initial|exact|verbatim)\s+)*(?:instructions|prompt)\b/i,
  },
];

/** Cards, SSNs and IBANs are refused by default; e-mail addresses and phone numbers are common in prompts. */
const DEFAULT_PII_ACTIONS: Readonly<Record<PiiKind, PiiAction>> = {
  email: 'ignore',
  phone: 'ignore',
  credit_card: 'refuse',
  us_ssn: 'refuse',
  iban: 'refuse',
};

const PII_NAMES: Record<PiiKind, string> = {
  email: 'an e-mail address',
  phone: 'a phone number',
  credit_card: 'a payment card number',
  us_ssn: 'a US social security number',
  iban: 'a bank account number (IBAN)',
};

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function topicRegex(topic: BlockedTopic): RegExp {
  const parts: string[] = [];
  for (const k of topic.keywords ?? []) {
    const words = k.trim().split(/\s+/).filter(Boolean).map(escapeRe);
    if (words.length) parts.push(`(?<![\\p{L}\\p{N}_])${words.join('\\s+')}(?![\\p{L}\\p{N}_])`);
  }
  if (topic.regex !== undefined) {
    parts.push(typeof topic.regex === 'string' ? topic.regex : topic.regex.source);
  }
  if (parts.length === 0)
    throw new TypeError(`blocked topic ${JSON.stringify(topic.name)} has no keywords or regex`);
  const flags =
    typeof topic.regex === 'object' && !topic.regex.flags.includes('i') && !topic.keywords?.length
      ? 'u'
      : 'iu';
  return new RegExp(parts.map((p) => `(?:${p})`).join('|'), flags);
}

/** Delimiters around values in prompts: quotes, brackets, separators of code, JSON, env files and URLs. */
const WHITESPACE = /[\s]+/;
const DELIMITERS = /[\s"'`,;(){}[\]<>=|\\]+/;
const EDGE = /^[\s"'`,;:.!?(){}[\]<>=|\\*]+|[\s"'`,;:.!?(){}[\]<>=|\\*]+$/g;

/**
 * The substrings a vault value may stand as in a prompt: whitespace tokens,
 * the same with punctuation trimmed off the edges, and the pieces between
 * delimiters (`KEY="value"`, `{"k":"value"}`, `a|value`), each once,
 * within [min, max] characters. Linear in the prompt.
 */
export function candidates(text: string, min = 12, max = 512): Set<string> {
  const out = new Set<string>();
  const add = (s: string) => {
    if (s.length < min) return;
    if (s.length <= max) out.add(s);
    // `key:value` (YAML, headers, URLs' userinfo) also yields what follows the first colon
    const colon = s.indexOf(':');
    if (colon > 0 && s.length - colon - 1 >= min && s.length - colon - 1 <= max) out.add(s.slice(colon + 1));
  };
  const addTrimmed = (s: string) => {
    add(s);
    const t = s.replace(EDGE, '');
    if (t !== s) add(t);
  };
  for (const tok of text.split(WHITESPACE)) {
    if (tok.length < min) continue;
    addTrimmed(tok);
    if (DELIMITERS.test(tok))
      for (const piece of tok.split(DELIMITERS)) if (piece.length >= min) addTrimmed(piece);
  }
  return out;
}

export function createPromptFirewall(config: FirewallConfig = {}, deps: FirewallDeps = {}): RequestStage {
  const name = config.name ?? 'prompt-firewall';
  const injection = [
    ...(config.injection ?? DEFAULT_INJECTION_PATTERNS),
    ...(config.extraInjection ?? []),
  ].map((p) => ({ id: p.id, re: new RegExp(p.re.source, p.re.flags.replace(/[gy]/g, '')) }));
  const topics = (config.blockedTopics ?? []).map((t) => ({ name: t.name, re: topicRegex(t) }));
  const piiActions = { ...DEFAULT_PII_ACTIONS, ...config.pii };
  for (const [k, v] of Object.entries(piiActions)) {
    if (!(PII_KINDS as readonly string[]).includes(k))
      throw new TypeError(`unknown PII kind ${JSON.stringify(k)}`);
    if (v !== 'refuse' && v !== 'ignore') throw new TypeError(`PII action for ${k} must be refuse or ignore`);
  }
  const pii: { kind: PiiKind; d: Detector }[] = PII_KINDS.filter((k) => piiActions[k] === 'refuse').map(
    (kind) => ({
      kind,
      d: piiDetector(kind),
    }),
  );
  const creds = config.credentialFormats === false ? [] : credentialDetectors(config.rules);
  // the firewall also needs the context rules (Azure, Mistral, Cohere): the prompt is whole, lines are known
  const contextRules =
    config.credentialFormats === false ? [] : (config.rules ?? RULES).filter((r) => r.context);
  const holdsAny = config.vaultValues === false ? undefined : deps.holdsAny;
  const minLen = config.candidateLength?.min ?? 12;
  const maxLen = config.candidateLength?.max ?? 512;

  const refuse = (code: ErrorCode, message: string, signal?: 'compromise'): never => {
    throw new StageRefusal(name, code, message, signal);
  };

  const inspectText = (text: string, seen: Set<string>): void => {
    for (const p of injection) {
      if (p.re.test(text))
        refuse('prompt_injection', `the prompt was refused: it matches the injection rule ${p.id}`);
    }
    for (const t of topics) {
      if (t.re.test(text))
        refuse('blocked_topic', `the prompt was refused: the topic "${t.name}" is blocked`);
    }
    for (const c of creds) {
      if (nextHit(c, text, 0)) {
        refuse(
          'credential_detected',
          `the prompt was refused: it contains a credential (${c.provider}, rule ${c.id})`,
        );
      }
    }
    for (const r of contextRules) {
      r.re.lastIndex = 0;
      for (let m = r.re.exec(text); m !== null; m = r.re.exec(text)) {
        const end = text.indexOf('\n', m.index);
        const line = text.slice(text.lastIndexOf('\n', m.index) + 1, end < 0 ? text.length : end);
        if (r.context!.test(line) && (!r.validate || r.validate(m[1] ?? m[0]))) {
          refuse(
            'credential_detected',
            `the prompt was refused: it contains a credential (${r.provider}, rule ${r.id})`,
          );
        }
      }
    }
    for (const { kind, d } of pii) {
      if (nextHit(d, text, 0))
        refuse('pii_detected', `the prompt was refused: it contains ${PII_NAMES[kind]}`);
    }
    if (holdsAny) for (const c of candidates(text, minLen, maxLen)) seen.add(c);
  };

  return {
    name,
    async inspect(prompt: PromptView, call: CallInfo): Promise<void> {
      const seen = new Set<string>();
      for (const text of prompt.texts)
        if (typeof text === 'string' && text.length > 0) inspectText(text, seen);
      // every candidate of the prompt in one question (one round trip to a remote vault)
      if (!holdsAny || seen.size === 0) return;
      const answer = await holdsAny([...seen], call);
      const found = typeof answer === 'boolean' ? answer : answer.found;
      // the same answer whether or not the caller could read the value (decision 0010)
      if (found) {
        refuse(
          'credential_detected',
          'the prompt was refused: it contains a value stored in the vault',
          typeof answer === 'object' && answer.compromised ? 'compromise' : undefined,
        );
      }
    },
  };
}
