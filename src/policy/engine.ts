import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { BarrierStore } from '../barrier/barrier.ts';
import type { Identity } from '../contract/identity.ts';
import type { Resource } from '../contract/operation.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Authorizer, Decision } from './authorize.ts';
import { ACTIONS, BUILTIN_POLICIES, NAMESPACE, schemaText } from './schema.ts';

/**
 * Authorization with Cedar. The schema and the policy set (built-in role
 * policies plus the operators' custom ones) are parsed once into the wasm
 * module and re-parsed only when a policy changes. Deny by default: no permit
 * means deny, any forbid wins, and any evaluation error is a deny.
 *
 * Decisions are cached (a Cedar call costs ~200 µs with a few entities) by
 * policy-set version, every identity field the decision reads, action,
 * resource and context (see `cacheKey` and `samePrincipal`), unless a policy reads `context.now`
 * (then every request is evaluated).
 */
export interface RequestContextInfo {
  client_address: string;
  now: number;
  /** Optional context of gateway calls (issue 7): data classification, estimated tokens, environment. */
  classification?: string | undefined;
  estimated_tokens?: number | undefined;
  environment?: string | undefined;
  /** The operation a tool credential is asked for (docs/tools.md). */
  operation?: string | undefined;
  /** The tenant a dynamic credential is asked for (docs/database.md). */
  tenant?: string | undefined;
}

/** The optional context attributes present in `ctx` (absent ones stay absent: `context has …`). */
function optionalContext(ctx: RequestContextInfo): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  if (ctx.classification !== undefined) out.classification = ctx.classification;
  if (ctx.estimated_tokens !== undefined)
    out.estimated_tokens = Math.max(0, Math.round(ctx.estimated_tokens));
  if (ctx.environment !== undefined) out.environment = ctx.environment;
  if (ctx.operation !== undefined) out.operation = ctx.operation;
  if (ctx.tenant !== undefined) out.tenant = ctx.tenant;
  return out;
}

export interface Explanation extends Decision {
  policies: string[];
  errors: string[];
}

export interface PolicyEngine extends Authorizer {
  /** Loads custom policies from the barrier (after unseal). */
  load(): Promise<void>;
  unload(): void;
  /** Validates against the schema and stores a named set of policies; throws `validation_failed` with Cedar's message when invalid. */
  put(name: string, text: string): Promise<{ name: string; policies: number }>;
  get(name: string): Promise<string | undefined>;
  list(): Promise<string[]>;
  delete(name: string): Promise<boolean>;
  /** Evaluates without the cache and says which policies decided it. */
  explain(identity: Identity, action: string, resource: Resource, ctx: RequestContextInfo): Explanation;
  /** Re-reads custom policies when another server may have changed them. */
  refresh(): Promise<void>;
}

const SCHEMA_NAME = 'strongroom';
const POLICY_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const MAX_POLICY_BYTES = 64 * 1024;
const T = (type: string) => `${NAMESPACE}::${type}`;

let schemaLoaded = false;
function ensureSchema(): void {
  if (schemaLoaded) return;
  const r = cedar.preparseSchema(SCHEMA_NAME, schemaText());
  if (r.type !== 'success')
    throw new TypeError(`built-in Cedar schema is invalid: ${r.errors.map((e) => e.message).join('; ')}`);
  schemaLoaded = true;
}

function errorsOf(r: { errors: { message: string; help?: string | null }[] }): string {
  return r.errors.map((e) => (e.help ? `${e.message} (${e.help})` : e.message)).join('; ');
}

/** Splits a policy file into its policies, named `<name>#<n>`. */
function partsOf(name: string, text: string): Record<string, string> {
  const parts = cedar.policySetTextToParts(text);
  if (parts.type !== 'success')
    throw new StrongroomError('validation_failed', `the policy does not parse: ${errorsOf(parts)}`);
  if (parts.policy_templates.length > 0)
    throw new StrongroomError('validation_failed', 'policy templates are not supported');
  if (parts.policies.length === 0) throw new StrongroomError('validation_failed', 'the file holds no policy');
  return Object.fromEntries(parts.policies.map((p, i) => [`${name}#${i + 1}`, p]));
}

function validateSet(policies: Record<string, string>): void {
  const v = cedar.validate({
    schema: schemaText(),
    policies: { staticPolicies: policies },
    validationSettings: { mode: 'strict' },
  });
  if (v.type !== 'success')
    throw new StrongroomError('validation_failed', `the policy is invalid: ${errorsOf(v)}`);
  if (v.validationErrors.length > 0) {
    const msgs = v.validationErrors.map(
      (e) => `${e.policyId}: ${e.error.message}${e.error.help ? ` (${e.error.help})` : ''}`,
    );
    throw new StrongroomError(
      'validation_failed',
      `the policy does not match the schema: ${msgs.join('; ')}`,
    );
  }
}

function normaliseIp(addr: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (v4) return v4[1]!;
  return /^[0-9a-fA-F:.]+$/.test(addr) ? addr : '0.0.0.0';
}

function principalEntities(identity: Identity): { uid: cedar.EntityUid; entities: cedar.EntityJson[] } {
  const uid = { type: T('Token'), id: identity.accessor };
  const parents: cedar.EntityUidJson[] = identity.policies.map((p) => ({ type: T('Role'), id: p }));
  const entities: cedar.EntityJson[] = identity.policies.map((p) => ({
    uid: { type: T('Role'), id: p },
    attrs: {},
    parents: [],
  }));
  if (identity.owner.type === 'user' || identity.owner.type === 'app') {
    const owner = { type: T(identity.owner.type === 'user' ? 'User' : 'App'), id: identity.owner.id };
    parents.push(owner);
    entities.push({ uid: owner, attrs: { name: identity.owner.name }, parents: [] });
  } else if (identity.owner.type === 'workload') {
    // policies name workloads by SPIFFE ID: principal in Strongroom::Workload::"spiffe://td/path"
    const owner = { type: T('Workload'), id: identity.owner.id };
    parents.push(owner);
    const td = /^spiffe:\/\/([^/]+)/.exec(identity.owner.id)?.[1] ?? '';
    entities.push({ uid: owner, attrs: { spiffe_id: identity.owner.id, trust_domain: td }, parents: [] });
  }
  entities.push({
    uid,
    attrs: { kind: identity.owner.type, name: identity.display_name, mfa: identity.mfa },
    parents,
  });
  return { uid, entities };
}

function resourceEntities(resource: Resource): { uid: cedar.EntityUid; entities: cedar.EntityJson[] } {
  const a = resource.attrs ?? {};
  const str = (k: string) => (typeof a[k] === 'string' ? (a[k] as string) : '');
  switch (resource.type) {
    case 'Secret': {
      const env = { type: T('Environment'), id: `${str('project')}/${str('environment')}` };
      const project = { type: T('Project'), id: str('project') };
      const production = a.production === true;
      return {
        uid: { type: T('Secret'), id: resource.id },
        entities: [
          {
            uid: { type: T('Secret'), id: resource.id },
            attrs: {
              project: str('project'),
              environment: str('environment'),
              name: str('name'),
              production,
              provider: str('provider'),
              tags: Array.isArray(a.tags) ? (a.tags as string[]) : [],
            },
            parents: [env],
          },
          {
            uid: env,
            attrs: { project: str('project'), name: str('environment'), production },
            parents: [project],
          },
          { uid: project, attrs: { name: str('project') }, parents: [] },
        ],
      };
    }
    case 'Environment': {
      const project = { type: T('Project'), id: str('project') };
      return {
        uid: { type: T('Environment'), id: resource.id },
        entities: [
          {
            uid: { type: T('Environment'), id: resource.id },
            attrs: { project: str('project'), name: str('environment'), production: a.production === true },
            parents: [project],
          },
          { uid: project, attrs: { name: str('project') }, parents: [] },
        ],
      };
    }
    case 'Project':
      return {
        uid: { type: T('Project'), id: resource.id },
        entities: [
          { uid: { type: T('Project'), id: resource.id }, attrs: { name: resource.id }, parents: [] },
        ],
      };
    case 'User':
    case 'App':
      return {
        uid: { type: T(resource.type), id: resource.id },
        entities: [
          {
            uid: { type: T(resource.type), id: resource.id },
            attrs: { name: str('name') || resource.id },
            parents: [],
          },
        ],
      };
    case 'Identity':
      return {
        uid: { type: T('Identity'), id: resource.id },
        entities: [
          {
            uid: { type: T('Identity'), id: resource.id },
            attrs: { spiffe_id: resource.id, trust_domain: str('trust_domain'), path: str('path') },
            parents: [],
          },
        ],
      };
    case 'Model':
      return {
        uid: { type: T('Model'), id: resource.id },
        entities: [
          {
            uid: { type: T('Model'), id: resource.id },
            attrs: { provider: str('provider'), model: str('model'), route: str('route') },
            parents: [],
          },
        ],
      };
    case 'Tool':
    case 'TransitKey':
      return {
        uid: { type: T(resource.type), id: resource.id },
        entities: [
          { uid: { type: T(resource.type), id: resource.id }, attrs: { name: resource.id }, parents: [] },
        ],
      };
    case 'Token':
      // the token's own entity is already among the principal's (for self actions), or a bare one
      return { uid: { type: T('Token'), id: resource.id }, entities: [] };
    default:
      return {
        uid: { type: T('System'), id: resource.id },
        entities: [{ uid: { type: T('System'), id: resource.id }, attrs: {}, parents: [] }],
      };
  }
}

/** A string field, length-prefixed so that no content can pass for the next field. */
const field = (s: string) => `${s.length}:${s}`;

/** The identity fields a decision reads (`principalEntities`, the context's mfa), copied when cached. */
type Principal = Pick<Identity, 'kind' | 'accessor' | 'display_name' | 'mfa' | 'policies' | 'owner'>;

function principalOf(i: Identity): Principal {
  return {
    kind: i.kind,
    accessor: i.accessor,
    display_name: i.display_name,
    mfa: i.mfa,
    policies: [...i.policies],
    owner: { type: i.owner.type, id: i.owner.id, name: i.owner.name },
  };
}

function samePrincipal(a: Principal, b: Identity): boolean {
  if (a.kind !== b.kind || a.accessor !== b.accessor || a.display_name !== b.display_name || a.mfa !== b.mfa)
    return false;
  if (a.owner.type !== b.owner.type || a.owner.id !== b.owner.id || a.owner.name !== b.owner.name)
    return false;
  const pa = a.policies;
  const pb = b.policies;
  if (pa.length !== pb.length) return false;
  for (let i = 0; i < pa.length; i++) if (pa[i] !== pb[i]) return false;
  return true;
}

/**
 * The decision cache key: the accessor, the action, the resource with its attributes and the request
 * context (`now` aside: nothing is cached when a policy reads it). The rest of the principal is compared
 * field by field on a hit (`samePrincipal`), so a cached decision is served only to an identity equal in
 * everything the decision reads (issue 12 item 13: keyed by the accessor alone, the answer computed for
 * one identity, e.g. one a remote gateway made up, was served to another principal with that accessor).
 * Comparing costs ~50 ns; putting those fields in the string key cost ~600 ns per secret read.
 */
function cacheKey(identity: Identity, action: string, resource: Resource, c: RequestContextInfo): string {
  let key = `${field(identity.accessor)}${field(action)}${resource.type}|${field(resource.id)}${resource.attrs === undefined ? '-' : JSON.stringify(resource.attrs)}|${field(c.client_address)}`;
  if (
    c.classification !== undefined ||
    c.estimated_tokens !== undefined ||
    c.environment !== undefined ||
    c.operation !== undefined ||
    c.tenant !== undefined
  )
    key += JSON.stringify(optionalContext(c));
  return key;
}

export function createPolicyEngine(store: BarrierStore): PolicyEngine {
  ensureSchema();
  let version = 0;
  let setId = '';
  let usesTime = false;
  let cache = new Map<string, { principal: Principal; decision: Decision }>();
  const MAX_CACHE = 20_000;
  let custom: Record<string, string> = {};

  function install(next: Record<string, string>): void {
    const all = { ...BUILTIN_POLICIES, ...next };
    version++;
    const id = `set-${version}`;
    const r = cedar.preparsePolicySet(id, { staticPolicies: all });
    if (r.type !== 'success')
      throw new StrongroomError('validation_failed', `the policy set does not parse: ${errorsOf(r)}`);
    setId = id;
    custom = next;
    usesTime = Object.values(next).some((p) => /context\s*\.\s*now|context\s*\[\s*"now"\s*\]/.test(p));
    cache = new Map();
  }

  async function readAll(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const path of await store.list('')) {
      const text = (await store.get(path))?.toString('utf8');
      if (text !== undefined) Object.assign(out, partsOf(path, text));
    }
    return out;
  }

  function evaluate(identity: Identity, action: string, resource: Resource, ctx: RequestContextInfo) {
    if (!Object.hasOwn(ACTIONS, action)) {
      return {
        allowed: false,
        reason: `unknown action ${action}`,
        policies: [],
        errors: [`unknown action ${action}`],
      };
    }
    const p = principalEntities(identity);
    const r = resourceEntities(resource);
    const answer = cedar.statefulIsAuthorized({
      principal: p.uid,
      action: { type: T('Action'), id: action },
      resource: r.uid,
      context: {
        mfa: identity.mfa,
        client_ip: { __extn: { fn: 'ip', arg: normaliseIp(ctx.client_address) } },
        now: Math.floor(ctx.now / 1000),
        ...optionalContext(ctx),
      },
      preparsedPolicySetId: setId,
      preparsedSchemaName: SCHEMA_NAME,
      validateRequest: false,
      entities: [...p.entities, ...r.entities],
    });
    if (answer.type !== 'success') {
      return {
        allowed: false,
        reason: 'policy evaluation failed',
        policies: [],
        errors: answer.errors.map((e) => e.message),
      };
    }
    const { decision, diagnostics } = answer.response;
    const errors = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`);
    // Cedar skips a policy whose evaluation errs, so an erring forbid would not
    // stop an allow: fail closed instead, whatever the decision
    if (errors.length > 0) {
      return {
        allowed: false,
        reason: `policy evaluation failed (${diagnostics.errors.map((e) => e.policyId).join(', ')})`,
        policies: [],
        errors,
      };
    }
    if (decision === 'allow') {
      return {
        allowed: true,
        reason: `allowed by ${diagnostics.reason.join(', ')}`,
        policies: diagnostics.reason,
        errors,
      };
    }
    const reason = diagnostics.reason.length
      ? `forbidden by ${diagnostics.reason.join(', ')}`
      : errors.length
        ? 'policy evaluation failed'
        : 'no policy permits it';
    return { allowed: false, reason, policies: diagnostics.reason, errors };
  }

  const engine: PolicyEngine = {
    async load() {
      install(await readAll());
    },
    unload() {
      cache = new Map();
      custom = {};
      setId = '';
    },
    async refresh() {
      const next = await readAll();
      if (JSON.stringify(next) !== JSON.stringify(custom)) install(next);
    },
    async authorize(identity, action, resource, ctx?: RequestContextInfo) {
      if (identity.policies.includes('root')) return { allowed: true, reason: 'root token' };
      if (setId === '') return { allowed: false, reason: 'policies are not loaded' };
      const c = ctx ?? { client_address: '0.0.0.0', now: Date.now() };
      const key = usesTime ? undefined : cacheKey(identity, action, resource, c);
      const hit = key === undefined ? undefined : cache.get(key);
      if (hit && samePrincipal(hit.principal, identity)) return hit.decision;
      const { allowed, reason } = evaluate(identity, action, resource, c);
      const decision = { allowed, reason };
      if (key !== undefined) {
        if (cache.size >= MAX_CACHE) cache.clear();
        cache.set(key, { principal: principalOf(identity), decision });
      }
      return decision;
    },
    explain(identity, action, resource, ctx) {
      if (identity.policies.includes('root'))
        return { allowed: true, reason: 'root token', policies: [], errors: [] };
      return evaluate(identity, action, resource, ctx);
    },
    async put(name, text) {
      if (!POLICY_NAME_RE.test(name)) {
        throw new StrongroomError(
          'invalid_name',
          'a policy name uses lower-case letters, digits, - and _ (at most 63 characters)',
        );
      }
      if (name.startsWith('builtin'))
        throw new StrongroomError('invalid_name', 'policy names starting with "builtin" are reserved');
      if (Buffer.byteLength(text) > MAX_POLICY_BYTES)
        throw new StrongroomError('payload_too_large', 'a policy file may hold at most 64 KiB');
      const parts = partsOf(name, text);
      const next = {
        ...Object.fromEntries(Object.entries(custom).filter(([k]) => !k.startsWith(`${name}#`))),
        ...parts,
      };
      validateSet({ ...BUILTIN_POLICIES, ...next });
      await store.put(name, Buffer.from(text));
      install(next);
      return { name, policies: Object.keys(parts).length };
    },
    async get(name) {
      if (!POLICY_NAME_RE.test(name)) return undefined;
      return (await store.get(name))?.toString('utf8');
    },
    async list() {
      return store.list('');
    },
    async delete(name) {
      if (!POLICY_NAME_RE.test(name) || !(await store.get(name))) return false;
      await store.delete(name);
      install(Object.fromEntries(Object.entries(custom).filter(([k]) => !k.startsWith(`${name}#`))));
      return true;
    },
  };
  return engine;
}
