import type * as co from '../api/checkout.ts';
import type * as db from '../api/database.ts';
import type * as api from '../api/leases.ts';
import type * as wrap from '../api/wrapping.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import type { Call } from './auth.ts';

const seg = (s: string) => encodeURIComponent(s);

export type LeaseInfo = Out<typeof api.LeaseLookup>;
export type DatabaseCreds = Out<typeof db.DatabaseCredsIssue>;

/** Leases (docs/leases.md): one's own, or everyone's with `lease.manage`. */
export function leasesClient(call: Call) {
  return {
    lookup: (leaseId: string) => call<LeaseInfo>('PUT', '/v1/sys/leases/lookup', { lease_id: leaseId }),
    /** Moves the expiry `increment` (seconds or 15m, 1h; default the lease's TTL) from now, within max_ttl. */
    renew: (leaseId: string, increment?: number | string) =>
      call<LeaseInfo>('PUT', '/v1/sys/leases/renew', {
        lease_id: leaseId,
        ...(increment === undefined ? {} : { increment }),
      }),
    revoke: (leaseId: string) =>
      call<Out<typeof api.LeaseRevoke>>('PUT', '/v1/sys/leases/revoke', { lease_id: leaseId }),
    /** Every lease whose id starts with `prefix`; `force` drops the records where the backend refuses. */
    revokePrefix: (prefix: string, options: { force?: boolean } = {}) =>
      call<Out<typeof api.LeaseRevokePrefix>>('PUT', '/v1/sys/leases/revoke-prefix', {
        prefix,
        ...(options.force ? { force: true } : {}),
      }),
    list: (q: { prefix?: string; after?: string; limit?: number } = {}) => {
      const qs = new URLSearchParams(
        Object.entries(q)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]): [string, string] => [k, String(v)]),
      );
      return call<Out<typeof api.LeaseList>>('GET', `/v1/sys/leases${qs.size ? `?${qs}` : ''}`);
    },
  };
}

/** Dynamic database credentials (docs/database.md). */
export function databaseClient(call: Call) {
  return {
    writeConfig: (name: string, body: db.DatabaseConfigRequest) =>
      call<Out<typeof db.DatabaseConfigWrite>>('POST', `/v1/database/config/${seg(name)}`, body),
    readConfig: (name: string) =>
      call<Out<typeof db.DatabaseConfigRead>>('GET', `/v1/database/config/${seg(name)}`),
    listConfigs: () => call<Out<typeof db.DatabaseConfigList>>('GET', '/v1/database/config'),
    deleteConfig: (name: string) =>
      call<Out<typeof db.DatabaseConfigDelete>>('DELETE', `/v1/database/config/${seg(name)}`),
    /** A new password for the connection's admin role, set in the database and kept in the barrier only. */
    rotateRoot: (name: string) =>
      call<Out<typeof db.DatabaseRotateRoot>>('POST', `/v1/database/rotate-root/${seg(name)}`),
    writeRole: (name: string, body: db.DatabaseRoleRequest) =>
      call<Out<typeof db.DatabaseRoleWrite>>('POST', `/v1/database/roles/${seg(name)}`, body),
    readRole: (name: string) =>
      call<Out<typeof db.DatabaseRoleRead>>('GET', `/v1/database/roles/${seg(name)}`),
    listRoles: () => call<Out<typeof db.DatabaseRoleList>>('GET', '/v1/database/roles'),
    deleteRole: (name: string) =>
      call<Out<typeof db.DatabaseRoleDelete>>('DELETE', `/v1/database/roles/${seg(name)}`),
    /** A new role for this caller, under a lease (renew it, or use `session()` which does). */
    creds: (role: string, body: db.DatabaseCredsRequest = {}) =>
      call<DatabaseCreds>('POST', `/v1/database/creds/${seg(role)}`, body),
  };
}

/** Check-out / check-in of static secrets (docs/checkout.md). */
export function checkoutClient(call: Call) {
  const base = (project: string, env: string, name: string) =>
    `/v1/secrets/${seg(project)}/${seg(env)}/${seg(name)}`;
  return {
    /** The value under a lease; `exclusive`: one holder at a time (409 `checked_out` for the others). */
    checkout: (project: string, env: string, name: string, body: co.CheckoutRequest = {}) =>
      call<Out<typeof co.SecretCheckout>>('POST', `${base(project, env, name)}/checkout`, body),
    checkin: (project: string, env: string, name: string, leaseId: string) =>
      call<Out<typeof co.SecretCheckin>>('POST', `${base(project, env, name)}/checkin`, {
        lease_id: leaseId,
      }),
    /** The exclusive holder now, if any. */
    holder: (project: string, env: string, name: string) =>
      call<Out<typeof co.SecretHolder>>('GET', `${base(project, env, name)}/checkout`),
  };
}

/** Response wrapping (docs/wrapping.md): what a wrapping token holds, once; and what it was made for. */
export function wrappingClient(call: Call) {
  return {
    unwrap: <T = Record<string, unknown>>(token: string) =>
      call<T>('POST', '/v1/sys/wrapping/unwrap', { token }),
    lookup: (token: string) =>
      call<Out<typeof wrap.WrappingLookup>>('POST', '/v1/sys/wrapping/lookup', { token }),
  };
}

export interface KeptLease {
  readonly leaseId: string;
  /** When the lease ends now (moves on each renewal). */
  expiresAt(): Date;
  /** Stops renewing and revokes the lease (the credential ends at once). */
  close(): Promise<void>;
}

/**
 * Keeps a lease alive: renews it at 2/3 of its remaining time, until `close()` (which revokes it)
 * or until it cannot be renewed further (max_ttl, a revoked token): then `onEnd` is told why, and
 * the caller must ask for a new credential.
 */
export function keepLease(
  leases: ReturnType<typeof leasesClient>,
  first: { lease_id: string; lease_duration: number },
  options: { onRenew?: (l: LeaseInfo) => void; onEnd?: (reason: string) => void } = {},
): KeptLease {
  let expires = Date.now() + first.lease_duration * 1000;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const schedule = (ttlS: number) => {
    timer = setTimeout(() => void renew(), Math.max(1000, (ttlS * 1000 * 2) / 3));
    timer.unref();
  };
  async function renew() {
    if (closed) return;
    try {
      const l = await leases.renew(first.lease_id);
      expires = Date.parse(l.expires_at);
      options.onRenew?.(l);
      // at its maximum the lease cannot move: let it run out and tell the holder
      if (l.expires_at === l.max_expires_at) {
        options.onEnd?.('max_ttl');
        return;
      }
      schedule(l.ttl);
    } catch (err) {
      options.onEnd?.(err instanceof Error ? err.message : String(err));
    }
  }
  schedule(first.lease_duration);
  return {
    leaseId: first.lease_id,
    expiresAt: () => new Date(expires),
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await leases.revoke(first.lease_id).catch(() => {});
    },
  };
}
