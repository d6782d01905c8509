import * as api from '../../api/checkout.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { VaultModule } from '../../contract/module.ts';
import { type AnyOperation, implement, type Resource } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { parseDuration } from '../../lib/duration.ts';
import type { SecretAddress } from '../kv/records.ts';
import type { LeaseRecord, LeasesPort } from '../leases/leases.ts';
import type { AllowsPort, ClockPort, SecretsPort } from '../ports.ts';

export type CheckoutDeps = ClockPort & SecretsPort & LeasesPort & AllowsPort;

const ENGINE = 'checkout';
const MAX_TTL = 86_400;
const DEFAULT_TTL = 3600;

interface Holder {
  lease_id: string;
  holder: string;
  expires_at: string;
}

const holderPath = (a: SecretAddress) => `h/${a.project}/${a.env}/${a.name}`;
const resourceOf = (a: SecretAddress): Resource => ({
  type: 'Secret',
  id: `${a.project}/${a.env}/${a.name}`,
  attrs: { project: a.project, environment: a.env, name: a.name },
});

/**
 * Check-out / check-in of static secrets (issue 16, item 3; docs/checkout.md): the value under a
 * lease, ended by check-in or expiry; `exclusive` gives one holder at a time (a shared
 * service-account credential), and the others get 409 with the holder's lease end.
 */
export function checkoutModule(): VaultModule<CheckoutDeps, BarrierStore> {
  let deps: CheckoutDeps | undefined;
  let store: BarrierStore | undefined;
  const now = () => deps!.clock.now();

  /** The exclusive holder, if its lease has not ended. */
  async function liveHolder(a: SecretAddress): Promise<Holder | undefined> {
    const h = await store!.getJson<Holder>(holderPath(a));
    return h && Date.parse(h.expires_at) > now() ? h : undefined;
  }

  function operations(): AnyOperation[] {
    return [
      implement(api.SecretCheckout, {
        action: 'secret.checkout',
        auth: 'token',
        resource: resourceOf,
        async handle(ctx, i) {
          const a = { project: i.project, env: i.env, name: i.name };
          // a check-out is a read: a policy that forbids reading the secret forbids checking it out
          if (
            !ctx.identity ||
            !(await deps!.allows(ctx.identity, 'secret.read', resourceOf(a), ctx.request))
          ) {
            throw new StrongroomError(
              'permission_denied',
              `permission denied: secret.read on Secret::${a.project}/${a.env}/${a.name} (a check-out reads the value)`,
            );
          }
          const rec = await deps!.secrets.secret(a);
          let ttl = DEFAULT_TTL;
          try {
            if (i.ttl !== undefined) ttl = parseDuration(i.ttl);
          } catch (err) {
            throw new StrongroomError('invalid_value', (err as Error).message);
          }
          if (ttl < 1 || ttl > MAX_TTL)
            throw new StrongroomError('invalid_value', 'a check-out lasts 1 s to 24 h');
          const exclusive = i.exclusive === true;
          const { lease, result } = await deps!.leases.issue(
            {
              engine: ENGINE,
              role: `${a.project}/${a.env}/${a.name}`,
              ttl,
              maxTtl: MAX_TTL,
              renewable: true,
              ctx,
              data: { ...a, exclusive },
            },
            async (l) => {
              if (!exclusive) {
                // an exclusive hold keeps everyone else out, shared check-outs too
                const h = await liveHolder(a);
                if (h) {
                  throw new StrongroomError(
                    'checked_out',
                    `${a.project}/${a.env}/${a.name} is checked out until ${h.expires_at}`,
                    {
                      details: { public: { expires_at: h.expires_at } },
                    },
                  );
                }
              }
              if (exclusive) {
                // one transaction: of two concurrent exclusive check-outs exactly one holds it
                await store!.transaction(async (tx) => {
                  const h = await tx.getJson<Holder>(holderPath(a));
                  if (h && h.lease_id !== l.id && Date.parse(h.expires_at) > now()) {
                    throw new StrongroomError(
                      'checked_out',
                      `${a.project}/${a.env}/${a.name} is checked out until ${h.expires_at}`,
                      {
                        details: { public: { expires_at: h.expires_at } },
                      },
                    );
                  }
                  const mine: Holder = {
                    lease_id: l.id,
                    holder: l.holder.accessor,
                    expires_at: l.expires_at,
                  };
                  await tx.put(holderPath(a), Buffer.from(JSON.stringify(mine)));
                });
              }
              const value = await deps!.secrets.value(a, rec.current_version);
              return { result: { value, version: rec.current_version } };
            },
          );
          return {
            lease_id: lease.id,
            lease_duration: Math.floor((Date.parse(lease.expires_at) - now()) / 1000),
            renewable: true,
            exclusive,
            data: result,
          };
        },
      }),
      implement(api.SecretCheckin, {
        action: 'secret.checkout',
        auth: 'token',
        resource: resourceOf,
        async handle(ctx, i) {
          const l = await deps!.leases.get(i.lease_id);
          const d = l?.data as Partial<SecretAddress> | undefined;
          const sameSecret =
            l?.engine === ENGINE && d?.project === i.project && d.env === i.env && d.name === i.name;
          const mine = deps!.leases.heldBy(l, ctx);
          if (!l || !sameSecret || !mine)
            throw new StrongroomError('not_found', 'no such check-out of this secret');
          await deps!.leases.revoke(l, { reason: 'checked_in' });
          return { checked_in: true };
        },
      }),
      implement(api.SecretHolder, {
        action: 'secret.checkout',
        auth: 'token',
        resource: resourceOf,
        async handle(ctx, i) {
          const h = await liveHolder(i);
          if (!h) return { holder: null };
          const l = await deps!.leases.get(h.lease_id);
          const yours = deps!.leases.heldBy(l, ctx);
          // who holds it is not told (a token accessor is a handle on that token): when, and whether it is you
          return { holder: { lease_id: h.lease_id, expires_at: h.expires_at, yours } };
        },
      }),
    ];
  }

  return {
    name: 'checkout',
    needs: ['leases', 'secrets'],
    mount: 'logical/checkout/',
    operations(k, st) {
      deps = k;
      store = st;
      k.leases.register({
        engine: ENGINE,
        async revoke(lease: Readonly<LeaseRecord>) {
          const d = lease.data as unknown as SecretAddress & { exclusive?: boolean };
          if (!d.exclusive) return;
          await store!.transaction(async (tx) => {
            const h = await tx.getJson<Holder>(holderPath(d));
            if (h?.lease_id === lease.id) await tx.delete(holderPath(d));
          });
        },
        async renew(lease: Readonly<LeaseRecord>, expiresAt: number) {
          const d = lease.data as unknown as SecretAddress & { exclusive?: boolean };
          if (!d.exclusive) return;
          await store!.transaction(async (tx) => {
            const h = await tx.getJson<Holder>(holderPath(d));
            if (h?.lease_id === lease.id) {
              await tx.put(
                holderPath(d),
                Buffer.from(JSON.stringify({ ...h, expires_at: new Date(expiresAt).toISOString() })),
              );
            }
          });
        },
      });
      return operations();
    },
  };
}
