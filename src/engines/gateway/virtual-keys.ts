// biome-ignore-all lint/style/noExcessiveLinesPerFile: the virtual-key engine: its five operations share the key store, the HMAC key and the creator checks
import { createSecretKey, type KeyObject } from 'node:crypto';
import type { KeyScope, VirtualKey } from '../../api/gateway.ts';
import * as api from '../../api/gateway.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { BudgetLimits, Budgets } from '../../contract/budgets.ts';
import type { Identity } from '../../contract/identity.ts';
import { identityOf } from '../../contract/identity.ts';
import type { VaultModule } from '../../contract/module.ts';
import {
  type AnyOperation,
  implement,
  type OperationContext,
  type Resource,
} from '../../contract/operation.ts';
import { constantTimeEqual, hmacSha256, randomKey } from '../../crypto/random.ts';
import { generateToken, isWellFormedToken, TOKEN_PREFIXES } from '../../crypto/token.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { parseDuration } from '../../lib/duration.ts';
import { globCovers, globMatch } from '../../lib/glob.ts';
import { parseSpiffeId } from '../../spiffe/index.ts';
import type { AllowsPort, BarrierPort, ClockPort, TokensPort } from '../ports.ts';
import { createBudgets } from './budgets.ts';

/** What virtual keys need: their barrier view, token lookups (a key dies with its creator), authorization, the clock. */
export type GatewayKeysDeps = BarrierPort & TokensPort & AllowsPort & ClockPort;

/**
 * Virtual keys of the AI gateway (issue 7 item 3; docs/gateway-keys.md):
 * short-lived `srv_…` credentials minted for an application, scoped to
 * providers and model globs, with budget and rate limits, an expiry, an
 * optional SPIFFE ID binding and a default data classification; revocable
 * at once. Only an HMAC of the key string is stored (the HMAC key lives in
 * the barrier); the string is shown once, when the key is created.
 *
 * A key never grants more than the token that minted it (issue 12 item 8):
 * it expires no later than that token, and it is valid only while that token
 * lives (revoked, used up, expired, its user deleted or app revoked: the key
 * ends with it). An orphan key (`orphan: true`, Cedar action
 * `gateway.key.orphan`) is bounded only by the key maximum TTL.
 *
 * Records live under `logical/gateway/`: `keys/<id>` (the id is derived from
 * the key's HMAC, so a lookup is one read), `hmac-key`, `decoy` (read on a
 * miss, so unknown, revoked and expired keys cost the same) and the budget
 * records (`budget/…`, budgets.ts).
 */
export interface GatewayKeysOptions {
  /** Lifetime of a key when none is asked for (default 1 h). */
  default_ttl_seconds?: number;
  /** Longest lifetime of a key (default 30 days). */
  max_ttl_seconds?: number;
  /**
   * Keep budgets in memory and write them behind to storage this often (exclusive storage only:
   * one process owns it). Absent: one storage transaction per reservation (shared storage).
   */
  budgets_write_behind_ms?: number;
}

/** A key's wire view, scope and state: declared once, in the wire contract (src/api/gateway.ts). */
export type { KeyScope, VirtualKey } from '../../api/gateway.ts';

/** Who minted a key, and whether the key outlives it. */
export type KeyCreator = VirtualKey['creator'];

/** Whether a key can be used now, or why not. */
export type KeyState = VirtualKey['state'];

interface KeyRecord extends Omit<VirtualKey, 'roles' | 'state' | 'creator'> {
  /** HMAC-SHA256 of the key string (hex). */
  hmac: string;
  /** Absent on records written before creators were recorded. */
  creator?: KeyCreator;
  /** The creator token's `TokenStore.refOf` (one read finds it); never leaves the engine. */
  creator_ref?: string;
}

/** What the gateway server uses (bound by `gatewayKeysModule`). */
export interface GatewayKeysEngine {
  operations: AnyOperation[];
  /**
   * The key a key string names, or undefined when it is unknown, revoked or
   * expired, or when its creator token no longer lives (unless it is an
   * orphan). With `proof`, also undefined when the key is bound to a SPIFFE
   * ID other than `proof.spiffe_id`; without it, the caller must compare
   * `key.spiffe_id` with the SPIFFE ID the caller proved. Always one HMAC,
   * one key read, one creator read (`TokenStore.lookupRef`) and one
   * constant-time comparison, whichever the outcome. Never cached beyond
   * the call: a revocation (of the key or of its creator) holds from the
   * next request on.
   */
  lookup(keyString: string, proof?: { spiffe_id?: string | undefined }): Promise<VirtualKey | undefined>;
  /** Revokes a key by id (the gateway's anomaly response); idempotent. */
  revoke(id: string): Promise<void>;
  /**
   * Mints a key for the caller, as `gateway.key.create` does (the caller's authorization is the
   * caller's business: the provider-keys engine mints one per lease). The key string is returned once.
   */
  mint(
    ctx: OperationContext,
    input: api.KeyCreateRequest,
  ): Promise<{ virtual_key: string; id: string; ttl: number }>;
  /** Ids of the live (unrevoked) keys named `name`: a key a crash minted before its id was kept. */
  idsNamed(name: string): Promise<string[]>;
  /** A key's metadata by id (revoked and expired ones too, with their `state`), or undefined. */
  get(id: string): Promise<VirtualKey | undefined>;
  /** Whether the key with this id can be used now: not revoked, not expired, its creator live (or an orphan). */
  live(id: string): Promise<boolean>;
  /**
   * The identity of the token that minted `key`, while it lives (orphan keys included); undefined
   * when it is gone or the key was minted by a workload. What its caller may read is what this may.
   */
  reader(key: Pick<VirtualKey, 'id'>): Promise<Identity | undefined>;
  /** Atomic budgets and rate limits in the vault's storage (shared by every gateway instance). */
  budgets: Budgets;
  /** Drops the cached HMAC key (on seal). */
  forget(): void;
}

/** Where the engine is mounted in the barrier. */
export const GATEWAY_KEYS_MOUNT = 'logical/gateway/';
const PREFIX = GATEWAY_KEYS_MOUNT;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const PROVIDER_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MODEL_RE = /^[A-Za-z0-9*][A-Za-z0-9_.:/@*+-]{0,127}$/;
const CLASS_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const ID_RE = /^vk_[0-9a-f]{24}$/;
const MAX_LIST = 50;
const KEYS_RESOURCE = 'gateway-keys';
/** Cedar action a caller needs to mint an orphan key (one that outlives its creator token). */
const ORPHAN_ACTION = 'gateway.key.orphan';
const LEGACY_CREATOR: Readonly<KeyCreator> = Object.freeze({ accessor: null, orphan: false });
/** A caller allowed the action on this resource acts on everyone's keys, not only its own. */
const ALL_KEYS_RESOURCE = 'gateway-keys/all';

const DECOY: Readonly<KeyRecord> = Object.freeze({
  id: 'vk_000000000000000000000000',
  name: 'decoy',
  owner: { type: 'root', id: '', name: '' },
  created_by: '',
  scope: {},
  limits: {},
  created_at: new Date(0).toISOString(),
  expires_at: new Date(0).toISOString(),
  revoked: true,
  hmac: '0'.repeat(64),
});

const bad = (message: string) => new StrongroomError('invalid_value', message);

/** The Cedar resource of a gateway call: `Model::"provider/model"`. */
export function modelResource(provider: string, model: string, route: string): Resource {
  return { type: 'Model', id: `${provider}/${model}`, attrs: { provider, model, route } };
}

/** Whether a key's scope lets it call `model` of `provider`. */
export function keyAllows(key: Pick<VirtualKey, 'scope'>, provider: string, model: string): boolean {
  const { providers, models } = key.scope;
  if (providers && !providers.includes(provider)) return false;
  if (models && !models.some((m) => globMatch(m, model))) return false;
  return true;
}

/**
 * The principal a virtual key is in Cedar: a token in role `virtual-key`
 * (which built-in policy `builtin.virtual-key` permits to `gateway.invoke`)
 * and in its owner's entity (so `principal in Strongroom::App::"…"` policies
 * apply to the app's keys). Never the roles of whoever minted it.
 */
export function keyIdentity(key: Omit<VirtualKey, 'roles'>): Identity {
  const ownerType = key.owner.type === 'user' || key.owner.type === 'app' ? key.owner.type : 'token';
  return {
    kind: 'token',
    accessor: `vk:${key.id}`,
    display_name: `virtual-key:${key.name}`,
    policies: ['virtual-key'],
    owner: { type: ownerType, id: ownerType === 'token' ? key.id : key.owner.id, name: key.owner.name },
    scope: null,
    mfa: false,
  };
}

/** True when `child` reaches no provider or model that `parent` does not. */
export function scopeWithin(child: KeyScope, parent: KeyScope): boolean {
  if (parent.providers && !(child.providers ?? []).length) return false;
  if (parent.providers && !child.providers!.every((p) => parent.providers!.includes(p))) return false;
  if (parent.models && !(child.models ?? []).length) return false;
  if (parent.models && !child.models!.every((m) => parent.models!.some((p) => globCovers(p, m))))
    return false;
  return true;
}

/** True when `child` allows no more than `parent` (an absent limit is unlimited). */
export function limitsWithin(child: BudgetLimits, parent: BudgetLimits): boolean {
  const within = (c: number | undefined, p: number | undefined) =>
    p === undefined || (c !== undefined && c <= p);
  if (!within(child.requests_per_minute, parent.requests_per_minute)) return false;
  if (!within(child.tokens_per_minute, parent.tokens_per_minute)) return false;
  if (parent.spend) {
    // a daily budget is not within a monthly one (thirty days of it are more), so periods must match
    if (!child.spend || child.spend.period !== parent.spend.period || child.spend.usd > parent.spend.usd)
      return false;
  }
  return true;
}

function checkScope(scope: KeyScope): KeyScope {
  const out: KeyScope = {};
  if (scope.providers !== undefined) {
    if (scope.providers.length === 0 || scope.providers.length > MAX_LIST)
      throw bad(`scope.providers: give 1 to ${MAX_LIST}, or leave it out for any provider`);
    for (const p of scope.providers)
      if (!PROVIDER_RE.test(p))
        throw bad(`scope.providers: ${JSON.stringify(p.slice(0, 64))} is not a provider name`);
    out.providers = [...new Set(scope.providers)];
  }
  if (scope.models !== undefined) {
    if (scope.models.length === 0 || scope.models.length > MAX_LIST)
      throw bad(`scope.models: give 1 to ${MAX_LIST}, or leave it out for any model`);
    for (const m of scope.models)
      if (!MODEL_RE.test(m))
        throw bad(
          `scope.models: ${JSON.stringify(m.slice(0, 128))} is not a model name or glob (like gpt-4o*)`,
        );
    out.models = [...new Set(scope.models)];
  }
  return out;
}

function checkLimits(limits: BudgetLimits): BudgetLimits {
  const out: BudgetLimits = {};
  const count = (v: number | undefined, name: 'requests_per_minute' | 'tokens_per_minute') => {
    if (v === undefined) return;
    if (!Number.isSafeInteger(v) || v < 0 || v > 1e12) throw bad(`limits.${name}: a whole number ≥ 0`);
    out[name] = v;
  };
  count(limits.requests_per_minute, 'requests_per_minute');
  count(limits.tokens_per_minute, 'tokens_per_minute');
  if (limits.spend !== undefined) {
    const { usd, period } = limits.spend;
    if (!Number.isFinite(usd) || usd < 0 || usd > 1e9) throw bad('limits.spend.usd: a number of USD ≥ 0');
    if (period !== 'day' && period !== 'month' && period !== 'total')
      throw bad('limits.spend.period: day, month or total');
    out.spend = { usd, period };
  }
  return out;
}

function checkSpiffeId(id: string): string {
  try {
    const parsed = parseSpiffeId(id);
    if (parsed.path === '') throw new Error('it names a trust domain, not a workload');
    return parsed.toString();
  } catch (err) {
    throw bad(`spiffe_id: ${(err as Error).message}`);
  }
}

/** A key's state, given whether its creator token lives. */
function stateOf(r: Readonly<KeyRecord>, creatorLive: boolean, at: number): KeyState {
  if (r.revoked) return 'revoked';
  if (Date.parse(r.expires_at) <= at) return 'expired';
  return r.creator?.orphan === true || creatorLive ? 'active' : 'creator_gone';
}

const view = (r: Readonly<KeyRecord>, state: KeyState): VirtualKey => {
  const { hmac: _hmac, creator_ref: _ref, creator, ...rest } = r;
  return {
    ...(structuredClone(rest) as Omit<VirtualKey, 'roles' | 'state' | 'creator'>),
    creator: { ...(creator ?? LEGACY_CREATOR) },
    state,
    roles: ['virtual-key'],
  };
};

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: its operations, lookups and budgets share the key store and the HMAC key; each operation is its own object inside
export function createGatewayKeysEngine(
  deps: GatewayKeysDeps,
  /** The engine's own view (`logical/gateway/`, its mount). */
  store: BarrierStore,
  opts: GatewayKeysOptions = {},
): GatewayKeysEngine {
  const defaultTtl = opts.default_ttl_seconds ?? 3600;
  const maxTtl = opts.max_ttl_seconds ?? 30 * 86400;
  if (!(defaultTtl >= 1 && defaultTtl <= maxTtl))
    throw new TypeError('gateway keys: default TTL must be 1 s to the maximum');
  const now = () => deps.clock.now();
  const iso = (ms = now()) => new Date(ms).toISOString();

  // ---------------------------------------------------------------- the HMAC key

  let hmacKey: KeyObject | undefined;

  /** The HMAC key, created on first use (in a transaction, so servers sharing storage agree on one). */
  async function key(): Promise<KeyObject> {
    if (deps.barrier.sealed) {
      hmacKey = undefined;
      throw new StrongroomError('sealed', 'Strongroom is sealed');
    }
    if (hmacKey) return hmacKey;
    let raw = await store.get('hmac-key');
    if (!raw) {
      const fresh = randomKey(32);
      raw = await store.transaction(async (tx) => {
        const existing = await tx.get('hmac-key');
        if (existing) return existing;
        await tx.put('hmac-key', fresh);
        await tx.put('decoy', Buffer.from(JSON.stringify(DECOY)));
        return fresh;
      });
    }
    hmacKey = createSecretKey(raw);
    return hmacKey;
  }

  function idOf(mac: Buffer): string {
    return `vk_${mac.subarray(0, 12).toString('hex')}`;
  }

  // a record read on a miss (written with the HMAC key), so a miss costs a read and a decryption like a hit
  const decoy = async (): Promise<Readonly<KeyRecord>> => (await store.getJson<KeyRecord>('decoy')) ?? DECOY;

  async function lookup(keyString: string, proof?: { spiffe_id?: string | undefined }) {
    if (typeof keyString !== 'string' || !keyString.startsWith(`${TOKEN_PREFIXES.virtual_key}_`))
      return undefined;
    if (!isWellFormedToken(keyString)) return undefined;
    const mac = hmacSha256(await key(), keyString);
    const id = idOf(mac);
    const found = await store.getJson<KeyRecord>(`keys/${id}`);
    const rec = found ?? (await decoy());
    // the creator token, read whatever the outcome (an orphan key and the decoy read the token store's decoy)
    const orphan = rec.creator?.orphan === true;
    const creator = await deps.tokens.lookupRef(orphan ? undefined : rec.creator_ref);
    // one comparison and one verdict, whatever made the key unusable
    const macOk = constantTimeEqual(Buffer.from(rec.hmac, 'hex'), mac);
    const live = !rec.revoked && Date.parse(rec.expires_at) > now() && (orphan || creator !== undefined);
    const bound = proof === undefined || rec.spiffe_id === undefined || rec.spiffe_id === proof.spiffe_id;
    if (!(found !== undefined && macOk && live && bound)) return undefined;
    return Object.freeze(view(rec, 'active'));
  }

  /** Whether a record's creator token lives (orphans: no read, and no need). */
  async function creatorLives(r: Readonly<KeyRecord>): Promise<boolean> {
    if (r.creator?.orphan === true || r.creator_ref === undefined) return false;
    return (await deps.tokens.lookupRef(r.creator_ref)) !== undefined;
  }

  async function viewOf(r: Readonly<KeyRecord>): Promise<VirtualKey> {
    const at = now();
    const pending = !r.revoked && Date.parse(r.expires_at) > at && r.creator?.orphan !== true;
    return view(r, stateOf(r, pending && (await creatorLives(r)), at));
  }

  async function get(id: string): Promise<VirtualKey | undefined> {
    if (!ID_RE.test(id)) return undefined;
    const r = await store.getJson<KeyRecord>(`keys/${id}`);
    return r ? viewOf(r) : undefined;
  }

  // ---------------------------------------------------------------- who may touch which key

  const keysResource = (): Resource => ({
    type: 'System',
    id: KEYS_RESOURCE,
    // scoped tokens reach only keys they own, within their providers (checked by the handlers)
    attrs: { filtered_by_scope: true },
  });

  const ownerOf = (ctx: OperationContext) => {
    const o = ctx.identity?.owner;
    return o ? { type: o.type, id: o.id, name: o.name } : { type: 'root', id: '', name: '' };
  };

  /** Whether the caller's action reaches every key, or only the keys it minted. */
  async function reachesAll(ctx: OperationContext, action: string): Promise<boolean> {
    if (!ctx.identity) return false;
    return deps.allows(ctx.identity, action, { type: 'System', id: ALL_KEYS_RESOURCE }, ctx.request);
  }

  const mine = (r: Readonly<KeyRecord>, ctx: OperationContext) => {
    const o = ownerOf(ctx);
    return r.owner.type === o.type && r.owner.id === o.id;
  };

  async function visible(ctx: OperationContext, action: string, id: string): Promise<Readonly<KeyRecord>> {
    const r = ID_RE.test(id) ? await store.getJson<KeyRecord>(`keys/${id}`) : undefined;
    // someone else's key is "not found", not "forbidden": ids of others' keys are not confirmed
    if (!r || (!mine(r, ctx) && !(await reachesAll(ctx, action))))
      throw new StrongroomError('not_found', `no virtual key ${id}`);
    return r;
  }

  /** What a scoped creator may hand out: a token scoped to providers mints keys for those providers only. */
  function creatorBound(ctx: OperationContext): KeyScope | undefined {
    const scope = ctx.identity?.scope;
    if (!scope) return undefined;
    return { providers: scope.providers ?? [] };
  }

  function ttlOf(v: string | number | undefined): number {
    if (v === undefined) return defaultTtl;
    let s: number;
    try {
      s = parseDuration(v);
    } catch (err) {
      throw bad(`ttl: ${(err as Error).message}`);
    }
    if (s < 1 || s > maxTtl)
      throw bad(`ttl must be between 1 s and ${maxTtl} s (${Math.round(maxTtl / 86400)} days)`);
    return s;
  }

  /**
   * Who the key will be bound to: the caller's token (its ref, its expiry), or nobody for an orphan
   * (which needs `gateway.key.orphan`, as Vault asks a right of orphan tokens). Throws what is missing.
   */
  async function creatorOf(
    ctx: OperationContext,
    orphan: boolean,
  ): Promise<{ creator: KeyCreator; ref?: string; until: number }> {
    const identity = ctx.identity;
    if (!identity) throw new TypeError('gateway.key.create without an identity');
    const entry = ctx.token;
    if (orphan) {
      const resource: Resource = { type: 'System', id: KEYS_RESOURCE };
      if (!(await deps.allows(identity, ORPHAN_ACTION, resource, ctx.request))) {
        throw new StrongroomError(
          'permission_denied',
          `orphan: minting a key that outlives your token needs ${ORPHAN_ACTION} on System::"${KEYS_RESOURCE}" (admin and root have it); leave orphan out for a key that ends with your token`,
        );
      }
      // still recorded (for the audit trail, and for what its caller may read while that token lives)
      const ref = entry && ctx.request.token ? deps.tokens.refOf(ctx.request.token) : undefined;
      return {
        creator: { accessor: identity.accessor, orphan: true },
        ...(ref ? { ref } : {}),
        until: Number.POSITIVE_INFINITY,
      };
    }
    if (!entry || !ctx.request.token) {
      // an SVID caller holds no token the key could end with, and an SVID's life is not the vault's to track
      throw new StrongroomError(
        'permission_denied',
        `a workload authenticated by SVID holds no token for the key to end with: ask for orphan: true (needs ${ORPHAN_ACTION}), or mint the key with a token`,
      );
    }
    const ref = deps.tokens.refOf(ctx.request.token);
    // the token this request spent (its last use, say) must still be the one we bind to, and live
    const current = await deps.tokens.lookupRef(ref);
    if (!current || current.accessor !== entry.accessor) {
      throw new StrongroomError(
        'permission_denied',
        'the token minting this key has no use left (or was just revoked): the key would be dead on arrival',
      );
    }
    return {
      creator: { accessor: entry.accessor, orphan: false },
      ref,
      until: current.expires_at === null ? Number.POSITIVE_INFINITY : Date.parse(current.expires_at),
    };
  }

  // ---------------------------------------------------------------- operations

  async function mint(ctx: OperationContext, i: api.KeyCreateRequest) {
    if (!NAME_RE.test(i.name))
      throw bad('name: letters, digits, _ . - (at most 64, starting with a letter or digit)');
    const scope = checkScope(i.scope ?? {});
    const limits = checkLimits(i.limits ?? {});
    const bound = creatorBound(ctx);
    if (bound && !scopeWithin(scope, bound)) {
      throw new StrongroomError(
        'permission_denied',
        bound.providers?.length
          ? `scope: your token is limited to providers ${bound.providers.join(', ')}; a key you mint must name providers within them`
          : 'scope: your token is scoped to vault paths, not providers: it cannot mint gateway keys',
      );
    }
    if (i.classification !== undefined && !CLASS_RE.test(i.classification))
      throw bad('classification: lower-case letters, digits, _ and - (at most 32)');
    const spiffe = i.spiffe_id === undefined ? undefined : checkSpiffeId(i.spiffe_id);
    const ttl = ttlOf(i.ttl);
    const { creator, ref, until } = await creatorOf(ctx, i.orphan === true);
    const at = now();
    // a key ends no later than the token that minted it (orphans: the key maximum only)
    const expires = Math.min(at + ttl * 1000, until);
    const granted = Math.max(0, Math.floor((expires - at) / 1000));
    const warnings =
      expires < at + ttl * 1000
        ? [
            `ttl: ${ttl} s asked, ${granted} s granted: a key expires no later than the token that minted it (${iso(until)}); mint it with a longer-lived token, or as an orphan key (orphan: true, needs ${ORPHAN_ACTION})`,
          ]
        : undefined;
    const secret = generateToken(TOKEN_PREFIXES.virtual_key);
    const mac = hmacSha256(await key(), secret);
    const id = idOf(mac);
    const rec: KeyRecord = {
      id,
      name: i.name,
      owner: ownerOf(ctx),
      created_by: ctx.identity?.display_name ?? 'unknown',
      creator,
      ...(ref ? { creator_ref: ref } : {}),
      scope,
      limits,
      created_at: iso(at),
      expires_at: iso(expires),
      ...(spiffe ? { spiffe_id: spiffe } : {}),
      ...(i.classification ? { classification: i.classification } : {}),
      revoked: false,
      hmac: mac.toString('hex'),
    };
    await store.transaction(async (tx) => {
      // 96 bits of HMAC: a collision is not expected, but never overwrite a key
      if (await tx.get(`keys/${id}`)) throw new StrongroomError('internal', 'key id collision: try again');
      await tx.put(`keys/${id}`, Buffer.from(JSON.stringify(rec)));
    });
    // the key string is returned here, once; only its HMAC is stored
    return {
      virtual_key: secret,
      key: view(rec, 'active'),
      ttl: granted,
      ...(warnings ? { warnings } : {}),
    };
  }

  const create = implement(api.GatewayKeyCreate, {
    action: 'gateway.key.manage',
    auth: 'token',
    resource: keysResource,
    handle: (ctx, i) => mint(ctx, i),
  });

  const list = implement(api.GatewayKeyList, {
    action: 'gateway.key.read',
    auth: 'token',
    resource: keysResource,
    async handle(ctx, i) {
      const all = await reachesAll(ctx, 'gateway.key.read');
      const at = now();
      const out: VirtualKey[] = [];
      for (const p of await store.list('keys/')) {
        const r = await store.getJson<KeyRecord>(p);
        if (!r || (!all && !mine(r, ctx))) continue;
        if (!i.include_inactive && (r.revoked || Date.parse(r.expires_at) <= at)) continue;
        const v = await viewOf(r);
        if (!i.include_inactive && v.state !== 'active') continue;
        out.push(v);
      }
      out.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
      return { keys: out };
    },
  });

  const read = implement(api.GatewayKeyRead, {
    action: 'gateway.key.read',
    auth: 'token',
    resource: keysResource,
    async handle(ctx, i) {
      return { key: await viewOf(await visible(ctx, 'gateway.key.read', i.id)) };
    },
  });

  /** Revokes a key (idempotent); the next lookup refuses it. */
  async function markRevoked(id: string) {
    return store.transaction(async (tx) => {
      const r = await tx.getJson<KeyRecord>(`keys/${id}`);
      if (!r) throw new StrongroomError('not_found', `no virtual key ${id}`);
      if (r.revoked) return r;
      const next: KeyRecord = { ...structuredClone(r as KeyRecord), revoked: true, revoked_at: iso() };
      await tx.put(`keys/${id}`, Buffer.from(JSON.stringify(next)));
      return next;
    });
  }

  const revoke = implement(api.GatewayKeyRevoke, {
    action: 'gateway.key.manage',
    auth: 'token',
    resource: keysResource,
    async handle(ctx, i) {
      await visible(ctx, 'gateway.key.manage', i.id);
      const rec = await markRevoked(i.id);
      // markRevoked sets the time; a key revoked by a version that did not record it shows its last change
      return { revoked: i.id, revoked_at: rec.revoked_at ?? rec.updated_at ?? rec.created_at };
    },
  });

  const update = implement(api.GatewayKeyUpdate, {
    action: 'gateway.key.manage',
    auth: 'token',
    resource: keysResource,
    async handle(ctx, i) {
      await visible(ctx, 'gateway.key.manage', i.id);
      if (i.name !== undefined && !NAME_RE.test(i.name))
        throw bad('name: letters, digits, _ . - (at most 64)');
      const scope = i.scope === undefined ? undefined : checkScope(i.scope);
      const limits = i.limits === undefined ? undefined : checkLimits(i.limits);
      if (i.classification !== undefined && !CLASS_RE.test(i.classification))
        throw bad('classification: lower-case letters, digits, _ and - (at most 32)');
      const spiffe = i.spiffe_id === undefined ? undefined : checkSpiffeId(i.spiffe_id);
      const ttl = i.ttl === undefined ? undefined : ttlOf(i.ttl);
      const narrower = (what: string) =>
        new StrongroomError(
          'permission_denied',
          `${what}: an update may only narrow a key; mint a new key to widen it`,
        );
      const next = await store.transaction(async (tx) => {
        const r = await tx.getJson<KeyRecord>(`keys/${i.id}`);
        if (!r) throw new StrongroomError('not_found', `no virtual key ${i.id}`);
        if (r.revoked) throw new StrongroomError('invalid_value', `virtual key ${i.id} is revoked`);
        const cur = structuredClone(r) as KeyRecord;
        // fields given replace the key's; fields left out stay as they are
        const nextScope = scope ? { ...cur.scope, ...scope } : undefined;
        const nextLimits = limits ? { ...cur.limits, ...limits } : undefined;
        if (nextScope && !scopeWithin(nextScope, cur.scope)) throw narrower('scope');
        if (nextLimits && !limitsWithin(nextLimits, cur.limits)) throw narrower('limits');
        if (spiffe !== undefined && cur.spiffe_id !== undefined && spiffe !== cur.spiffe_id)
          throw narrower('spiffe_id');
        let expires = cur.expires_at;
        if (ttl !== undefined) {
          const at = now() + ttl * 1000;
          if (at > Date.parse(cur.expires_at)) throw narrower('ttl');
          expires = iso(at);
        }
        const out: KeyRecord = {
          ...cur,
          ...(i.name !== undefined ? { name: i.name } : {}),
          ...(nextScope ? { scope: nextScope } : {}),
          ...(nextLimits ? { limits: nextLimits } : {}),
          ...(spiffe !== undefined ? { spiffe_id: spiffe } : {}),
          ...(i.classification !== undefined ? { classification: i.classification } : {}),
          expires_at: expires,
          updated_at: iso(),
        };
        await tx.put(`keys/${i.id}`, Buffer.from(JSON.stringify(out)));
        return out;
      });
      return { key: await viewOf(next) };
    },
  });

  return {
    operations: [create, list, read, revoke, update] as AnyOperation[],
    lookup,
    get,
    async revoke(id: string) {
      await markRevoked(id);
    },
    async mint(ctx, i) {
      const r = await mint(ctx, i);
      return { virtual_key: r.virtual_key, id: r.key.id, ttl: r.ttl };
    },
    async idsNamed(name) {
      const out: string[] = [];
      for (const p of await store.list('keys/')) {
        const r = await store.getJson<KeyRecord>(p);
        if (r && r.name === name && !r.revoked) out.push(r.id);
      }
      return out;
    },
    async live(id: string) {
      return (await get(id))?.state === 'active';
    },
    async reader(k) {
      const r = ID_RE.test(k.id) ? await store.getJson<KeyRecord>(`keys/${k.id}`) : undefined;
      const entry = r?.creator_ref === undefined ? undefined : await deps.tokens.lookupRef(r.creator_ref);
      return entry ? identityOf(entry) : undefined;
    },
    budgets: createBudgets(
      store,
      deps.clock,
      opts.budgets_write_behind_ms ? { writeBehindMs: opts.budgets_write_behind_ms } : {},
    ),
    forget() {
      hmacKey = undefined;
    },
  };
}

/**
 * The core module of virtual keys: registers the operations and hands the
 * engine to `bind` (the gateway server's key lookups and budgets).
 */
export function gatewayKeysModule(
  opts: GatewayKeysOptions = {},
  bind?: (engine: GatewayKeysEngine) => void,
): VaultModule<GatewayKeysDeps, BarrierStore> {
  let engine: GatewayKeysEngine | undefined;
  return {
    name: 'gateway-keys',
    mount: PREFIX,
    operations(deps, store) {
      engine = createGatewayKeysEngine(deps, store, opts);
      bind?.(engine);
      return engine.operations;
    },
    // budgets counted in memory are written before the barrier seals for good
    close: async () => engine?.budgets.close?.(),
  };
}
