import { randomBytes, randomUUID } from 'node:crypto';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { AuditEntry } from '../../contract/audit.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { MetricsRegistry } from '../../lib/metrics.ts';
import type { ClockPort, TokensPort } from '../ports.ts';
import {
  backoffMs,
  backoffPath,
  creatingPath,
  dropLease,
  enc,
  holderSegment,
  iso,
  type LeaseBackend,
  type LeaseManager,
  type LeaseOptions,
  type LeaseRecord,
  leasePath,
  minuteOf,
  minutePrefix,
  parseExpiry,
  putLease,
  readLease,
  SWEEPER,
  type SweepReport,
  safeMessage,
} from './store.ts';

type Deps = ClockPort &
  TokensPort & {
    audit(entry: Omit<AuditEntry, 'time'> & { time?: string }): Promise<void>;
    metrics: MetricsRegistry;
    barrier: { readonly sealed: boolean };
  };

const SYSTEM: NonNullable<AuditEntry['actor']> = {
  type: 'system',
  id: 'lease-sweeper',
  display_name: 'lease sweeper',
};
/** A lease still `creating` this long after issue was abandoned by a crash. */
const ABANDONED_MS = 30_000;
const SWEEPER_LEASE_MS = 15_000;

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the backends, the store and the sweeper's state stay inside one closure
export function createLeaseManager(opts: LeaseOptions = {}): {
  manager: LeaseManager;
  bind(deps: Deps, store: BarrierStore): void;
} {
  const backends = new Map<string, LeaseBackend>();
  const holderId = opts.holder_id ?? `server-${randomUUID()}`;
  const batch = opts.batch ?? 200;
  const intervalMs = opts.sweep_interval_ms ?? 250;
  let deps: Deps | undefined;
  let store: BarrierStore | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<SweepReport> | undefined;
  let heldUntil = 0;
  let checkHolders = true;
  let passes = 0;
  const d = () => {
    if (!deps || !store) throw new TypeError('the lease manager is used before its module was mounted');
    return { deps, store };
  };
  const now = () => d().deps.clock.now();
  const metric = () =>
    d().deps.metrics.counter(
      'strongroom_lease_revocations_total',
      'Lease revocations by reason and outcome',
      ['engine', 'reason', 'outcome'],
    );

  /** What backs off together: one backend (a database connection), or the whole engine. */
  function backoffKey(l: Pick<LeaseRecord, 'engine' | 'data'>): string {
    const k = backends.get(l.engine)?.backoffKey?.(l as LeaseRecord);
    return k ? `${l.engine}.${k}` : l.engine;
  }

  function backendOf(engine: string): LeaseBackend {
    const b = backends.get(engine);
    if (!b) throw new TypeError(`no lease backend is registered for ${engine}`);
    return b;
  }

  async function auditLease(
    operation: string,
    l: LeaseRecord,
    more: Record<string, unknown>,
    actor = SYSTEM,
  ) {
    await d().deps.audit({
      type: 'response',
      request_id: `lease-${randomUUID()}`,
      operation,
      action: operation,
      resource: `Lease::${l.id}`,
      actor,
      client_address: 'internal',
      status: more.error ? 'error' : 'ok',
      request: { lease_id: l.id, engine: l.engine, role: l.role, holder: l.holder.accessor, ...more },
    });
  }

  const manager: LeaseManager = {
    register(backend) {
      if (backends.has(backend.engine))
        throw new TypeError(`a lease backend for ${backend.engine} is already registered`);
      backends.set(backend.engine, backend);
    },

    async issue(req, create) {
      const backend = backendOf(req.engine);
      const { ctx } = req;
      if (!ctx.identity)
        throw new StrongroomError('unauthenticated', 'a lease needs an authenticated caller');
      const at = now();
      const tokenEnd = ctx.token?.expires_at ? Date.parse(ctx.token.expires_at) : Number.POSITIVE_INFINITY;
      const maxEnd = Math.min(at + req.maxTtl * 1000, tokenEnd);
      const end = Math.min(at + req.ttl * 1000, maxEnd);
      if (end - at < Math.min(1000, req.ttl * 1000)) {
        throw new StrongroomError(
          'invalid_value',
          'your token expires before a lease could be used: renew it or log in again',
        );
      }
      const key = randomBytes(12).toString('hex');
      const lease: LeaseRecord = {
        id: `${req.engine}/${req.role}/${key}`,
        key,
        engine: req.engine,
        role: req.role,
        issued_at: iso(at),
        expires_at: iso(end),
        max_expires_at: iso(maxEnd),
        ttl: req.ttl,
        renewable: req.renewable,
        state: 'creating',
        holder:
          ctx.request.token !== undefined && ctx.identity.kind === 'token'
            ? { accessor: ctx.identity.accessor, ref: d().deps.tokens.refOf(ctx.request.token) }
            : { accessor: ctx.identity.accessor },
        data: { ...req.data },
        last_renewed_at: null,
        revoke_attempts: 0,
        next_attempt_at: null,
        last_error: null,
      };
      // the intent first: a crash from here on leaves a lease the sweeper ends, never a bare credential
      const maxHeld = opts.max_per_holder ?? 1000;
      await d().store.transaction(async (tx) => {
        if ((await tx.list(`o/${holderSegment(lease)}/`)).length >= maxHeld) {
          throw new StrongroomError(
            'rate_limited',
            `you hold ${maxHeld} leases already: revoke the ones you no longer need (strongroom lease revoke), or let them expire`,
          );
        }
        await putLease(tx, lease);
        await tx.put(creatingPath(key), enc({ at: lease.issued_at }));
      });
      let made: { data?: Record<string, unknown>; result: unknown };
      try {
        made = await create(lease);
      } catch (err) {
        // the intent goes only once the backend has confirmed nothing is left; otherwise it stays, and the
        // sweeper ends it as abandoned (retrying the revocation)
        const cleaned = await backend.revoke(lease).then(
          () => true,
          () => false,
        );
        if (cleaned) {
          await d()
            .store.transaction((tx) => dropLease(tx, lease))
            .catch(() => {});
        }
        throw err;
      }
      const active: LeaseRecord = { ...lease, state: 'active', data: { ...lease.data, ...made.data } };
      try {
        await d().store.transaction(async (tx) => {
          await putLease(tx, active, lease);
          await tx.delete(creatingPath(key));
        });
      } catch (err) {
        await backend.revoke(active).catch(() => {});
        throw err;
      }
      return { lease: active, result: made.result as never };
    },

    get: (id) => readLease(d().store, id),

    async refuseWhileLeased(prefix, what) {
      if ((await manager.ids(prefix, undefined, 1)).length) {
        throw new StrongroomError(
          'in_use',
          `${what} still has live leases: revoke them first (strongroom lease revoke --prefix ${prefix})`,
        );
      }
    },

    heldBy(l, ctx) {
      if (!l || !ctx.identity) return false;
      return l.holder.ref !== undefined
        ? ctx.request.token !== undefined && d().deps.tokens.refOf(ctx.request.token) === l.holder.ref
        : l.holder.accessor === ctx.identity.accessor;
    },

    async renew(lease, incrementS) {
      if (!lease.renewable) throw new StrongroomError('invalid_value', 'this lease is not renewable');
      if (lease.state !== 'active')
        throw new StrongroomError('invalid_value', `this lease is ${lease.state}`);
      const at = now();
      // a lease past its end is over, swept or not: it cannot come back
      if (Date.parse(lease.expires_at) <= at) throw new StrongroomError('not_found', 'no such lease');
      let maxEnd = Date.parse(lease.max_expires_at);
      if (lease.holder.ref) {
        const holder = await d().deps.tokens.lookupRef(lease.holder.ref);
        if (!holder) throw new StrongroomError('not_found', 'no such lease');
        if (holder.expires_at) maxEnd = Math.min(maxEnd, Date.parse(holder.expires_at));
      }
      const end = Math.min(at + (incrementS ?? lease.ttl) * 1000, maxEnd);
      if (end <= at)
        throw new StrongroomError('invalid_value', 'the lease is at its maximum TTL: ask for a new one');
      await backendOf(lease.engine).renew?.(lease, end);
      const next: LeaseRecord = { ...lease, expires_at: iso(end), last_renewed_at: iso(at) };
      await d().store.transaction(async (tx) => {
        const cur = await readLease(tx, lease.id);
        if (cur?.state !== 'active') throw new StrongroomError('not_found', 'no such lease');
        await putLease(tx, next, cur);
      });
      return next;
    },

    async revoke(lease, o) {
      const backend = backendOf(lease.engine);
      const actor = o.actor ?? SYSTEM;
      try {
        await backend.revoke(lease);
      } catch (err) {
        const message = safeMessage(err);
        if (o.force) {
          await d().store.transaction(async (tx) => {
            const cur = await readLease(tx, lease.id);
            if (cur) await dropLease(tx, cur);
          });
          await auditLease(
            'lease.revoke-force',
            lease,
            { reason: o.reason, forced: true, backend_error: message },
            actor,
          );
          metric().inc([lease.engine, o.reason, 'forced']);
          return 'forced';
        }
        await failed(lease, message);
        metric().inc([lease.engine, o.reason, 'failed']);
        return 'pending';
      }
      await d().store.transaction(async (tx) => {
        const cur = await readLease(tx, lease.id);
        if (cur) await dropLease(tx, cur);
        await tx.delete(backoffPath(backoffKey(lease)));
      });
      await auditLease('lease.revoke', lease, { reason: o.reason }, actor);
      metric().inc([lease.engine, o.reason, 'revoked']);
      return 'revoked';
    },

    async ids(prefix, after, limit) {
      const paths = await d().store.list(`i/${prefix}`);
      const out: string[] = [];
      for (const p of paths) {
        const id = p.slice(2);
        // a prefix matches whole path segments: `…/SA` is that lease or what is under it, not `…/SA_BACKUP`
        if (prefix !== '' && !prefix.endsWith('/') && id !== prefix && !id.startsWith(`${prefix}/`)) continue;
        if (after !== undefined && id <= after) continue;
        out.push(id);
        if (out.length >= limit) break;
      }
      return out;
    },

    sweep() {
      // one pass at a time per server; a pass asked for during one shares it
      running ??= pass().finally(() => {
        running = undefined;
      });
      return running;
    },

    holdersChanged() {
      checkHolders = true;
    },

    async start() {
      if (timer || intervalMs <= 0) return;
      timer = setInterval(() => void manager.sweep().catch(() => {}), intervalMs);
      timer.unref();
    },

    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running?.catch(() => {});
      if (deps && store && !deps.barrier.sealed && heldUntil > 0) {
        heldUntil = 0;
        await store
          .transaction(async (tx) => {
            const s = await tx.getJson<{ holder: string }>(SWEEPER);
            if (s?.holder === holderId)
              await tx.put(SWEEPER, enc({ ...s, holder: null, expires_at: iso(0) }));
          })
          .catch(() => {});
      }
    },
  };

  /** A revocation the backend refused: retried later with backoff, the backend as a whole too. */
  async function failed(lease: LeaseRecord, message: string) {
    const at = now();
    await d().store.transaction(async (tx) => {
      const cur = await readLease(tx, lease.id);
      if (!cur) return;
      const attempts = cur.revoke_attempts + 1;
      const next: LeaseRecord = {
        ...cur,
        state: 'revoking',
        revoke_attempts: attempts,
        last_error: message,
        next_attempt_at: iso(at + backoffMs(attempts)),
      };
      await putLease(tx, next, cur);
      const b = (await tx.getJson<{ failures: number }>(backoffPath(backoffKey(lease)))) ?? { failures: 0 };
      const failures = b.failures + 1;
      await tx.put(backoffPath(backoffKey(lease)), enc({ failures, until: iso(at + backoffMs(failures)) }));
    });
  }

  /** The cluster's sweeper lease: one server sweeps at a time; renewed every few seconds, not every pass. */
  async function holdSweeper(at: number): Promise<{ cursor: number } | undefined> {
    const { store: s } = d();
    if (heldUntil - at > SWEEPER_LEASE_MS / 3) {
      const cur = await s.getJson<{ cursor: number }>(SWEEPER);
      return cur ? { cursor: cur.cursor } : undefined;
    }
    return s.transaction(async (tx) => {
      const cur = await tx.getJson<{ holder: string | null; expires_at: string; cursor: number }>(SWEEPER);
      if (cur?.holder && cur.holder !== holderId && Date.parse(cur.expires_at) > at) return undefined;
      const cursor = cur?.cursor ?? minuteOf(at);
      await tx.put(SWEEPER, enc({ holder: holderId, expires_at: iso(at + SWEEPER_LEASE_MS), cursor }));
      heldUntil = at + SWEEPER_LEASE_MS;
      return { cursor };
    });
  }

  /** Renews the sweeper lease when a third of it is left; false when another server holds it now. */
  async function stillHolding(): Promise<boolean> {
    const at = now();
    if (heldUntil - at > SWEEPER_LEASE_MS / 3) return true;
    return (await holdSweeper(at)) !== undefined;
  }

  async function pass(): Promise<SweepReport> {
    const report: SweepReport = { expired: 0, failed: 0, holderGone: 0, abandoned: 0, reconciled: 0 };
    if (!deps || !store || deps.barrier.sealed) return report;
    const at = now();
    const held = await holdSweeper(at);
    if (!held) return report;
    passes++;
    await expire(at, held.cursor, report);
    if (checkHolders || passes % 40 === 1) {
      checkHolders = false;
      await endWithHolders(report);
    }
    if (passes % 20 === 1) await endAbandoned(at, report);
    if (passes % 2400 === 1) {
      for (const b of backends.values()) {
        report.reconciled +=
          (await b.reconcile?.(async (k) => (await store!.get(leasePath(k))) !== undefined)) ?? 0;
      }
    }
    return report;
  }

  /** Revokes what is due, minute by minute from the cursor; the cursor moves past a minute once it is empty. */
  async function expire(at: number, cursor: number, report: SweepReport) {
    const { store: s } = d();
    // a clock behind the cursor (stepped back, or another server's) still looks at the cursor's minute
    const last = Math.max(minuteOf(at), cursor);
    let minute = cursor;
    let budget = batch;
    const backoff = new Map<string, number>();
    while (minute <= last && budget > 0) {
      const due = await s.list(minutePrefix(minute));
      let left = 0;
      for (const p of due) {
        const e = parseExpiry(p);
        if (!e) continue;
        if (e.ms > at || budget <= 0) {
          left++;
          continue;
        }
        budget--;
        const l = await s.getJson<LeaseRecord>(leasePath(e.key));
        if (!l) {
          await s.delete(p);
          continue;
        }
        const bk = backoffKey(l);
        let until = backoff.get(bk);
        if (until === undefined) {
          const b = await s.getJson<{ until: string }>(backoffPath(bk));
          until = b ? Date.parse(b.until) : 0;
          backoff.set(bk, until);
        }
        if (until > at) {
          // the backend is backing off: look again when it is due, without asking it now
          const cur = structuredClone(l) as LeaseRecord;
          await s.transaction((tx) => putLease(tx, { ...cur, next_attempt_at: iso(until) }, cur));
          continue;
        }
        // a long pass (a slow backend) keeps the sweeper lease, or stops when another server took it
        if (!(await stillHolding())) return;
        const outcome = await manager.revoke(structuredClone(l) as LeaseRecord, {
          reason: l.state === 'revoking' ? 'retry' : 'expired',
        });
        if (outcome === 'pending') {
          report.failed++;
          backoff.delete(bk);
        } else report.expired++;
      }
      if (left > 0 || minute === last) break;
      minute++;
    }
    if (minute !== cursor) {
      await s.transaction(async (tx) => {
        const cur = await tx.getJson<{ holder: string }>(SWEEPER);
        if (cur?.holder === holderId) await tx.put(SWEEPER, enc({ ...cur, cursor: minute }));
      });
    }
  }

  /** Leases whose holder token was revoked (or used up) end with it. */
  async function endWithHolders(report: SweepReport) {
    const { store: s, deps: k } = d();
    const byHolder = new Map<string, string[]>();
    for (const p of await s.list('o/')) {
      const [, h, key] = p.split('/');
      if (!h || !key) continue;
      const keys = byHolder.get(h);
      if (keys) keys.push(key);
      else byHolder.set(h, [key]);
    }
    for (const keys of byHolder.values()) {
      const first = await s.getJson<LeaseRecord>(leasePath(keys[0]!));
      if (!first?.holder.ref) continue;
      if (await k.tokens.lookupRef(first.holder.ref)) continue;
      for (const key of keys) {
        const l = await s.getJson<LeaseRecord>(leasePath(key));
        if (!l || holderSegment(l) !== holderSegment(first)) continue;
        // a long pass (a slow backend) keeps the sweeper lease, or stops when another server took it
        if (!(await stillHolding())) return;
        const outcome = await manager.revoke(structuredClone(l) as LeaseRecord, { reason: 'holder_revoked' });
        if (outcome !== 'pending') report.holderGone++;
      }
    }
  }

  /** Intents a crash left between writing the lease and confirming its credential. */
  async function endAbandoned(at: number, report: SweepReport) {
    const { store: s } = d();
    for (const p of await s.list('c/')) {
      const key = p.slice(2);
      const c = await s.getJson<{ at: string }>(p);
      if (!c || at - Date.parse(c.at) < ABANDONED_MS) continue;
      const l = await s.getJson<LeaseRecord>(leasePath(key));
      if (!l) {
        await s.delete(p);
        continue;
      }
      // a long pass (a slow backend) keeps the sweeper lease, or stops when another server took it
      if (!(await stillHolding())) return;
      const outcome = await manager.revoke(structuredClone(l) as LeaseRecord, { reason: 'abandoned' });
      if (outcome !== 'pending') report.abandoned++;
    }
  }

  return {
    manager,
    bind(k, s) {
      deps = k;
      store = s;
    },
  };
}

export type { LeaseManager, LeaseOptions, RevokeOutcome } from './store.ts';
