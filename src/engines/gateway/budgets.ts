import { createHash } from 'node:crypto';
import { tokensOf } from '../../api/pricing.ts';
import type { BarrierStore, BarrierWriter } from '../../barrier/barrier.ts';
import type { BudgetLimits, Budgets, Reservation } from '../../contract/budgets.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';

/*
 * The budget contracts of src/gateway/types.ts, restated: engines may not
 * import the gateway layer (test/architecture.test.ts), and the gateway takes
 * this implementation by its shape. budgets.test.ts assigns one to the
 * other, so the typecheck fails as soon as they drift apart.
 */

/** What a ticket holds: what was taken from whom, in which window and period. */
interface Ticket {
  t: readonly { key: string; window: number; period: string }[];
  n: number;
  c: number;
}

function parseTicket(text: string): Ticket {
  const bad = () => new StrongroomError('invalid_value', 'the reservation ticket is malformed');
  let v: Ticket;
  try {
    v = JSON.parse(text) as Ticket;
  } catch {
    throw bad();
  }
  const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  if (
    !v ||
    !Array.isArray(v.t) ||
    v.t.length > 8 ||
    !num(v.n) ||
    !num(v.c) ||
    !v.t.every(
      (x) =>
        x &&
        typeof x.key === 'string' &&
        x.key.length <= 2200 &&
        num(x.window) &&
        typeof x.period === 'string' &&
        x.period.length <= 32,
    )
  ) {
    throw bad();
  }
  return { t: v.t.map((x) => ({ key: x.key, window: x.window, period: x.period })), n: v.n, c: v.c };
}

/** What storage holds per subject: the current minute window and the current spend period. */
interface SubjectRecord {
  /** Start of the current one-minute window (ms, aligned to the minute). */
  window: number;
  requests: number;
  tokens: number;
  /** `day:2026-01-31`, `month:2026-01` or `total`; another period starts the spend at 0. */
  period: string;
  spend: number;
}

const WINDOW_MS = 60_000;
/** Spend is compared with this slack, so float sums such as 0.1 + 0.2 do not refuse an exact budget. */
const EPSILON_USD = 1e-9;
/** For a `total` budget nothing resets: a day is as good a hint as any (the limit may be raised). */
const TOTAL_RETRY_S = 86_400;

export function periodOf(period: 'day' | 'month' | 'total' | undefined, at: number): string {
  if (period === undefined) return '';
  if (period === 'total') return 'total';
  const iso = new Date(at).toISOString();
  return period === 'day' ? `day:${iso.slice(0, 10)}` : `month:${iso.slice(0, 7)}`;
}

/** Seconds until the spend period that contains `at` ends (UTC). */
function periodEndsIn(period: 'day' | 'month' | 'total', at: number): number {
  if (period === 'total') return TOTAL_RETRY_S;
  const d = new Date(at);
  const end =
    period === 'day'
      ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
      : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return Math.max(1, Math.ceil((end - at) / 1000));
}

// subject keys name apps and keys: storage paths carry only a digest of them (cached: a hash costs µs on the hot path)
const paths = new Map<string, string>();
function pathOf(key: string): string {
  let p = paths.get(key);
  if (p === undefined) {
    p = `budget/${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
    if (paths.size >= 10_000) paths.clear();
    paths.set(key, p);
  }
  return p;
}

/** A subject's record as stored (read with get + parse: no frozen copy to make). */
async function readRecord(tx: BarrierWriter, key: string): Promise<SubjectRecord | undefined> {
  const raw = await tx.get(pathOf(key));
  return raw === undefined ? undefined : (JSON.parse(raw.toString('utf8')) as SubjectRecord);
}

/** Misuse of `reserve` (a bad estimate, an empty or repeated subject, malformed limits) is a TypeError. */
function checkReserve(
  subjects: readonly { key: string; limits: BudgetLimits }[],
  estimate: { tokens: number; costUsd: number },
): void {
  if (!Number.isFinite(estimate.tokens) || estimate.tokens < 0)
    throw new TypeError('reserve: estimate.tokens must be a number ≥ 0');
  if (!Number.isFinite(estimate.costUsd) || estimate.costUsd < 0)
    throw new TypeError('reserve: estimate.costUsd must be a number ≥ 0');
  const keys = new Set<string>();
  for (const s of subjects) {
    if (typeof s.key !== 'string' || s.key.length === 0) throw new TypeError('reserve: empty subject key');
    if (keys.has(s.key)) throw new TypeError(`reserve: subject ${s.key} given twice`);
    keys.add(s.key);
    checkLimits(s.limits, s.key);
  }
}

function checkLimits(limits: BudgetLimits, what: string): void {
  const count = (v: number | undefined, name: string) => {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0))
      throw new TypeError(`${what}: ${name} must be a whole number ≥ 0`);
  };
  count(limits.requests_per_minute, 'requests_per_minute');
  count(limits.tokens_per_minute, 'tokens_per_minute');
  if (limits.spend !== undefined) {
    if (!Number.isFinite(limits.spend.usd) || limits.spend.usd < 0)
      throw new TypeError(`${what}: spend.usd must be a number ≥ 0`);
    if (!['day', 'month', 'total'].includes(limits.spend.period))
      throw new TypeError(`${what}: spend.period must be day, month or total`);
  }
}

/**
 * Budgets kept in the vault's storage (through the barrier, so every gateway
 * instance sharing the storage shares them): one record per subject, updated
 * in one serializable transaction per reservation, so concurrent
 * reservations never overshoot a limit (issue 7 item 5). Request and token
 * limits count fixed one-minute windows aligned to the clock's minute.
 */
export function createBudgets(
  store: BarrierStore,
  clock: Clock,
  opts: { writeBehindMs?: number } = {},
): Budgets {
  if (opts.writeBehindMs) return createWriteBehindBudgets(store, clock, opts.writeBehindMs);

  const put = (tx: BarrierWriter, key: string, rec: SubjectRecord) =>
    tx.put(pathOf(key), Buffer.from(JSON.stringify(rec)));

  return {
    async reserve(subjects, estimate) {
      checkReserve(subjects, estimate);
      const tokens = Math.ceil(estimate.tokens);
      const cost = estimate.costUsd;
      const at = clock.now();
      const taken: { key: string; window: number; period: string }[] = [];
      if (subjects.length > 0) {
        const rows = await store.transaction(async (tx) => {
          const out: { key: string; window: number; period: string }[] = [];
          const next: SubjectRecord[] = [];
          for (const s of subjects) {
            const rec = currentOf(await readRecord(tx, s.key), s.limits, at);
            takeFrom(rec, s, tokens, cost, at);
            next.push(rec);
            out.push({ key: s.key, window: rec.window, period: rec.period });
          }
          // all checks passed: take from every subject (the transaction makes it all or nothing)
          for (const [i, s] of subjects.entries()) await put(tx, s.key, next[i]!);
          return out;
        });
        taken.push(...rows);
      }
      return reservation(taken, tokens, cost);
    },
    resume(ticket) {
      const t = parseTicket(ticket);
      return reservation(t.t, t.n, t.c);
    },
  };

  function reservation(
    taken: readonly { key: string; window: number; period: string }[],
    tokens: number,
    cost: number,
  ): Reservation {
    let state: 'open' | 'closed' = 'open';
    let pending: Promise<void> | undefined;
    /** Runs `fn` once: later calls (settle or release) share its outcome; a failure may be retried. */
    const once = (fn: () => Promise<void>): Promise<void> => {
      if (state === 'closed') return Promise.resolve();
      if (pending) return pending;
      pending = fn().then(
        () => {
          state = 'closed';
          pending = undefined;
        },
        (err) => {
          pending = undefined;
          throw err;
        },
      );
      return pending;
    };
    const adjust = (
      f: (rec: SubjectRecord, sameWindow: boolean, samePeriod: boolean) => void,
    ): Promise<void> =>
      taken.length === 0
        ? Promise.resolve()
        : store.transaction(async (tx) => {
            const at = clock.now();
            for (const t of taken) {
              const stored = await readRecord(tx, t.key);
              const window = Math.floor(at / WINDOW_MS) * WINDOW_MS;
              const rec: SubjectRecord = stored
                ? stored
                : { window, requests: 0, tokens: 0, period: t.period, spend: 0 };
              // a window or period that has moved on since the reservation starts from zero
              if (rec.window !== window) Object.assign(rec, { window, requests: 0, tokens: 0 });
              const kind = t.period.split(':')[0] as 'day' | 'month' | 'total' | '';
              const period = periodOf(kind === '' ? undefined : kind, at);
              if (rec.period !== period) Object.assign(rec, { period, spend: 0 });
              f(rec, t.window === window, t.period === period);
              rec.requests = Math.max(0, rec.requests);
              rec.tokens = Math.max(0, rec.tokens);
              rec.spend = Math.max(0, rec.spend);
              await put(tx, t.key, rec);
            }
          });
    return {
      ticket: JSON.stringify({ t: taken, n: tokens, c: cost } satisfies Ticket),
      settle(usage, costUsd) {
        const used = Math.max(0, Math.ceil(tokensOf(usage) || 0));
        const spent = Number.isFinite(costUsd) && costUsd > 0 ? costUsd : 0;
        return once(() =>
          adjust((rec, sameWindow, samePeriod) => {
            // in the reservation's window the estimate becomes the actual count (which may be larger);
            // once the window has passed, only what went over the estimate lands in the current one
            rec.tokens += sameWindow ? used - tokens : Math.max(0, used - tokens);
            rec.spend += samePeriod ? spent - cost : Math.max(0, spent - cost);
          }),
        );
      },
      release() {
        return once(() =>
          adjust((rec, sameWindow, samePeriod) => {
            if (sameWindow) {
              rec.requests -= 1;
              rec.tokens -= tokens;
            }
            if (samePeriod) rec.spend -= cost;
          }),
        );
      },
    };
  }
}

/** The subject's counters as of `at`: a new minute window or spend period starts from zero. */
function currentOf(
  rec: Readonly<SubjectRecord> | undefined,
  limits: BudgetLimits,
  at: number,
): SubjectRecord {
  const window = Math.floor(at / WINDOW_MS) * WINDOW_MS;
  const period = periodOf(limits.spend?.period, at);
  const sameWindow = rec !== undefined && rec.window === window;
  const samePeriod = rec !== undefined && rec.period === period;
  return {
    window,
    requests: sameWindow ? rec.requests : 0,
    tokens: sameWindow ? rec.tokens : 0,
    period,
    spend: samePeriod ? rec.spend : 0,
  };
}

/**
 * Budgets for exclusive storage (one process owns it: SQLite, memory), kept in
 * memory and written behind to the barrier every `flushMs`. Check-and-take is
 * synchronous in the event loop, so concurrent calls cannot overshoot, without
 * two storage transactions (and their fsyncs) per gateway call. A crash loses
 * at most the last `flushMs` of counting (decision 0008). Shared storage
 * (PostgreSQL, several gateways) uses the transactional budgets above.
 */
function createWriteBehindBudgets(store: BarrierStore, clock: Clock, flushMs: number): Budgets {
  const recs = new Map<string, SubjectRecord>();
  const loading = new Map<string, Promise<void>>();
  const dirty = new Set<string>();
  let flushing: Promise<void> | undefined;

  async function load(key: string): Promise<void> {
    if (recs.has(key)) return;
    let p = loading.get(key);
    if (!p) {
      p = (async () => {
        const raw = await store.get(pathOf(key));
        if (!recs.has(key) && raw !== undefined)
          recs.set(key, JSON.parse(raw.toString('utf8')) as SubjectRecord);
      })().finally(() => loading.delete(key));
      loading.set(key, p);
    }
    await p;
  }

  /** Writes what changed since the last flush; a flush asked for during one runs after it. */
  async function flush(): Promise<void> {
    while (flushing) await flushing;
    if (dirty.size === 0) return;
    const batch = [...dirty].map((k) => [k, JSON.stringify(recs.get(k))] as const);
    dirty.clear();
    flushing = store
      .transaction(async (tx) => {
        for (const [k, v] of batch) await tx.put(pathOf(k), Buffer.from(v));
      })
      .catch(() => {
        for (const [k] of batch) dirty.add(k); // sealed or storage down: try again next time
      })
      .finally(() => {
        flushing = undefined;
      });
    await flushing;
  }
  const timer = setInterval(() => void flush(), flushMs);
  timer.unref();

  return {
    // a graceful shutdown loses nothing: only a crash loses the last flushMs of counting (decision 0008)
    async close() {
      clearInterval(timer);
      await flush();
    },
    async reserve(subjects, estimate) {
      checkReserve(subjects, estimate);
      await Promise.all(subjects.map((s) => load(s.key)));
      // from here to the end of the loop nothing awaits: check and take are one step for the event loop
      const tokens = Math.ceil(estimate.tokens);
      const cost = estimate.costUsd;
      const at = clock.now();
      const next: SubjectRecord[] = [];
      for (const s of subjects) {
        const rec = currentOf(recs.get(s.key), s.limits, at);
        takeFrom(rec, s, tokens, cost, at);
        next.push(rec);
      }
      const taken = subjects.map((s, i) => {
        recs.set(s.key, next[i]!);
        dirty.add(s.key);
        return { key: s.key, window: next[i]!.window, period: next[i]!.period };
      });
      let closed = false;
      const adjust = (f: (rec: SubjectRecord, sameWindow: boolean, samePeriod: boolean) => void) => {
        if (closed) return Promise.resolve();
        closed = true;
        const now = clock.now();
        for (const t of taken) {
          const window = Math.floor(now / WINDOW_MS) * WINDOW_MS;
          const rec = {
            ...(recs.get(t.key) ?? { window, requests: 0, tokens: 0, period: t.period, spend: 0 }),
          };
          if (rec.window !== window) Object.assign(rec, { window, requests: 0, tokens: 0 });
          const kind = t.period.split(':')[0] as 'day' | 'month' | 'total' | '';
          const period = periodOf(kind === '' ? undefined : kind, now);
          if (rec.period !== period) Object.assign(rec, { period, spend: 0 });
          f(rec, t.window === window, t.period === period);
          rec.requests = Math.max(0, rec.requests);
          rec.tokens = Math.max(0, rec.tokens);
          rec.spend = Math.max(0, rec.spend);
          recs.set(t.key, rec);
          dirty.add(t.key);
        }
        return Promise.resolve();
      };
      return {
        settle(usage, costUsd) {
          const used = Math.max(0, Math.ceil(tokensOf(usage) || 0));
          const spent = Number.isFinite(costUsd) && costUsd > 0 ? costUsd : 0;
          return adjust((rec, sameWindow, samePeriod) => {
            rec.tokens += sameWindow ? used - tokens : Math.max(0, used - tokens);
            rec.spend += samePeriod ? spent - cost : Math.max(0, spent - cost);
          });
        },
        release() {
          return adjust((rec, sameWindow, samePeriod) => {
            if (sameWindow) {
              rec.requests -= 1;
              rec.tokens -= tokens;
            }
            if (samePeriod) rec.spend -= cost;
          });
        },
      };
    },
  };
}

/**
 * Checks one subject's counters (as of `at`) against its limits and takes the
 * request from them: throws `rate_limited` (with `retry_after`) before
 * changing anything when a limit would be passed.
 */
function takeFrom(
  rec: SubjectRecord,
  s: { key: string; limits: BudgetLimits },
  tokens: number,
  cost: number,
  at: number,
): void {
  const refuse = (limit: string, retryAfter: number, message: string): never => {
    throw new StrongroomError('rate_limited', `${message}; retry in ${retryAfter} s`, {
      details: { retry_after: retryAfter, limit, subject: s.key },
    });
  };
  const l = s.limits;
  const windowLeft = Math.max(1, Math.ceil((rec.window + WINDOW_MS - at) / 1000));
  if (l.requests_per_minute !== undefined && rec.requests + 1 > l.requests_per_minute) {
    refuse(
      'requests_per_minute',
      windowLeft,
      `${s.key}: ${l.requests_per_minute} requests per minute reached`,
    );
  }
  if (l.tokens_per_minute !== undefined) {
    if (tokens > l.tokens_per_minute) {
      refuse(
        'tokens_per_minute',
        windowLeft,
        `${s.key}: this request alone (about ${tokens} tokens) exceeds the limit of ${l.tokens_per_minute} tokens per minute`,
      );
    }
    if (rec.tokens + tokens > l.tokens_per_minute || rec.tokens >= l.tokens_per_minute) {
      refuse('tokens_per_minute', windowLeft, `${s.key}: ${l.tokens_per_minute} tokens per minute reached`);
    }
  }
  if (l.spend !== undefined) {
    const { usd, period } = l.spend;
    if (rec.spend + cost > usd + EPSILON_USD || rec.spend >= usd - EPSILON_USD) {
      refuse(
        'spend',
        periodEndsIn(period, at),
        `${s.key}: the budget of ${usd} USD per ${period === 'total' ? 'lifetime' : period} is spent`,
      );
    }
  }
  rec.requests += 1;
  rec.tokens += tokens;
  rec.spend += cost;
}
