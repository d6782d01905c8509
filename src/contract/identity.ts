/**
 * The shared contract: who a caller is. A leaf (imports nothing of ours but
 * other contract files), so every part may depend on it without a cycle.
 */
import type { Scope } from './scope.ts';

/** Who is making a request, once authenticated. */
export interface Identity {
  /** 'token': a Strongroom token; 'workload': an X.509- or JWT-SVID (no token entry exists). */
  kind: 'token' | 'workload';
  accessor: string;
  display_name: string;
  /** Roles and custom policy names the token carries ('root' for a root token). */
  policies: readonly string[];
  /** Who the token was issued to. */
  owner: Readonly<Owner>;
  /** Limits on what the token can reach, or null. */
  scope: Readonly<Scope> | null;
  /** Whether the holder proved a second factor when the token was issued. */
  mfa: boolean;
}

export interface Owner {
  type: 'root' | 'user' | 'app' | 'token' | 'workload';
  /** Stable id (user id, app client id, or the accessor of a standalone token). */
  id: string;
  name: string;
}

/** A token as stored (its HMAC is the key; the token itself is never stored). */
export interface TokenEntry {
  accessor: string;
  policies: string[];
  display_name: string;
  owner: Owner;
  scope: Scope | null;
  mfa: boolean;
  created_at: string;
  /** ISO time, or null for a token that never expires (root tokens only). */
  expires_at: string | null;
  /** No renewal can go past this (explicit_max_ttl, or the parent's own limit). */
  max_expires_at: string | null;
  /** The TTL a renewal grants by default, in seconds. */
  ttl: number;
  renewable: boolean;
  /** 0: unlimited; otherwise the uses left. */
  num_uses: number;
  parent: string | null;
  meta: Record<string, string>;
}

/** The identity a token entry gives its holder. */
export function identityOf(entry: TokenEntry): Identity {
  return {
    kind: 'token',
    accessor: entry.accessor,
    display_name: entry.display_name,
    policies: entry.policies,
    owner: entry.owner,
    scope: entry.scope,
    mfa: entry.mfa,
  };
}
