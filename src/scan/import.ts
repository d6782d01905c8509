import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { detect, fingerprint } from './rules.ts';
import type { Finding } from './scan.ts';

/**
 * `strongroom scan --import PROJECT/ENV`: turning findings into a plan of
 * vault secrets (names, providers, where each key was found and how to replace
 * it). Everything here is pure except {@link readKeys}, which reads the keys
 * back from the files and blobs the scan found them in (in memory only).
 * Plans never hold key values; those stay in the map `readKeys` returns.
 */

/** What a rule's key becomes in the vault: the provider id (src/engines/provider-catalog.ts) and a conventional name. */
export interface KeyKind {
  /** A provider id of src/engines/provider-catalog.ts, or null when the rule says nothing about the provider. */
  provider: string | null;
  /** The environment variable the provider's own SDKs read. */
  name: string;
}

/**
 * Rule id → what its keys become in the vault; `null` for rules whose findings are never
 * imported (Strongroom's own tokens are vault credentials: they are revoked, not stored).
 */
export const RULE_IMPORT: Readonly<Record<string, KeyKind | null>> = {
  'openai-project-key': { provider: 'openai', name: 'OPENAI_API_KEY' },
  'openai-legacy-key': { provider: 'openai', name: 'OPENAI_API_KEY' },
  'anthropic-key': { provider: 'anthropic', name: 'ANTHROPIC_API_KEY' },
  'google-ai-key': { provider: 'google', name: 'GEMINI_API_KEY' },
  'azure-openai-key': { provider: 'azure-openai', name: 'AZURE_OPENAI_API_KEY' },
  'huggingface-token': { provider: 'huggingface', name: 'HF_TOKEN' },
  'groq-key': { provider: 'groq', name: 'GROQ_API_KEY' },
  'openrouter-key': { provider: 'openrouter', name: 'OPENROUTER_API_KEY' },
  'mistral-key': { provider: 'mistral', name: 'MISTRAL_API_KEY' },
  'cohere-key': { provider: 'cohere', name: 'CO_API_KEY' },
  // the vault's AWS entry accepts access key ids (AKIA…/ASIA…) as well as Bedrock API keys
  'aws-access-key-id': { provider: 'aws-bedrock', name: 'AWS_ACCESS_KEY_ID' },
  'generic-high-entropy': { provider: null, name: 'SECRET' },
  'strongroom-token': null,
};

/** A finding plus the name it was assigned to on its line (`NAME=value`, `NAME: value`, `"NAME": "value"`). */
export type ImportFinding = Finding & { variable?: string };

export interface ImportTarget {
  project: string;
  env: string;
}

/** One place a key was found, with what to do about it. */
export interface Occurrence {
  file: string;
  line: number;
  column: number;
  /** Set when the key is only in git history: the commit that added it. */
  commit?: string;
  /** The name the key was assigned to on its line, as written. */
  variable?: string;
  /** How to replace this occurrence, for a human. */
  replace: string;
}

/** One vault secret to create: every occurrence of one key value. */
export interface PlannedSecret {
  name: string;
  provider: string | null;
  ruleId: string;
  preview: string;
  fingerprint: string;
  /** Working-tree occurrences first, then history, each by file, line and column. */
  occurrences: Occurrence[];
  /** True when some occurrence is in git history only: the key must be rotated at the provider. */
  inHistory: boolean;
}

/** A finding that is not imported, with what to do instead. */
export interface SkippedFinding {
  file: string;
  line: number;
  column: number;
  commit?: string;
  ruleId: string;
  preview: string;
  fingerprint: string;
  advice: string;
}

export interface ImportPlan {
  target: ImportTarget;
  secrets: PlannedSecret[];
  skipped: SkippedFinding[];
}

const SECRET_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,119}$/;

/** Names that say nothing about whose key it is: a provider-specific key gets the provider's name instead. */
const UNINFORMATIVE = new Set([
  'KEY',
  'API_KEY',
  'APIKEY',
  'X_API_KEY',
  'API_TOKEN',
  'TOKEN',
  'ACCESS_TOKEN',
  'AUTH_TOKEN',
  'BEARER',
  'BEARER_TOKEN',
  'AUTHORIZATION',
  'SECRET',
  'SECRET_KEY',
  'ACCESS_KEY',
  'PASSWORD',
  'PASSWD',
  'PWD',
  'CREDENTIAL',
  'CREDENTIALS',
  'VALUE',
]);

/**
 * The name a value is assigned to, when the text just before `column` (1-based) on the line
 * is an assignment: `NAME=`, `NAME = "`, `NAME: `, `"NAME": "`, `name := "`, `env["NAME"] = "`.
 */
export function variableAt(lineText: string, column: number): string | undefined {
  const before = lineText.slice(0, Math.max(0, column - 1));
  const m = /([A-Za-z_][A-Za-z0-9_.-]*)["'`]?\]?\s*(?::=|=>|[:=])\s*["'`]?$/.exec(before);
  return m?.[1];
}

/** `openaiApiKey`, `openai-api-key`, `settings.openai_api_key` → OPENAI_API_KEY; undefined when unusable. */
export function envName(variable: string): string | undefined {
  const last = variable.split(/[.:]/).pop() ?? '';
  const name = last
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase();
  return SECRET_NAME_RE.test(name) ? name : undefined;
}

/**
 * The name a key wants in the vault. A provider-specific key keeps the name it was assigned to
 * when that is environment-variable style (`GROQ_API_KEY=`, `aws_access_key_id =`) and says more
 * than `api_key`; otherwise it gets the provider's conventional name (a camelCase property such as
 * `apiKey:` → ANTHROPIC_API_KEY). A generic high-entropy value takes its assignment's name
 * (camelCase becomes SNAKE_CASE), else SECRET.
 */
export function wantedName(
  ruleId: string,
  variable: string | undefined,
): { name: string; fromLine: boolean } {
  const kind = RULE_IMPORT[ruleId] ?? { provider: null, name: 'SECRET' };
  const derived = variable === undefined ? undefined : envName(variable);
  if (derived === undefined) return { name: kind.name, fromLine: false };
  if (kind.provider === null) return { name: derived, fromLine: true };
  const envStyle = !/[a-z][A-Z]/.test(variable!.split(/[.:]/).pop() ?? '');
  if (envStyle && !UNINFORMATIVE.has(derived)) return { name: derived, fromLine: true };
  return { name: kind.name, fromLine: false };
}

/** Node's way to read a variable (spelled out of parts: only bin/ and src/config may mention it literally). */
const nodeEnv = (n: string) => ['process', 'env', n].join('.');

const CODE_HINTS: Record<string, (name: string) => string> = {
  '.py': (n) => `os.environ["${n}"]`,
  '.js': nodeEnv,
  '.mjs': nodeEnv,
  '.cjs': nodeEnv,
  '.jsx': nodeEnv,
  '.ts': nodeEnv,
  '.mts': nodeEnv,
  '.cts': nodeEnv,
  '.tsx': nodeEnv,
  '.go': (n) => `os.Getenv("${n}")`,
  '.rb': (n) => `ENV["${n}"]`,
  '.java': (n) => `System.getenv("${n}")`,
  '.kt': (n) => `System.getenv("${n}")`,
  '.rs': (n) => `std::env::var("${n}")`,
  '.cs': (n) => `Environment.GetEnvironmentVariable("${n}")`,
  '.php': (n) => `getenv('${n}')`,
  '.sh': (n) => `"$${n}"`,
  '.bash': (n) => `"$${n}"`,
  '.zsh': (n) => `"$${n}"`,
};

function isEnvFile(file: string): boolean {
  const base = basename(file.split('\\').join('/'));
  return /^\.env(?:\..+)?$/.test(base) || base.endsWith('.env');
}

/** The `strongroom run` line that gives a program the environment's secrets. */
function runCommand(target: ImportTarget): string {
  return `strongroom run --project ${target.project} --env ${target.env} -- <your command>`;
}

/** How to replace one occurrence of a key once it is in the vault under `name`. */
export function replacementAdvice(
  occ: { file: string; line: number; commit?: string; variable?: string },
  name: string,
  target: ImportTarget,
): string {
  const where = `${occ.file}:${occ.line}`;
  if (occ.commit !== undefined) {
    return `${where} (commit ${occ.commit.slice(0, 12) || 'unknown'}, git history only) → already gone from the tree, but every clone still has it: rotate the key at the provider, then store the new one with \`strongroom secret put ${target.project}/${target.env}/${name}\``;
  }
  const rename =
    occ.variable && occ.variable !== name ? ` (the code used ${occ.variable}: rename it to ${name})` : '';
  if (isEnvFile(occ.file))
    return `${where} → delete this line; \`${runCommand(target)}\` sets ${name}${rename}`;
  const hint = CODE_HINTS[extname(occ.file).toLowerCase()];
  return hint
    ? `${where} → read ${name} from the environment (${hint(name)}) and start the program with: ${runCommand(target)}`
    : `${where} → remove the value; have the program read ${name} from the environment and start it with: ${runCommand(target)}`;
}

const STRONGROOM_TOKEN_ADVICE =
  'a Strongroom token is a vault credential, not a key to store: revoke this token (`strongroom token revoke` reads it from stdin, or --accessor), issue a new one and keep it in STRONGROOM_TOKEN, not in a file';

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Working tree before history, then file, line, column, commit. */
function compareFindings(a: Finding, b: Finding): number {
  return (
    (a.commit === undefined ? 0 : 1) - (b.commit === undefined ? 0 : 1) ||
    cmp(a.file, b.file) ||
    a.line - b.line ||
    a.column - b.column ||
    cmp(a.commit ?? '', b.commit ?? '')
  );
}

/**
 * Groups findings into secrets: one per distinct key (by fingerprint), named after the first
 * occurrence with a usable assignment name (else the rule's conventional name). Different keys
 * that want the same name get `_2`, `_3`, … in the order of their first occurrence, so the same
 * findings always give the same plan. Strongroom tokens are never planned: they are skipped with advice.
 */
export function planImport(findings: readonly ImportFinding[], target: ImportTarget): ImportPlan {
  const sorted = [...findings].sort(compareFindings);
  const skipped: SkippedFinding[] = [];
  const groups = new Map<string, ImportFinding[]>();
  const seen = new Set<string>();
  for (const f of sorted) {
    const at = `${f.fingerprint} ${f.file}:${f.line}:${f.column} ${f.commit ?? ''}`;
    if (seen.has(at)) continue;
    seen.add(at);
    if (RULE_IMPORT[f.ruleId] === null) {
      skipped.push({
        file: f.file,
        line: f.line,
        column: f.column,
        ...(f.commit === undefined ? {} : { commit: f.commit }),
        ruleId: f.ruleId,
        preview: f.preview,
        fingerprint: f.fingerprint,
        advice: STRONGROOM_TOKEN_ADVICE,
      });
      continue;
    }
    const g = groups.get(f.fingerprint);
    if (g) g.push(f);
    else groups.set(f.fingerprint, [f]);
  }

  const wanted = [...groups.values()].map((occ) => {
    const named = occ.map((f) => wantedName(occ[0]!.ruleId, f.variable)).find((w) => w.fromLine);
    return named?.name ?? wantedName(occ[0]!.ruleId, undefined).name;
  });
  const allWanted = new Set(wanted);
  const taken = new Set<string>();
  const names = wanted.map((w) => {
    if (taken.has(w)) return undefined;
    taken.add(w);
    return w;
  });
  for (const [i, n] of names.entries()) {
    if (n !== undefined) continue;
    let k = 2;
    while (taken.has(`${wanted[i]}_${k}`) || allWanted.has(`${wanted[i]}_${k}`)) k++;
    names[i] = `${wanted[i]}_${k}`;
    taken.add(names[i]!);
  }

  const secrets = [...groups.values()].map((occ, i): PlannedSecret => {
    const first = occ[0]!;
    const name = names[i]!;
    return {
      name,
      provider: RULE_IMPORT[first.ruleId]?.provider ?? null,
      ruleId: first.ruleId,
      preview: first.preview,
      fingerprint: first.fingerprint,
      occurrences: occ.map((f) => ({
        file: f.file,
        line: f.line,
        column: f.column,
        ...(f.commit === undefined ? {} : { commit: f.commit }),
        ...(f.variable === undefined ? {} : { variable: f.variable }),
        replace: replacementAdvice(f, name, target),
      })),
      inHistory: occ.some((f) => f.commit !== undefined),
    };
  });
  return { target, secrets, skipped };
}

/**
 * Reads each finding's key back from where the scan found it (the working-tree file, or for
 * history findings the blob at `commit:path` through `git cat-file`) and the name it is assigned
 * to on its line. Keys are returned in memory only, keyed by fingerprint; a finding whose key can
 * no longer be found (the file changed since the scan) is simply missing from the map.
 */
export function readKeys(
  findings: readonly Finding[],
  cwd: string,
): { values: Map<string, string>; findings: ImportFinding[] } {
  const values = new Map<string, string>();
  const texts = new Map<string, string | null>();
  const textOf = (f: Finding): string | null => {
    const key = `${f.commit ?? ''}\0${f.file}`;
    if (!texts.has(key)) {
      let text: string | null = null;
      try {
        text =
          f.commit === undefined
            ? readFileSync(resolve(cwd, f.file), 'utf8')
            : f.commit === ''
              ? null
              : execFileSync('git', ['cat-file', 'blob', `${f.commit}:${f.file}`], {
                  cwd,
                  maxBuffer: 1 << 30,
                  stdio: ['ignore', 'pipe', 'ignore'],
                }).toString('utf8');
      } catch {
        text = null;
      }
      texts.set(key, text);
    }
    return texts.get(key) ?? null;
  };
  const out = findings.map((f): ImportFinding => {
    const text = textOf(f);
    if (text === null) return f;
    if (!values.has(f.fingerprint)) {
      for (const m of detect(text)) {
        if (fingerprint(m.secret) === f.fingerprint) {
          values.set(f.fingerprint, m.secret);
          break;
        }
      }
    }
    let start = 0;
    for (let i = 1; i < f.line && start >= 0; i++) {
      const nl = text.indexOf('\n', start);
      start = nl < 0 ? -1 : nl + 1;
    }
    if (start < 0) return f;
    const end = text.indexOf('\n', start);
    const variable = variableAt(text.slice(start, end < 0 ? text.length : end), f.column);
    return variable === undefined ? f : { ...f, variable };
  });
  return { values, findings: out };
}

// ---- results and their rendering ----

/**
 * What happened to one planned secret. `would_*` only with `--dry-run`.
 * `created`, `already_in_vault`, `overwritten` (and in a dry run `would_create`, `would_overwrite`) are success.
 */
export type ImportStatus =
  | 'created'
  | 'already_in_vault'
  | 'overwritten'
  | 'conflict'
  | 'failed'
  | 'would_create'
  | 'would_overwrite';

export interface SecretResult extends PlannedSecret {
  status: ImportStatus;
  /** The vault version now holding the key (created, overwritten, already in vault). */
  version?: number;
  /** Why it is a conflict or failed (never contains a key). */
  message?: string;
}

export interface ImportReport {
  target: ImportTarget;
  dryRun: boolean;
  secrets: SecretResult[];
  skipped: SkippedFinding[];
  scan: { files: number; bytes: number; skipped: number; blobs?: number };
}

const OK: ReadonlySet<ImportStatus> = new Set([
  'created',
  'already_in_vault',
  'overwritten',
  'would_create',
  'would_overwrite',
]);

/** True when every key planned for import is (or, in a dry run, would be) in the vault. */
export function importSucceeded(report: Pick<ImportReport, 'secrets'>): boolean {
  return report.secrets.every((s) => OK.has(s.status));
}

const STATUS_TEXT: Record<ImportStatus, string> = {
  created: 'created',
  already_in_vault: 'already in vault',
  overwritten: 'overwritten',
  conflict: 'conflict: not overwritten',
  failed: 'failed',
  would_create: 'would create',
  would_overwrite: 'would overwrite',
};

function counts(secrets: readonly SecretResult[]): Record<ImportStatus, number> {
  const c = Object.fromEntries(Object.keys(STATUS_TEXT).map((k) => [k, 0])) as Record<ImportStatus, number>;
  for (const s of secrets) c[s.status]++;
  return c;
}

/** Warnings for stderr: keys found in git history must be rotated at the provider. */
export function importWarnings(report: Pick<ImportReport, 'secrets'>): string[] {
  const leaked = report.secrets.filter((s) => s.inHistory);
  if (leaked.length === 0) return [];
  const one = leaked.length === 1;
  return [
    `warning: ${one ? '1 key was' : `${leaked.length} keys were`} found in git history (${leaked.map((s) => s.name).join(', ')}): ` +
      `anyone with a clone of the repository has ${one ? 'it' : 'them'}, and moving ${one ? 'it' : 'them'} into the vault does not change that. ` +
      `Rotate ${one ? 'it' : 'them'} at the provider, store the new ${one ? 'key' : 'keys'} in the vault, and only then purge the history (git filter-repo).`,
  ];
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')}\n`;
}

/** The human report: one row per secret, then how to replace each occurrence, then what was not imported. */
export function renderImportTable(report: ImportReport): string {
  const { target, secrets, skipped } = report;
  const dest = `${target.project}/${target.env}`;
  let out = report.dryRun ? `Dry run: nothing is written to ${dest}.\n\n` : '';
  if (secrets.length === 0 && skipped.length === 0) {
    return `${out}No hard-coded credentials found: nothing to import into ${dest}.\n`;
  }
  if (secrets.length > 0) {
    const rows = secrets.map((s) => {
      const first = s.occurrences[0]!;
      const at = `${first.file}:${first.line}${first.commit === undefined ? '' : ' (git history)'}`;
      const more = s.occurrences.length > 1 ? ` (+${s.occurrences.length - 1} more)` : '';
      const version = s.version === undefined ? '' : ` (version ${s.version})`;
      return [
        `${dest}/${s.name}`,
        s.provider ?? '-',
        s.preview,
        at + more,
        String(s.occurrences.length),
        STATUS_TEXT[s.status] + version,
      ];
    });
    out += table([['SECRET', 'PROVIDER', 'PREVIEW', 'FOUND AT', 'COUNT', 'RESULT'], ...rows]);
    const problems = secrets.filter((s) => s.message !== undefined);
    if (problems.length > 0) {
      out += `\nProblems:\n${problems.map((s) => `  ${s.name}: ${s.message}\n`).join('')}`;
    }
    out += `\nReplace each occurrence:\n${secrets.flatMap((s) => s.occurrences.map((o) => `  ${o.replace}\n`)).join('')}`;
  }
  if (skipped.length > 0) {
    out += `\nNot imported:\n${skipped
      .map(
        (f) =>
          `  ${f.file}:${f.line}${f.commit === undefined ? '' : ' (git history)'} ${f.ruleId} ${f.preview} → ${f.advice}\n`,
      )
      .join('')}`;
  }
  const c = counts(secrets);
  const parts = (Object.keys(STATUS_TEXT) as ImportStatus[])
    .filter((k) => c[k] > 0)
    .map((k) => `${c[k]} ${k === 'conflict' ? (c[k] === 1 ? 'conflict' : 'conflicts') : STATUS_TEXT[k]}`);
  const n = secrets.length;
  out += `\n${n} key${n === 1 ? '' : 's'} to import into ${dest}${parts.length ? `: ${parts.join(', ')}` : ''}.`;
  if (skipped.length > 0)
    out += ` ${skipped.length} Strongroom token${skipped.length === 1 ? '' : 's'} not imported (revoke ${skipped.length === 1 ? 'it' : 'them'}).`;
  if (c.conflict > 0) out += ' Pass --overwrite to replace a different stored value.';
  return `${out}\n`;
}

/** The machine-readable report: the plan (no key values) with each secret's outcome. */
export function renderImportJson(report: ImportReport): string {
  const c = counts(report.secrets);
  const body = {
    target: report.target,
    dryRun: report.dryRun,
    ok: importSucceeded(report),
    secrets: report.secrets.map((s) => ({
      name: s.name,
      provider: s.provider,
      ruleId: s.ruleId,
      preview: s.preview,
      fingerprint: s.fingerprint,
      count: s.occurrences.length,
      inHistory: s.inHistory,
      status: s.status,
      ...(s.version === undefined ? {} : { version: s.version }),
      ...(s.message === undefined ? {} : { message: s.message }),
      occurrences: s.occurrences,
    })),
    skipped: report.skipped,
    warnings: importWarnings(report),
    summary: {
      secrets: report.secrets.length,
      created: c.created,
      alreadyInVault: c.already_in_vault,
      overwritten: c.overwritten,
      conflicts: c.conflict,
      failed: c.failed,
      ...(report.dryRun ? { wouldCreate: c.would_create, wouldOverwrite: c.would_overwrite } : {}),
      notImported: report.skipped.length,
    },
    scan: report.scan,
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}
