/**
 * The agent's template language, deliberately tiny: text with
 * `{{ secret "project/env/NAME" }}` placeholders and an optional filter —
 * `{{ secret "demo/prod/OPENAI_API_KEY" | json }}` — and dynamic credentials,
 * `{{ lease "database/creds/rag-reader" "password" }}` (a field of the
 * credential the agent holds under a lease for that path; every placeholder
 * naming the same path shares one credential; `?tenant=acme` asks for a
 * tenant). No code runs, nothing else is interpolated, so a template cannot
 * reach beyond what it names (which the agent's own token must be allowed to read).
 *
 * Filters: `raw` (default), `json` (a JSON string literal), `shell` (one
 * single-quoted POSIX shell word), `dotenv` (a double-quoted .env value),
 * `base64`.
 */

export type Filter = 'raw' | 'json' | 'shell' | 'dotenv' | 'base64';
const FILTERS = new Set<Filter>(['raw', 'json', 'shell', 'dotenv', 'base64']);

/** A secret reference: project, environment and name. */
export interface SecretRef {
  project: string;
  env: string;
  name: string;
}

/** A credential engine path the agent holds a lease for: `database/creds/ROLE` or `provider-keys/creds/ROLE`. */
export interface LeaseRef {
  /** The path as written (`database/creds/rag-reader?tenant=acme`): the key of the shared credential. */
  key: string;
  path: string;
  tenant?: string;
}

type Part = string | { ref: SecretRef; filter: Filter } | { lease: LeaseRef; field: string; filter: Filter };

/** A parsed template: render it with a lookup of secret values. */
export interface Template {
  /** Every secret the template reads, as `project/env/NAME`. */
  readonly refs: ReadonlySet<string>;
  /** Every leased credential it reads, by key. */
  readonly leases: ReadonlyMap<string, LeaseRef>;
  render(lookup: (ref: SecretRef) => string, lease?: (ref: LeaseRef, field: string) => string): string;
}

export class TemplateError extends Error {
  override name = 'TemplateError';
}

const TAG = /\{\{\s*(.*?)\s*\}\}/gs;
const EXPR = /^secret\s+"([^"\\]{1,400})"(?:\s*\|\s*([a-z0-9]+))?$/;
const LEASE_EXPR = /^lease\s+"([^"\\]{1,200})"\s+"([a-z_]{1,32})"(?:\s*\|\s*([a-z0-9]+))?$/;
const LEASE_PATH =
  /^((?:database|provider-keys)\/creds\/[a-z0-9][a-z0-9_-]{0,62})(?:\?tenant=([A-Za-z0-9_]{1,63}))?$/;

/** Parses a lease path: `database/creds/ROLE` or `provider-keys/creds/ROLE`, optionally `?tenant=T`. */
function parseLeaseRef(text: string): LeaseRef {
  const m = LEASE_PATH.exec(text);
  if (!m) {
    throw new TemplateError(
      `${JSON.stringify(text)} is not a lease path: use "database/creds/ROLE" or "provider-keys/creds/ROLE" (optionally ?tenant=NAME)`,
    );
  }
  return { key: text, path: m[1]!, ...(m[2] ? { tenant: m[2] } : {}) };
}
const REF = /^([a-z0-9][a-z0-9-]*)\/([a-z0-9][a-z0-9-]*)\/([A-Za-z0-9_.-]+)$/;

/** Parses `project/env/NAME`. */
export function parseRef(text: string): SecretRef {
  const m = REF.exec(text);
  if (!m)
    throw new TemplateError(`${JSON.stringify(text)} is not a secret reference: use "project/env/NAME"`);
  return { project: m[1]!, env: m[2]!, name: m[3]! };
}

const refKey = (r: SecretRef) => `${r.project}/${r.env}/${r.name}`;

function lineOf(text: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** Parses a template; errors name the line. */
export function parseTemplate(text: string): Template {
  const parts: Part[] = [];
  const refs = new Set<string>();
  const leases = new Map<string, LeaseRef>();
  let last = 0;
  for (const m of text.matchAll(TAG)) {
    const at = m.index;
    parts.push(text.slice(last, at));
    const le = LEASE_EXPR.exec(m[1]!);
    if (le) {
      let lease: LeaseRef;
      try {
        lease = parseLeaseRef(le[1]!);
      } catch (err) {
        throw new TemplateError(`line ${lineOf(text, at)}: ${(err as Error).message}`);
      }
      const filter = (le[3] ?? 'raw') as Filter;
      if (!FILTERS.has(filter)) {
        throw new TemplateError(
          `line ${lineOf(text, at)}: unknown filter ${JSON.stringify(filter)} (use ${[...FILTERS].join(', ')})`,
        );
      }
      parts.push({ lease, field: le[2]!, filter });
      leases.set(lease.key, lease);
      last = at + m[0].length;
      continue;
    }
    const e = EXPR.exec(m[1]!);
    if (!e) {
      throw new TemplateError(
        `line ${lineOf(text, at)}: ${JSON.stringify(m[0].slice(0, 80))} is not a placeholder: use {{ secret "project/env/NAME" }} or {{ lease "database/creds/ROLE" "password" }}`,
      );
    }
    let ref: SecretRef;
    try {
      ref = parseRef(e[1]!);
    } catch (err) {
      throw new TemplateError(`line ${lineOf(text, at)}: ${(err as Error).message}`);
    }
    const filter = (e[2] ?? 'raw') as Filter;
    if (!FILTERS.has(filter)) {
      throw new TemplateError(
        `line ${lineOf(text, at)}: unknown filter ${JSON.stringify(filter)} (use ${[...FILTERS].join(', ')})`,
      );
    }
    parts.push({ ref, filter });
    refs.add(refKey(ref));
    last = at + m[0].length;
  }
  parts.push(text.slice(last));
  const stray = parts.findIndex((p) => typeof p === 'string' && p.includes('{{'));
  if (stray >= 0) {
    throw new TemplateError('an unclosed {{ in the template: every placeholder ends with }}');
  }
  return {
    refs,
    leases,
    render(lookup, lease) {
      let out = '';
      for (const p of parts) {
        if (typeof p === 'string') out += p;
        else if ('ref' in p) out += applyFilter(lookup(p.ref), p.filter);
        else {
          if (!lease)
            throw new TemplateError('this template reads leased credentials: render it with a lease lookup');
          out += applyFilter(lease(p.lease, p.field), p.filter);
        }
      }
      return out;
    },
  };
}

function applyFilter(v: string, f: Filter): string {
  switch (f) {
    case 'raw':
      return v;
    case 'json':
      return JSON.stringify(v);
    case 'shell':
      return `'${v.replaceAll("'", `'\\''`)}'`;
    case 'dotenv':
      return `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n').replaceAll('$', '\\$')}"`;
    case 'base64':
      return Buffer.from(v, 'utf8').toString('base64');
  }
}

export { refKey };
