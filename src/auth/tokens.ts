import { createSecretKey, type KeyObject } from 'node:crypto';
import type { BarrierStore, BarrierWriter } from '../barrier/barrier.ts';
import { hmacSha256, randomId, randomKey } from '../crypto/random.ts';
import { generateToken, isWellFormedToken, TOKEN_PREFIXES } from '../crypto/token.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';

/**
 * The token store. Only an HMAC-SHA256 of each token (keyed by a
 * per-installation key kept in the barrier) is ever stored, so a copy of the
 * storage cannot be used to log in. The accessor is a non-secret handle used to
 * look up or revoke a token without knowing it.
 */
export interface TokenEntry {
  accessor: string;
  policies: string[];
  display_name: string;
  created_at: string;
  /** ISO time, or null for a token that does not expire (only root tokens). */
  expires_at: string | null;
  meta: Record<string, string>;
}

export interface CreateTokenOptions {
  policies: string[];
  display_name: string;
  ttl_seconds?: number;
  meta?: Record<string, string>;
}

export interface TokenStore {
  /** Loads the HMAC key (after unseal) — creating it on first use. */
  load(): Promise<void>;
  /** Forgets the HMAC key (on seal). */
  unload(): void;
  create(opts: CreateTokenOptions, tx?: BarrierWriter): Promise<{ token: string; entry: TokenEntry }>;
  /** The entry for a presented token; throws `invalid_token` if it is unknown, expired or revoked. */
  lookup(token: string): Promise<TokenEntry>;
  revokeAccessor(accessor: string): Promise<boolean>;
  list(): Promise<TokenEntry[]>;
}

const HMAC_KEY_PATH = 'hmac-key';

export function createTokenStore(store: BarrierStore, clock: Clock): TokenStore {
  let hmacKey: KeyObject | undefined;

  // HMAC(token) is deterministic: remembering it saves ~4 µs per request.
  // Revocation and expiry are still checked against the stored entry every time.
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

  function invalid(): StrongroomError {
    return new StrongroomError(
      'invalid_token',
      'the token is invalid, expired or revoked; log in again or ask for a new token',
    );
  }

  async function readEntry(r: BarrierWriter, id: string): Promise<TokenEntry | undefined> {
    const raw = await r.get(`id/${id}`);
    return raw ? (JSON.parse(raw.toString('utf8')) as TokenEntry) : undefined;
  }

  return {
    async load() {
      const raw = await store.transaction(async (tx) => {
        const existing = await tx.get(HMAC_KEY_PATH);
        if (existing) return existing;
        const fresh = randomKey();
        await tx.put(HMAC_KEY_PATH, fresh);
        return fresh;
      });
      hmacKey = createSecretKey(raw);
      raw.fill(0);
    },
    unload() {
      hmacKey = undefined;
      ids.clear();
    },
    async create(opts, tx) {
      const token = generateToken(TOKEN_PREFIXES.root);
      const now = clock.now();
      const entry: TokenEntry = {
        accessor: randomId(),
        policies: [...opts.policies],
        display_name: opts.display_name,
        created_at: new Date(now).toISOString(),
        expires_at:
          opts.ttl_seconds === undefined ? null : new Date(now + opts.ttl_seconds * 1000).toISOString(),
        meta: { ...(opts.meta ?? {}) },
      };
      const id = idFor(token);
      const write = async (w: BarrierWriter) => {
        await w.put(`id/${id}`, Buffer.from(JSON.stringify(entry)));
        await w.put(`accessor/${entry.accessor}`, Buffer.from(id));
      };
      if (tx) await write(tx);
      else await store.transaction(write);
      return { token, entry };
    },
    async lookup(token) {
      if (!isWellFormedToken(token)) throw invalid();
      const entry = await readEntry(store, idFor(token));
      if (!entry) throw invalid();
      if (entry.expires_at !== null && Date.parse(entry.expires_at) <= clock.now()) throw invalid();
      return entry;
    },
    async revokeAccessor(accessor) {
      return store.transaction(async (tx) => {
        const id = await tx.get(`accessor/${accessor}`);
        if (!id) return false;
        await tx.delete(`id/${id.toString('utf8')}`);
        await tx.delete(`accessor/${accessor}`);
        return true;
      });
    },
    async list() {
      const out: TokenEntry[] = [];
      for (const path of await store.list('id/')) {
        const e = await readEntry(store, path.slice(3));
        if (e) out.push(e);
      }
      return out;
    },
  };
}
