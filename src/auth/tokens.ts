import type { KeyObject } from 'node:crypto';
import type { BarrierStore, BarrierWriter } from '../barrier/barrier.ts';
import { loadOrCreateKey } from '../barrier/stored-keys.ts';
import type { Owner, TokenEntry } from '../contract/identity.ts';
import { type Scope, scopeWithin } from '../contract/scope.ts';
import { hmacSha256, randomId } from '../crypto/random.ts';
import { generateToken, isWellFormedToken, TOKEN_PREFIXES } from '../crypto/token.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';

/**
 * The token store. Only an HMAC-SHA256 of each token (keyed by a
 * per-installation key kept in the barrier) is stored, so a copy of storage
 * cannot be used to log in. The accessor is a non-secret handle used to look
 * up or revoke a token without knowing it.
 *
 * Layout in its view:
 *   hmac-key                      the HMAC key
 *   id/<hmac>                     the token entry
 *   accessor/<accessor>           -> hmac
 *   children/<parent>/<child>     parent/child links (revoking a parent revokes the tree)
 *   owner/<type>/<id>/<accessor>  tokens by owner (revoked when a user or app is removed)
 *   decoy                         an expired entry, read by `lookupRef` when the entry is gone
 */

export interface CreateTokenOptions {
  policies: string[];
  display_name: string;
  owner?: Owner;
  /** Seconds; default 1 hour. Root tokens may pass null for no expiry. */
  ttl?: number | null;
  explicit_max_ttl?: number;
  renewable?: boolean;
  num_uses?: number;
  scope?: Scope | null;
  mfa?: boolean;
  meta?: Record<string, string>;
  /** The token creating this one: the new token can hold no more than it. */
  parent?: TokenEntry | null;
}

const DEFAULT_TTL = 3600;
/** The longest any token may live, renewals included (32 days, as Vault's default max TTL). */
const MAX_TTL = 32 * 86400;

export interface TokenStore {
  /** Loads the HMAC key (after unseal), creating it on first use. */
  load(): Promise<void>;
  /** Forgets the HMAC key (on seal). */
  unload(): void;
  create(opts: CreateTokenOptions): Promise<{ token: string; entry: TokenEntry }>;
  /**
   * The entry for a presented token, counting one use; throws `invalid_token`
   * if it is unknown, expired, used up or revoked.
   */
  use(token: string): Promise<TokenEntry>;
  /** The entry for a token without counting a use. */
  lookup(token: string): Promise<TokenEntry>;
  lookupAccessor(accessor: string): Promise<TokenEntry | undefined>;
  /**
   * A stable, server-side reference to a presented token's entry, for `lookupRef`: its storage id (an
   * HMAC of the token, never the token; not its accessor). Something a token minted (a gateway
   * virtual key) keeps it, to check in one read that the token still lives. Never shown to clients.
   */
  refOf(token: string): string;
  /**
   * The live entry `ref` (from `refOf`) names, or undefined when the token was revoked (or used up) or
   * has expired. One storage read and one decryption whatever the outcome, `undefined` as `ref`
   * included (a missing entry, and no ref, read the store's decoy instead), so a caller checking a
   * credential's creator reveals nothing through its timing.
   */
  lookupRef(ref: string | undefined): Promise<TokenEntry | undefined>;
  renew(accessor: string, increment?: number): Promise<TokenEntry>;
  /** Revokes a token and every token descended from it; returns how many were revoked. */
  revokeAccessor(accessor: string): Promise<number>;
  revokeToken(token: string): Promise<number>;
  /** Revokes every token issued to an owner (a deleted user, a revoked app). */
  revokeOwner(type: Owner['type'], id: string): Promise<number>;
  list(): Promise<TokenEntry[]>;
}

const HMAC_KEY_PATH = 'hmac-key';
const DECOY_PATH = 'decoy';
const REF_RE = /^[0-9a-f]{64}$/;
/** Shaped like a real entry (so reading it costs what reading one does), and expired. */
const DECOY: TokenEntry = {
  accessor: 'decoy-decoy-decoy-decoy',
  policies: ['decoy'],
  display_name: 'decoy',
  owner: { type: 'token', id: 'decoy-decoy-decoy-decoy', name: 'decoy' },
  scope: null,
  mfa: false,
  created_at: new Date(0).toISOString(),
  expires_at: new Date(0).toISOString(),
  max_expires_at: new Date(0).toISOString(),
  ttl: 3600,
  renewable: false,
  num_uses: 0,
  parent: null,
  meta: {},
};
const enc = (v: unknown) => Buffer.from(JSON.stringify(v));

function invalid(): StrongroomError {
  return new StrongroomError(
    'invalid_token',
    'the token is invalid, expired or revoked; log in again or ask for a new token',
  );
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: a closure over the token store's barrier view, HMAC key and caches; each method is short and they share that state
export function createTokenStore(store: BarrierStore, clock: Clock): TokenStore {
  let hmacKey: KeyObject | undefined;
  // HMAC(token) is deterministic: remembering it saves ~4 µs per request.
  // Revocation, expiry and uses are still checked against the stored entry every time.
  const ids = new Map<string, string>();
  const MAX_IDS = 10_000;

  function idFor(token: string): string {
    if (!hmacKey) throw new StrongroomError('sealed', 'Strongroom is sealed');
    let id = ids.get(token);
    if (id === undefined) {
      id = hmacSha256(hmacKey, token).toString('hex');
      if (ids.size >= MAX_IDS) ids.clear();
      ids.set(token, id);
    }
    return id;
  }

  /** Frozen (shared through the read cache): spread it to change it. */
  async function readEntry(r: BarrierWriter, id: string): Promise<TokenEntry | undefined> {
    return (await r.getJson<TokenEntry>(`id/${id}`)) as TokenEntry | undefined;
  }

  function live(e: TokenEntry | undefined): e is TokenEntry {
    return e !== undefined && (e.expires_at === null || Date.parse(e.expires_at) > clock.now());
  }

  async function revokeTree(tx: BarrierWriter, accessor: string): Promise<number> {
    const id = await tx.get(`accessor/${accessor}`);
    let n = 0;
    for (const path of await tx.list(`children/${accessor}/`)) {
      n += await revokeTree(tx, path.slice(path.lastIndexOf('/') + 1));
      await tx.delete(path);
    }
    if (!id) return n;
    const entry = await readEntry(tx, id.toString('utf8'));
    await tx.delete(`id/${id.toString('utf8')}`);
    await tx.delete(`accessor/${accessor}`);
    if (entry) {
      await tx.delete(`owner/${entry.owner.type}/${entry.owner.id}/${accessor}`);
      if (entry.parent) await tx.delete(`children/${entry.parent}/${accessor}`);
    }
    return n + 1;
  }

  const iso = (ms: number) => new Date(ms).toISOString();

  const self: TokenStore = {
    async load() {
      hmacKey = await loadOrCreateKey(store, HMAC_KEY_PATH);
      if (!(await store.get(DECOY_PATH))) {
        await store.transaction(async (tx) => {
          if (!(await tx.get(DECOY_PATH))) await tx.put(DECOY_PATH, enc(DECOY));
        });
      }
    },
    unload() {
      hmacKey = undefined;
      ids.clear();
    },
    async create(opts) {
      const now = clock.now();
      const parent = opts.parent ?? null;
      const policies = [...new Set(opts.policies)].sort();
      const scope = opts.scope ?? null;
      if (parent && !parent.policies.includes('root')) {
        const extra = policies.filter((p) => !parent.policies.includes(p));
        if (extra.length) {
          throw new StrongroomError(
            'permission_denied',
            `a token cannot grant roles or policies its creator does not hold: ${extra.join(', ')}`,
          );
        }
      }
      if (parent) {
        if (!scopeWithin(scope, parent.scope)) {
          throw new StrongroomError(
            'permission_denied',
            "a token cannot reach further than its creator: its scope must lie within the parent token's scope",
          );
        }
      }
      // the app role reads "the secrets in its scope": without a scope it would read everything
      if (policies.includes('app') && scope === null) {
        throw new StrongroomError(
          'validation_failed',
          'a token with the app role needs a scope (e.g. {"paths": ["myproj/prod"]})',
        );
      }
      const ttl = opts.ttl === null ? null : (opts.ttl ?? DEFAULT_TTL);
      if (ttl === null && !policies.includes('root'))
        throw new TypeError('only root tokens may live forever');
      // lifetime: never beyond the global maximum, the explicit max, or the parent's own expiry/limit
      const limits = [
        ttl === null ? Number.POSITIVE_INFINITY : now + MAX_TTL * 1000,
        opts.explicit_max_ttl === undefined ? Number.POSITIVE_INFINITY : now + opts.explicit_max_ttl * 1000,
        parent?.max_expires_at ? Date.parse(parent.max_expires_at) : Number.POSITIVE_INFINITY,
        parent?.expires_at ? Date.parse(parent.expires_at) : Number.POSITIVE_INFINITY,
      ];
      const max = Math.min(...limits);
      const expires = ttl === null ? max : Math.min(now + ttl * 1000, max);
      if (
        parent &&
        parent.num_uses > 0 &&
        (opts.num_uses === undefined || opts.num_uses === 0 || opts.num_uses > parent.num_uses)
      ) {
        throw new StrongroomError(
          'permission_denied',
          'a token with limited uses can only create tokens with no more uses than it has left',
        );
      }
      const token = generateToken(TOKEN_PREFIXES.root);
      const accessor = randomId();
      const entry: TokenEntry = {
        accessor,
        policies,
        display_name: opts.display_name,
        owner: opts.owner ?? { type: 'token', id: accessor, name: opts.display_name },
        scope,
        mfa: opts.mfa ?? parent?.mfa ?? false,
        created_at: iso(now),
        expires_at: Number.isFinite(expires) ? iso(expires) : null,
        max_expires_at: Number.isFinite(max) ? iso(max) : null,
        ttl: ttl ?? 0,
        renewable: opts.renewable ?? true,
        num_uses: opts.num_uses ?? 0,
        parent: parent?.accessor ?? null,
        meta: { ...(opts.meta ?? {}) },
      };
      const id = idFor(token);
      await store.transaction(async (tx) => {
        if (parent && !(await tx.get(`accessor/${parent.accessor}`))) throw invalid();
        await tx.put(`id/${id}`, enc(entry));
        await tx.put(`accessor/${accessor}`, Buffer.from(id));
        await tx.put(`owner/${entry.owner.type}/${entry.owner.id}/${accessor}`, Buffer.from('1'));
        if (parent) await tx.put(`children/${parent.accessor}/${accessor}`, Buffer.from('1'));
      });
      return { token, entry };
    },
    async lookup(token) {
      if (!isWellFormedToken(token)) throw invalid();
      const entry = await readEntry(store, idFor(token));
      if (!live(entry)) throw invalid();
      return entry;
    },
    async use(token) {
      const entry = await self.lookup(token);
      if (entry.num_uses === 0) return entry;
      // a limited-use token is counted down in a serializable transaction, so
      // N uses succeed exactly N times however many requests race
      const id = idFor(token);
      return store.transaction(async (tx) => {
        const current = await readEntry(tx, id);
        if (!live(current)) throw invalid();
        if (current.num_uses === 1) {
          await revokeTree(tx, current.accessor);
          return { ...current, num_uses: 0 };
        }
        const next = { ...current, num_uses: current.num_uses - 1 };
        await tx.put(`id/${id}`, enc(next));
        return next;
      });
    },
    async lookupAccessor(accessor) {
      const id = await store.get(`accessor/${accessor}`);
      if (!id) return undefined;
      const e = await readEntry(store, id.toString('utf8'));
      return live(e) ? e : undefined;
    },
    refOf(token) {
      if (!isWellFormedToken(token)) throw invalid();
      return idFor(token);
    },
    async lookupRef(ref) {
      const found = ref !== undefined && REF_RE.test(ref) ? await readEntry(store, ref) : undefined;
      // a revoked token (or no ref) reads the decoy: the same read and decryption as a live one
      const entry = found ?? (await store.getJson<TokenEntry>(DECOY_PATH));
      return found !== undefined && live(entry) ? found : undefined;
    },
    async renew(accessor, increment) {
      return store.transaction(async (tx) => {
        const id = await tx.get(`accessor/${accessor}`);
        const entry = id ? await readEntry(tx, id.toString('utf8')) : undefined;
        if (!live(entry)) throw invalid();
        if (!entry.renewable || entry.expires_at === null) {
          throw new StrongroomError('bad_request', 'this token is not renewable');
        }
        const now = clock.now();
        let limit = entry.max_expires_at ? Date.parse(entry.max_expires_at) : Number.POSITIVE_INFINITY;
        if (entry.parent) {
          const pid = await tx.get(`accessor/${entry.parent}`);
          const parent = pid ? await readEntry(tx, pid.toString('utf8')) : undefined;
          if (!live(parent)) throw invalid();
          if (parent.expires_at) limit = Math.min(limit, Date.parse(parent.expires_at));
        }
        const wanted = now + (increment ?? entry.ttl) * 1000;
        const next = { ...entry, expires_at: iso(Math.min(wanted, limit)) };
        await tx.put(`id/${id!.toString('utf8')}`, enc(next));
        return next;
      });
    },
    revokeAccessor(accessor) {
      return store.transaction((tx) => revokeTree(tx, accessor));
    },
    async revokeToken(token) {
      if (!isWellFormedToken(token)) return 0;
      const entry = await readEntry(store, idFor(token));
      return entry ? self.revokeAccessor(entry.accessor) : 0;
    },
    async revokeOwner(type, ownerId) {
      return store.transaction(async (tx) => {
        let n = 0;
        for (const path of await tx.list(`owner/${type}/${ownerId}/`)) {
          n += await revokeTree(tx, path.slice(path.lastIndexOf('/') + 1));
        }
        return n;
      });
    },
    async list() {
      const out: TokenEntry[] = [];
      for (const path of await store.list('id/')) {
        const e = await readEntry(store, path.slice(3));
        if (live(e)) out.push(e);
      }
      return out;
    },
  };
  return self;
}
