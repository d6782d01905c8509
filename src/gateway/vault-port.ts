import { type Core, identityOf } from '../core/core.ts';
import type { Identity, RequestInfo, Resource } from '../core/types.ts';
import type { MetricsRegistry } from '../lib/metrics.ts';
import type { ProviderKeys } from './keys.ts';
import type { BudgetLimits, Budgets, Caller, Reservation, Usage } from './types.ts';

/**
 * What the AI gateway needs from the vault, in one place, so the gateway runs
 * on the vault's core in the same process (`localVault`, the default) or in
 * front of a vault elsewhere, over mTLS with the gateway's own SVID
 * (`remoteVault` in remote-vault.ts; docs/gateway-remote.md). The gateway
 * makes every decision through this port and keeps none of its own: who a
 * credential is, whether Cedar allows the call, whether a budget has room,
 * which key to inject, and where the call is recorded.
 */
export interface GatewayVault {
  /** Whether calls must be refused at once because the vault is sealed (as last known). */
  sealed(): boolean;
  /** For health checks: whether the vault is usable now (a remote one is asked, at most once a second). */
  health(): Promise<'ok' | 'sealed' | 'vault_unavailable'>;
  now(): number;
  /** The gateway's metrics (the vault's own registry in process; the gateway's when remote). */
  readonly metrics: MetricsRegistry;
  /**
   * Who is calling: the X.509-SVID chain presented over mTLS (leaf first), and the credential sent as
   * the API key (a token, a virtual key `srv_…` or a JWT-SVID). A token or JWT-SVID that is not valid
   * throws (invalid_token, invalid_svid); an unknown, revoked or expired virtual key gives no `key`.
   */
  authenticate(input: { credential?: string; chain?: Buffer[] }, info: RequestInfo): Promise<Authentication>;
  /** Cedar `gateway.invoke` for each resource (one decision per resource, in order); any error is a deny. */
  authorize(identity: Identity, resources: readonly Resource[], context: InvokeContext): Promise<Decision[]>;
  /**
   * Appends the gateway's records (one per call, plus anomaly alerts) to the vault's audit log; with
   * `settle`, the call's reservation is settled from its usage (released without one) first, in the same
   * round trip to a remote vault.
   */
  audit(entry: GatewayAuditEntry, settle?: Settlement): Promise<void>;
  /** Atomic budgets shared through the vault's storage. */
  readonly budgets: Budgets;
  /** Revokes a caller's credential (after an anomaly). */
  revoke(caller: Caller): Promise<void>;
  /** Provider keys, read for injection and kept in memory only. */
  readonly keys: Pick<ProviderKeys, 'get'>;
  /** Whether any candidate is exactly the value of a secret in the vault (matched by fingerprint). */
  holdsAny(candidates: readonly string[]): Promise<boolean>;
  close(): Promise<void>;
}

export interface Authentication {
  /** The workload proven by the mTLS client certificate, if one was presented and workload identity is on. */
  svid?: Identity;
  /** What the API key credential is. */
  credential?:
    | { kind: 'token'; identity: Identity }
    | { kind: 'workload'; identity: Identity }
    | { kind: 'virtual_key'; key: VirtualKeyView | undefined };
}

/** A virtual key as the gateway sees it (src/engines/gateway/keys.ts). */
export interface VirtualKeyView {
  id: string;
  name: string;
  scope: { providers?: string[]; models?: string[] };
  limits: BudgetLimits;
  spiffe_id?: string | null;
  classification?: string | null;
  /** Roles the key's calls are authorized with (Cedar principal's roles). */
  roles?: string[];
}

export interface InvokeContext {
  client_address: string;
  classification: string;
  estimated_tokens: number;
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

/** What a call used, for its reservation: `usage` absent gives the whole reservation back. */
export interface Settlement {
  reservation: Reservation;
  usage?: Usage;
  costUsd: number;
}

/** Settles or releases a reservation, as `Settlement` says. */
export function settle(s: Settlement): Promise<void> {
  return s.usage ? s.reservation.settle(s.usage, s.costUsd) : s.reservation.release();
}

/** A gateway record for the audit log (the core's entry shape); the time is the vault's. */
export type GatewayAuditEntry = Omit<Parameters<Core['audit']>[0], 'time'>;

/** The vault's engines the gateway uses, in this process. */
export interface LocalEngines {
  keys: ProviderKeys;
  virtualKeys: {
    lookup(key: string): Promise<VirtualKeyView | undefined>;
    revoke(id: string): Promise<void>;
  };
  budgets: Budgets;
}

/** The gateway on the vault's core in this process (decision 0006). */
export function localVault(core: Core, engines: LocalEngines): GatewayVault {
  return {
    sealed: () => core.barrier.sealed,
    health: async () => (core.barrier.sealed ? 'sealed' : 'ok'),
    now: () => core.clock.now(),
    metrics: core.metrics,
    async authenticate({ credential, chain }, info) {
      const out: Authentication = {};
      if (chain?.length && core.workloadAuth) {
        out.svid = await core.workloadAuth({ ...info, token: undefined, peer_certificates: chain });
      }
      if (credential === undefined) return out;
      if (credential.startsWith('srv_')) {
        out.credential = { kind: 'virtual_key', key: await engines.virtualKeys.lookup(credential) };
      } else if (credential.startsWith('eyJ')) {
        if (!core.workloadAuth) return out;
        const identity = await core.workloadAuth({
          ...info,
          token: credential,
          peer_certificates: undefined,
        });
        if (identity) out.credential = { kind: 'workload', identity };
      } else {
        out.credential = { kind: 'token', identity: identityOf(await core.tokens.lookup(credential)) };
      }
      return out;
    },
    async authorize(identity, resources, context) {
      const out: Decision[] = [];
      for (const resource of resources) {
        try {
          out.push(
            await core.policies.authorize(identity, 'gateway.invoke', resource, {
              client_address: context.client_address,
              now: core.clock.now(),
              classification: context.classification,
              estimated_tokens: context.estimated_tokens,
            } as Parameters<Core['policies']['authorize']>[3]),
          );
        } catch {
          // an evaluation error is a deny
          out.push({ allowed: false, reason: 'policy evaluation failed' });
        }
      }
      return out;
    },
    async audit(entry, s) {
      if (s) await settle(s);
      await core.audit(entry);
    },
    budgets: engines.budgets,
    async revoke(caller) {
      if (caller.kind === 'token') await core.tokens.revokeAccessor(caller.id);
      else if (caller.kind === 'virtual_key') await engines.virtualKeys.revoke(caller.id);
    },
    keys: engines.keys,
    async holdsAny(candidates) {
      for (const c of candidates) if (engines.keys.isVaultValue(c)) return true;
      return false;
    },
    async close() {},
  };
}
