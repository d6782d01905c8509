import type { Resource } from './resource.ts';

/**
 * A scope narrows a token to parts of the vault, whatever its roles allow.
 * `paths` entries are `PROJECT`, `PROJECT/ENV` or `PROJECT/ENV/NAME`, where a
 * segment may be `*` and a NAME may end in `*` (a prefix). `providers` limits
 * secrets to those whose provider is listed. A token without a scope is
 * limited by its roles alone.
 */
export interface Scope {
  paths?: string[];
  providers?: string[];
  /**
   * Dynamic credentials the token may ask for (docs/access.md): `database/creds/ROLE`,
   * `provider-keys/creds/ROLE`, `tools/TOOL`, `transit/KEY` (a transit key's uses), `models/NAME` (a model's release), a name may end in `*`. Absent: none.
   */
  credentials?: string[];
}

const CREDENTIAL =
  /^(database\/creds|provider-keys\/creds|tools|transit|models)\/(\*|[a-z0-9][a-z0-9_-]{0,62}\*?)$/;

/** Whether a credentials pattern covers `target` (`database/creds/rag-reader`, `tools/rag-search`). */
function credentialCovers(pattern: string, target: string): boolean {
  return pattern.endsWith('*') ? target.startsWith(pattern.slice(0, -1)) : pattern === target;
}

const SEG = /^(\*|[a-z0-9][a-z0-9_-]{0,62})$/;
const NAME = /^(\*|[A-Za-z_][A-Za-z0-9_.-]{0,127}\*?)$/;

/** Returns an error message for a malformed scope, or undefined. */
export function scopeProblem(scope: Scope): string | undefined {
  for (const p of scope.paths ?? []) {
    const parts = p.split('/');
    if (
      parts.length > 3 ||
      !SEG.test(parts[0]!) ||
      (parts[1] !== undefined && !SEG.test(parts[1])) ||
      (parts[2] !== undefined && !NAME.test(parts[2]))
    ) {
      return `invalid scope path ${JSON.stringify(p.slice(0, 100))}: use PROJECT, PROJECT/ENV or PROJECT/ENV/NAME (a segment may be *, a name may end with *)`;
    }
  }
  for (const c of scope.credentials ?? []) {
    if (!CREDENTIAL.test(c)) {
      return `invalid credentials entry ${JSON.stringify(c.slice(0, 100))} in scope: use database/creds/ROLE, provider-keys/creds/ROLE, tools/TOOL, transit/KEY or models/NAME (a name may end with *)`;
    }
  }
  for (const p of scope.providers ?? []) {
    if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(p))
      return `invalid provider ${JSON.stringify(p.slice(0, 64))} in scope`;
  }
  return undefined;
}

function segMatches(pattern: string | undefined, value: string | undefined): boolean {
  if (pattern === undefined) return true;
  if (value === undefined) return false;
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return pattern === value;
}

/** True when `pattern` covers everything `inner` covers (for child scopes). */
function pathCovers(pattern: string, inner: string): boolean {
  const p = pattern.split('/');
  const q = inner.split('/');
  for (let i = 0; i < p.length; i++) {
    const a = p[i]!;
    const b = q[i];
    if (b === undefined) return false; // inner is wider (stops earlier)
    if (a === '*') continue;
    if (a.endsWith('*')) {
      if (b.endsWith('*') ? !b.slice(0, -1).startsWith(a.slice(0, -1)) : !b.startsWith(a.slice(0, -1)))
        return false;
      continue;
    }
    if (a !== b) return false;
  }
  return true;
}

/** True when a token with scope `child` can reach nothing that `parent` cannot. */
export function scopeWithin(child: Scope | null, parent: Scope | null): boolean {
  if (parent === null) return true;
  if (child === null) return false;
  if (parent.paths) {
    if (!child.paths) return false;
    if (!child.paths.every((c) => parent.paths!.some((p) => pathCovers(p, c)))) return false;
  }
  if (parent.providers) {
    if (!child.providers) return false;
    if (!child.providers.every((c) => parent.providers!.includes(c))) return false;
  }
  // credentials: a child names only what its parent covers (a parent naming none reaches none)
  for (const c of child.credentials ?? []) {
    const covered = (parent.credentials ?? []).some((p) =>
      p.endsWith('*') ? c.startsWith(p.slice(0, -1)) : !c.endsWith('*') && c === p,
    );
    if (!covered) return false;
  }
  return true;
}

/**
 * Whether `scope` lets a token act on `resource`. System resources (the vault
 * itself, users, policies) are outside every scope; the token's own record is
 * inside every scope.
 */
export function scopeAllows(scope: Scope | null, resource: Resource): boolean {
  if (scope === null) return true;
  if (resource.type === 'Token') return true;
  const a = resource.attrs ?? {};
  const project = a.project as string | undefined;
  const env = a.environment as string | undefined;
  const name = a.name as string | undefined;
  // listings whose handler filters the items by scope (e.g. the project list)
  if (a.filtered_by_scope === true) return true;
  // the gateway: a scope's providers bind which providers a token may call (paths do not apply to models)
  if (resource.type === 'Model') {
    return !scope.providers || scope.providers.includes(a.provider as string);
  }
  // a remote gateway's service (System::"gateway"): its scope narrows the provider keys it reads, not
  // whether it may serve (the role `gateway` decides that)
  if (resource.type === 'System' && resource.id === 'gateway') return true;
  // SVID issuance: the identity engine's registrations decide who may obtain which SPIFFE ID
  if (resource.type === 'Identity' && a.entitlement_checked === true) return true;
  // dynamic credentials (a database role, a per-lease provider key, a tool's): a scoped token reaches only
  // those its scope's `credentials` name (docs/access.md); Cedar then decides
  const credential =
    resource.type === 'Tool'
      ? `tools/${resource.id}`
      : resource.type === 'TransitKey'
        ? `transit/${resource.id}`
        : resource.type === 'System' &&
            (resource.id.startsWith('database/creds/') ||
              resource.id.startsWith('provider-keys/creds/') ||
              resource.id.startsWith('models/'))
          ? resource.id
          : undefined;
  if (credential !== undefined) return (scope.credentials ?? []).some((p) => credentialCovers(p, credential));
  if (resource.type !== 'Project' && resource.type !== 'Environment' && resource.type !== 'Secret')
    return false;
  if (scope.paths) {
    const ok = scope.paths.some((p) => {
      const [sp, se, sn] = p.split('/');
      if (!segMatches(sp, project)) return false;
      if (resource.type === 'Project') return true;
      if (!segMatches(se, env)) return false;
      if (resource.type === 'Environment') return true;
      return segMatches(sn, name);
    });
    if (!ok) return false;
  }
  if (scope.providers && resource.type === 'Secret') {
    const provider = a.provider as string | undefined;
    if (!provider || !scope.providers.includes(provider)) return false;
  }
  return true;
}
