import { createHash } from 'node:crypto';
import { isWellFormedToken } from '../crypto/token.ts';

/**
 * Detectors for hard-coded credentials. Each rule is a regular expression
 * (group 1, when present, is the secret; otherwise the whole match) plus a
 * validation step that keeps look-alikes out: placeholders, documentation
 * examples, hashes and keys without the context that makes them meaningful.
 */
export interface Rule {
  id: string;
  provider: string;
  description: string;
  /** Must be global (`g`). */
  re: RegExp;
  /** Only report when the line matches this too (for formats that are otherwise plain hex/alnum). */
  context?: RegExp;
  validate?: (secret: string) => boolean;
}

export interface RuleMatch {
  ruleId: string;
  provider: string;
  secret: string;
  /** Offset of the secret in the scanned text (UTF-16 units). */
  index: number;
}

const PLACEHOLDER =
  /x{5,}|\*{3,}|\.{3}|…|<|>|\$\{|\{\{|%s|your|example|placeholder|changeme|change_me|replace|redacted|dummy|sample|fake|insert|here|0{8,}|123456789|abcdef0123|abcdefghij|(.)\1{5,}/i;

/** True for strings that are obviously not real secrets: `xxxx`, `your-key-here`, `<…>`, `${…}`, `aaaaaa…`. */
export function isPlaceholder(s: string): boolean {
  if (PLACEHOLDER.test(s)) return true;
  return new Set(s).size < Math.min(10, s.length / 2);
}

/** Shannon entropy in bits per character. */
export function shannonEntropy(s: string): number {
  if (s.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

const mixed = (s: string) => /[a-z]/.test(s) && /[A-Z]/.test(s) && /[0-9]/.test(s);
const notPlaceholder = (s: string) => !isPlaceholder(s);

export const RULES: readonly Rule[] = [
  {
    id: 'openai-project-key',
    provider: 'openai',
    description: 'OpenAI project, service-account or admin key (sk-proj-, sk-svcacct-, sk-admin-)',
    re: /(?<![A-Za-z0-9_-])sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}/g,
    validate: (s) => notPlaceholder(s) && (s.includes('T3BlbkFJ') || (s.length >= 80 && mixed(s))),
  },
  {
    id: 'openai-legacy-key',
    provider: 'openai',
    description: 'OpenAI user key (sk- + 48 characters with the T3BlbkFJ marker)',
    re: /(?<![A-Za-z0-9_-])sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}(?![A-Za-z0-9_-])/g,
    validate: notPlaceholder,
  },
  {
    id: 'anthropic-key',
    provider: 'anthropic',
    description: 'Anthropic API or admin key (sk-ant-api03-, sk-ant-admin01-)',
    re: /(?<![A-Za-z0-9_-])sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{80,120}AA(?![A-Za-z0-9_-])/g,
    validate: notPlaceholder,
  },
  {
    id: 'google-ai-key',
    provider: 'google',
    description: 'Google API key (AIza + 35 characters), used by Gemini / Google AI Studio',
    re: /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])/g,
    validate: notPlaceholder,
  },
  {
    id: 'azure-openai-key',
    provider: 'azure-openai',
    description: 'Azure OpenAI key (32 hex characters next to azure/openai/api-key on the same line)',
    re: /(?<![0-9A-Za-z])([0-9a-f]{32})(?![0-9A-Za-z])/g,
    context: /azure|openai|api[-_]?key/i,
    validate: (s) => notPlaceholder(s) && /[a-f]/.test(s) && /[0-9]/.test(s) && shannonEntropy(s) > 3,
  },
  {
    id: 'huggingface-token',
    provider: 'huggingface',
    description: 'Hugging Face access token (hf_ + 34 characters)',
    re: /(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{34}(?![A-Za-z0-9_])/g,
    validate: (s) => notPlaceholder(s) && mixed(s.slice(3)),
  },
  {
    id: 'groq-key',
    provider: 'groq',
    description: 'Groq API key (gsk_ + 52 characters)',
    re: /(?<![A-Za-z0-9_])gsk_[A-Za-z0-9]{52}(?![A-Za-z0-9_])/g,
    validate: (s) => notPlaceholder(s) && mixed(s.slice(4)),
  },
  {
    id: 'openrouter-key',
    provider: 'openrouter',
    description: 'OpenRouter API key (sk-or-v1- + 64 hex characters)',
    re: /(?<![A-Za-z0-9_-])sk-or-v1-[0-9a-f]{64}(?![0-9A-Za-z])/g,
    validate: notPlaceholder,
  },
  {
    id: 'mistral-key',
    provider: 'mistral',
    description: 'Mistral API key (32 characters next to a MISTRAL key name on the same line)',
    re: /(?<![A-Za-z0-9_-])([A-Za-z0-9]{32})(?![A-Za-z0-9_-])/g,
    context: /mistral/i,
    validate: (s) => notPlaceholder(s) && mixed(s) && shannonEntropy(s) > 3.5,
  },
  {
    id: 'cohere-key',
    provider: 'cohere',
    description: 'Cohere API key (40 characters next to a COHERE / CO_API_KEY name on the same line)',
    re: /(?<![A-Za-z0-9_-])([A-Za-z0-9]{40})(?![A-Za-z0-9_-])/g,
    context: /cohere|\bCO_API_KEY\b/i,
    validate: (s) => notPlaceholder(s) && mixed(s) && shannonEntropy(s) > 3.5,
  },
  {
    id: 'aws-access-key-id',
    provider: 'aws',
    description: 'AWS access key id (AKIA/ASIA + 16 characters)',
    re: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Za-z0-9])/g,
    validate: (s) => notPlaceholder(s) && !/EXAMPLE/.test(s),
  },
  {
    id: 'strongroom-token',
    provider: 'strongroom',
    description: 'Strongroom token (srt_/srs_ with a valid checksum)',
    re: /(?<![A-Za-z0-9_-])sr[ts]_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}(?![A-Za-z0-9_-])/g,
    validate: isWellFormedToken,
  },
  {
    id: 'generic-high-entropy',
    provider: 'generic',
    description:
      'A high-entropy value (> 4 bits/char, 24+ characters) assigned to a name like KEY, SECRET, TOKEN or PASSWORD',
    re: /(?:key|secret|token|passw(?:or)?d|pwd|credential)[A-Za-z0-9_.-]*["'`]?\s*(?::=|=>|[:=])\s*["'`]?([^\s"'`,;]{24,200})/gi,
    validate: (s) =>
      !isPlaceholder(s) &&
      shannonEntropy(s) > 4.0 &&
      !/^sr[a-z]_[A-Za-z0-9_-]{43}_[0-9A-Za-z]{6}$/.test(s) &&
      !s.startsWith(':') && // Secret::project/env/NAME (a Cedar entity), Foo::bar
      !s.split('/').some((seg) => /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/.test(seg)) && // a vault address project/env/OPENAI_API_KEY // token-shaped: only the checksum rule decides
      !/^[0-9a-f]+$/i.test(s) && // hex hashes (lockfiles, commit ids, checksums)
      !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s) && // UUIDs
      !/^sha(?:1|256|384|512)-/.test(s) && // subresource integrity (package-lock.json)
      !/^[a-z]+:\/\//i.test(s) && // URLs
      !/[()[\]{}]/.test(s) && // code: calls, indexing, object literals
      !/^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$/.test(s) && // dotted identifiers
      !/^[./~]|\/[\w.-]+\.\w+$/.test(s), // file paths
  },
];

/** Secret → a stable, non-reversible (for real keys) identifier: truncated SHA-256, fine for allow-lists. */
export function fingerprint(secret: string): string {
  return createHash('sha256').update(secret).digest('hex').slice(0, 20);
}

/** At most the first 4 and last 2 characters; shorter secrets show less. Never the whole key. */
export function redact(secret: string): string {
  if (secret.length >= 16) return `${secret.slice(0, 4)}…${secret.slice(-2)}`;
  if (secret.length >= 8) return `${secret.slice(0, 2)}…`;
  return '…';
}

function lineAround(text: string, index: number): string {
  const start = text.lastIndexOf('\n', index) + 1;
  let end = text.indexOf('\n', index);
  if (end < 0) end = text.length;
  return text.slice(start, end);
}

/** Every rule over `text`; overlapping generic matches are dropped in favour of specific rules. */
export function detect(text: string, rules: readonly Rule[] = RULES): RuleMatch[] {
  const out: RuleMatch[] = [];
  const run = (rule: Rule, chunk: string, offset: number) => {
    rule.re.lastIndex = 0;
    for (let m = rule.re.exec(chunk); m !== null; m = rule.re.exec(chunk)) {
      const secret = m[1] ?? m[0];
      const index = offset + m.index + (m[1] === undefined ? 0 : m[0].lastIndexOf(m[1]));
      if (rule.validate && !rule.validate(secret)) continue;
      if (/strongroom:allow/.test(lineAround(text, index))) continue;
      out.push({ ruleId: rule.id, provider: rule.provider, secret, index });
    }
  };
  for (const rule of rules) {
    if (!rule.context) {
      run(rule, text, 0);
      continue;
    }
    // context rules look only at the lines that carry their keyword (most files have none)
    const ctx = new RegExp(rule.context.source, `${rule.context.flags.replace('g', '')}g`);
    let lastLine = -1;
    for (let c = ctx.exec(text); c !== null; c = ctx.exec(text)) {
      const start = text.lastIndexOf('\n', c.index) + 1;
      if (start === lastLine) continue;
      lastLine = start;
      let end = text.indexOf('\n', c.index);
      if (end < 0) end = text.length;
      run(rule, text.slice(start, end), start);
      ctx.lastIndex = end;
    }
  }
  // `out` is in rule order (specific first, generic last): keep the first rule for any overlapping span.
  const overlaps = (a: RuleMatch, b: RuleMatch) =>
    a.index < b.index + b.secret.length && b.index < a.index + a.secret.length;
  const kept: RuleMatch[] = [];
  for (const f of out) if (!kept.some((k) => overlaps(k, f))) kept.push(f);
  return kept.sort((a, b) => a.index - b.index);
}
