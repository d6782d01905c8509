import * as api from '../../api/leases.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { AuditEntry } from '../../contract/audit.ts';
import type { VaultModule } from '../../contract/module.ts';
import {
  type AnyOperation,
  implement,
  type OperationContext,
  type Resource,
} from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { parseDuration } from '../../lib/duration.ts';
import type { MetricsRegistry } from '../../lib/metrics.ts';
import type { AllowsPort, ClockPort, TokensPort } from '../ports.ts';
import { createLeaseManager, type LeaseManager, type LeaseOptions, type RevokeOutcome } from './manager.ts';
import type { LeaseRecord } from './store.ts';

export type { LeaseManager, LeaseOptions } from './manager.ts';
export type { LeaseRecord } from './store.ts';

/** What the lease module needs of the core. */
export type LeasesDeps = ClockPort &
  TokensPort &
  AllowsPort & {
    audit(entry: Omit<AuditEntry, 'time'> & { time?: string }): Promise<void>;
    metrics: MetricsRegistry;
    barrier: { readonly sealed: boolean };
  };

/** What an engine's credential is, as issued under a lease (Vault's shape). */
export interface IssuedCredential {
  lease_id: string;
  lease_duration: number;
  renewable: boolean;
  data: Record<string, unknown>;
}

/** An engine that issues credentials of a role for a caller (the tool registry asks it: docs/tools.md). */
export type CredentialIssuer = (
  ctx: OperationContext,
  role: string,
  /** `maxTtl`: what a renewal may reach at most (a tool credential stays minutes long). */
  opts: { ttl?: number; maxTtl?: number; tenant?: string },
) => Promise<IssuedCredential>;

/** The port engines that issue leases use (the database engine, check-out, provider keys, tools). */
export interface LeasesPort {
  leases: LeaseManager;
  /** Issuers by engine: registered by the engines that have roles, used by the tool registry. */
  issuers: {
    register(engine: string, issuer: CredentialIssuer): void;
    get(engine: string): CredentialIssuer | undefined;
  };
}

const LEASES_MOUNT = 'sys/leases/';
/** Every lease of every holder: list, revoke by prefix, and another holder's lease (admin). */
const ALL_LEASES: Resource = { type: 'System', id: 'leases' };
const OWN_LEASE: Resource = { type: 'Token', id: 'leases' };

function info(l: LeaseRecord, now: number): api.LeaseInfo {
  const ttl = Math.max(0, Math.floor((Date.parse(l.expires_at) - now) / 1000));
  return {
    lease_id: l.id,
    engine: l.engine,
    role: l.role,
    issued_at: l.issued_at,
    expires_at: l.expires_at,
    max_expires_at: l.max_expires_at,
    ttl,
    renewable: l.renewable,
    state: l.state,
    holder: l.holder.accessor,
    last_renewed_at: l.last_renewed_at,
    revoke_attempts: l.revoke_attempts,
    last_error: l.last_error,
    lease_duration: ttl,
    data: {
      id: l.id,
      issue_time: l.issued_at,
      expire_time: l.expires_at,
      last_renewal: l.last_renewed_at,
      renewable: l.renewable,
      ttl,
    },
  };
}

const tally = (outcomes: RevokeOutcome[]): api.RevokedResponse => ({
  revoked: outcomes.filter((o) => o === 'revoked').length,
  forced: outcomes.filter((o) => o === 'forced').length,
  pending: outcomes.filter((o) => o === 'pending').length,
});

/**
 * Leases (issue 16, item 1; docs/leases.md): every dynamic credential and every check-out is one, held
 * by the caller's token (and ending with it) or workload. The module keeps them in `sys/leases/`,
 * indexed by expiry, and one server of the cluster sweeps them.
 */
export function leasesModule(opts: LeaseOptions = {}): {
  module: VaultModule<LeasesDeps, BarrierStore>;
  ports: LeasesPort;
} {
  const { manager, bind } = createLeaseManager(opts);
  const issuers = new Map<string, CredentialIssuer>();
  let deps: LeasesDeps | undefined;

  /** The caller's own lease, or one it may manage; anything else is "no such lease" (no oracle). */
  async function reachable(ctx: OperationContext, id: string): Promise<LeaseRecord> {
    const l = await manager.get(id);
    const mine = manager.heldBy(l, ctx);
    if (
      l &&
      (mine || (ctx.identity && (await deps!.allows(ctx.identity, 'lease.manage', ALL_LEASES, ctx.request))))
    ) {
      return l;
    }
    throw new StrongroomError('not_found', 'no such lease');
  }

  const actorOf = (ctx: OperationContext): AuditEntry['actor'] =>
    ctx.identity
      ? { type: ctx.identity.owner.type, id: ctx.identity.owner.id, accessor: ctx.identity.accessor }
      : null;

  function operations(): AnyOperation[] {
    const now = () => deps!.clock.now();
    return [
      implement(api.LeaseLookup, {
        action: 'lease.self',
        auth: 'token',
        resource: () => OWN_LEASE,
        async handle(ctx, i) {
          return info(await reachable(ctx, i.lease_id), now());
        },
      }),
      implement(api.LeaseRenew, {
        action: 'lease.self',
        auth: 'token',
        resource: () => OWN_LEASE,
        async handle(ctx, i) {
          const l = await reachable(ctx, i.lease_id);
          let inc: number | undefined;
          try {
            inc = i.increment === undefined || i.increment === null ? undefined : parseDuration(i.increment);
          } catch (err) {
            throw new StrongroomError('invalid_value', (err as Error).message);
          }
          return info(await manager.renew(l, inc), now());
        },
      }),
      implement(api.LeaseRevoke, {
        action: 'lease.self',
        auth: 'token',
        resource: () => OWN_LEASE,
        async handle(ctx, i) {
          const l = await reachable(ctx, i.lease_id);
          return tally([await manager.revoke(l, { reason: 'revoked', actor: actorOf(ctx) })]);
        },
      }),
      implement(api.LeaseRevokePrefix, {
        action: 'lease.manage',
        auth: 'token',
        resource: () => ALL_LEASES,
        async handle(ctx, i) {
          const outcomes: RevokeOutcome[] = [];
          let after: string | undefined;
          for (;;) {
            const ids = await manager.ids(i.prefix, after, 500);
            for (const id of ids) {
              const l = await manager.get(id);
              if (l) {
                outcomes.push(
                  await manager.revoke(l, {
                    force: i.force === true,
                    reason: i.force ? 'revoked_forced' : 'revoked',
                    actor: actorOf(ctx),
                  }),
                );
              }
            }
            if (ids.length < 500) break;
            after = ids.at(-1);
          }
          return tally(outcomes);
        },
      }),
      implement(api.LeaseList, {
        action: 'lease.manage',
        auth: 'token',
        resource: () => ALL_LEASES,
        async handle(_ctx, i) {
          const limit = i.limit ?? 100;
          const ids = await manager.ids(i.prefix ?? '', i.after, limit);
          const leases: api.LeaseInfo[] = [];
          for (const id of ids) {
            const l = await manager.get(id);
            if (l) leases.push(info(l, now()));
          }
          return { leases, next: ids.length === limit ? (ids.at(-1) ?? null) : null };
        },
      }),
    ];
  }

  return {
    module: {
      name: 'leases',
      // it audits its own revocations: it starts after audit and stops before it
      needs: ['audit'],
      mount: LEASES_MOUNT,
      operations(k, store) {
        deps = k;
        bind(k, store);
        return operations();
      },
      onUnseal: () => manager.start(),
      onSeal: () => void manager.stop(),
      close: () => manager.stop(),
    },
    ports: {
      leases: manager,
      issuers: {
        register(engine, issuer) {
          if (issuers.has(engine))
            throw new TypeError(`a credential issuer for ${engine} is already registered`);
          issuers.set(engine, issuer);
        },
        get: (engine) => issuers.get(engine),
      },
    },
  };
}
