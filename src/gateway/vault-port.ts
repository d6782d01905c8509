import type { Identity } from '../contract/identity.ts';
import type { RequestInfo, Resource } from '../contract/operation.ts';
import type { Core } from '../core/core.ts';
import type { MetricsRegistry } from '../lib/metrics.ts';
import type { ProviderKeys } from './provider-keys.ts';
import type { BudgetLimits, Caller, Reservation, SessionRef, Usage } from './types.ts';

/**
 * What the AI gateway needs from the vault, in one place, so the gateway runs
 * on the vault's core in the same process (`localVault`, the default) or in
 * front of a vault elsewhere, over mTLS with the gateway's own SVID
 * (`remoteVault` in remote-vault.ts; docs/gateway-remote.md). The gateway
 * makes every decision through this port and keeps none of its own: who a
 * credential is, whether Cedar allows the call, whether a budget has room,
 * which key to inject, and where the call is recorded.
 *
 * Every question about a caller after `authenticate` takes the `Session` it
 * returned, never an identity the gateway describes: the vault derived the
 * session itself from the credential the caller presented (issue 12 item 13),
 * and a remote vault hands it over sealed, so a gateway can neither make one
 * up nor alter one.
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
   * the API key (a token, a virtual key `srv_…` or a JWT-SVID), through the core pipeline's own
   * authentication step (a limited-use token spends one use per call). Throws `unauthenticated`,
   * `invalid_token` or `invalid_svid` when they do not name a caller; with `requireSvid`, also when no
   * X.509-SVID was presented.
   */
  authenticate(input: AuthenticateInput, info: RequestInfo): Promise<Session>;
  /**
   * `gateway.invoke` for each resource (one decision per resource, in order): a virtual key's own
   * scope (providers, model globs), a token's provider scope, then Cedar; any error is a deny.
   */
  authorize(session: Session, resources: readonly Resource[], context: InvokeContext): Promise<Decision[]>;
  /**
   * Whether any candidate is exactly the value of a secret in the vault (matched by fingerprint). A
   * value the caller may not read means the value reached someone it should not have: the vault
   * revokes the caller's credential and records an alert (`compromised`), so no caller can test more
   * than one right guess about values outside its reach (docs/decisions/0010-firewall-oracle.md).
   */
  holds(session: Session, candidates: readonly string[], info: RequestInfo): Promise<HoldsAnswer>;
  /**
   * Admits a call that passed every check, before anything is spent: reserves its upper bound from
   * every budget subject of the caller (all or none; throws `rate_limited`), then appends `record`
   * (the call's request entry) to the audit log. Throws `audit_unavailable` (after giving the
   * reservation back) when no audit sink took the record: no upstream call may then be made.
   */
  admit(
    session: Session,
    record: GatewayAuditEntry,
    reserve?: ReserveRequest,
  ): Promise<Reservation | undefined>;
  /**
   * Appends the gateway's records (one per call, plus anomaly alerts) to the vault's audit log; with
   * `settle`, the call's reservation is settled from its usage (released without one) first, in the same
   * round trip to a remote vault. With `session`, the record's actor is the session's (the vault's word).
   */
  audit(entry: GatewayAuditEntry, opts?: { settle?: Settlement; session?: Session }): Promise<void>;
  /** Revokes the credential of a session (after an anomaly); recorded with the reason. */
  revoke(session: Session, reason: string): Promise<void>;
  /**
   * For open streams: whether each session's credential is still valid (not revoked or expired; a
   * virtual key's creator still live). A session the vault cannot vouch for is `false`.
   */
  live(sessions: readonly Session[]): Promise<boolean[]>;
  /** Provider keys, read for injection and kept in memory only. */
  readonly keys: Pick<ProviderKeys, 'get'>;
  close(): Promise<void>;
}

export interface AuthenticateInput {
  credential?: string;
  chain?: Buffer[];
  /** The gateway's listener requires a client certificate (`client_certificates: require`). */
  requireSvid?: boolean;
}

/** Who is calling, as the vault established it: what the gateway may read of it, and an opaque handle. */
export interface Session extends SessionRef {
  readonly caller: Caller;
  /** The Cedar principal of the call. */
  readonly identity: Identity;
}

export interface HoldsAnswer {
  found: boolean;
  /** The value was outside the caller's reach: its credential was revoked. */
  compromised?: boolean;
}

/** The gateway's default limits, by kind of caller (`gateway.limits`). */
export interface DefaultLimits {
  apps?: BudgetLimits | undefined;
  workloads?: BudgetLimits | undefined;
  /** Users and standalone tokens. */
  tokens?: BudgetLimits | undefined;
}

export interface ReserveRequest {
  defaults: DefaultLimits;
  /**
   * The most the call can use: tokens (input bound + output bound) and their cost. `unpriced`: the
   * model has no price, so a spend limit cannot be enforced and the call is refused where one applies.
   */
  estimate: { tokens: number; costUsd: number; unpriced?: boolean };
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
