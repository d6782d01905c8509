import type { Call } from '../sdk/auth.ts';
import { type KeptLease, keepLease, leasesClient } from '../sdk/leases.ts';
import type { LeaseRef } from './template.ts';

interface Held {
  data: Record<string, string>;
  leaseId: string;
  kept: KeptLease;
}

/**
 * The agent's dynamic credentials (docs/agent.md): one per lease path its templates name, renewed at
 * 2/3 of its TTL; when a lease cannot be renewed further (its max_ttl, a revocation) a new credential
 * is asked for and `onReplaced` re-renders what reads it. Every lease is revoked when the agent stops.
 */
export function agentLeases(deps: {
  call: Call;
  log: (msg: string, extra?: Record<string, unknown>) => void;
  onReplaced: (key: string) => Promise<void>;
}) {
  const held = new Map<string, Held>();
  const leases = leasesClient(deps.call);
  let closed = false;

  async function obtain(ref: LeaseRef): Promise<Held> {
    const r = await deps.call<{ lease_id: string; lease_duration: number; data: Record<string, string> }>(
      'POST',
      `/v1/${ref.path}`,
      ref.tenant ? { tenant: ref.tenant } : {},
    );
    const h: Held = {
      data: { ...r.data, lease_id: r.lease_id },
      leaseId: r.lease_id,
      kept: keepLease(leases, r, {
        onRenew: (l) => deps.log('renewed a lease', { lease: ref.key, expires_at: l.expires_at }),
        onEnd: (why) => {
          if (closed || held.get(ref.key) !== h) return;
          deps.log('a lease cannot be renewed further: asking for a new credential', {
            lease: ref.key,
            reason: why,
          });
          held.delete(ref.key);
          // the new credential is rendered (and the child restarted) before the old one is revoked
          void deps
            .onReplaced(ref.key)
            .catch(() => {})
            .finally(() => void h.kept.close());
        },
      }),
    };
    held.set(ref.key, h);
    deps.log('obtained a leased credential', { lease: ref.key, lease_id: r.lease_id });
    return h;
  }

  return {
    /** The credential of every ref, obtained where not held yet. */
    async ensure(refs: Iterable<LeaseRef>): Promise<void> {
      for (const ref of refs) if (!held.has(ref.key)) await obtain(ref);
    },
    /** A field of a held credential (call `ensure` first). */
    field(ref: LeaseRef, field: string): string {
      const h = held.get(ref.key);
      if (!h) throw new Error(`no credential is held for ${ref.key}`);
      const v = h.data[field];
      if (typeof v !== 'string') {
        throw new Error(
          `the credential of ${ref.key} has no field ${JSON.stringify(field)} (it has ${Object.keys(h.data).join(', ')})`,
        );
      }
      return v;
    },
    leaseIds: () => [...held.values()].map((h) => h.leaseId),
    /** Revokes every lease (the agent is stopping). */
    async close(): Promise<void> {
      closed = true;
      await Promise.all([...held.values()].map((h) => h.kept.close()));
      held.clear();
    },
  };
}
