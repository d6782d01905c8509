import type { BarrierStore, BarrierWriter } from '../../barrier/barrier.ts';
import type { Identity } from '../../contract/identity.ts';
import type { Clock } from '../../lib/clock.ts';
import { Mutex } from '../../lib/mutex.ts';

/**
 * Usage analytics, the recording half (issue 4 item 6): every successful
 * secret read is counted per (project, env, name, actor, hour) in memory,
 * synchronously and without I/O, and the counts are merged into the barrier
 * now and then. Values are never seen here: only addresses, actor ids and
 * display names, counts and times.
 *
 * Layout inside the `sys/usage/` view:
 *   h/<project>/<env>/<hour>   counts of one environment in one hour (hour = epoch hours, 10 digits)
 *   last/<project>/<env>       last read ever, per secret and per actor, of one environment
 *
 * Several servers may share PostgreSQL storage: each one merges its own
 * deltas with a read-modify-write in one serializable transaction (retried by
 * the storage on conflict), so counts add up whatever the interleaving. A
 * query sees what is stored plus this server's unflushed counts; another
 * server's unflushed counts show up after its next flush.
 */

export const HOUR_MS = 3_600_000;

/** Counts of one environment in one hour: rows of [name, actor, count, last read (epoch ms)]. */
export interface HourRecord {
  v: 1;
  start: string;
  rows: [name: string, actor: string, count: number, last: number][];
  /** Display names: [actor, display_name]. */
  actors: [actor: string, display_name: string][];
}

/** Last read ever of each secret and actor of one environment. */
export interface LastRecord {
  v: 1;
  secrets: [name: string, last: number][];
  actors: [actor: string, display_name: string, last: number][];
}

/** One unflushed counter. */
export interface Cell {
  hour: number;
  project: string;
  env: string;
  name: string;
  /** The owner's type (app, user, token, root). */
  type: string;
  /** `<type>:<owner id>`. */
  actor: string;
  display: string;
  count: number;
  last: number;
}

export const hourPath = (project: string, env: string, hour: number) =>
  `h/${project}/${env}/${String(hour).padStart(10, '0')}`;
export const lastPath = (project: string, env: string) => `last/${project}/${env}`;

export function emptyHour(hour: number): HourRecord {
  return { v: 1, start: new Date(hour * HOUR_MS).toISOString(), rows: [], actors: [] };
}
const emptyLast = (): LastRecord => ({ v: 1, secrets: [], actors: [] });

const enc = (v: unknown) => Buffer.from(JSON.stringify(v));

async function readJson<T>(tx: BarrierWriter, path: string): Promise<T | undefined> {
  const raw = await tx.get(path);
  return raw ? (JSON.parse(raw.toString('utf8')) as T) : undefined;
}

/** Adds `cells` (all of one environment and hour) to a stored hour record. */
export function mergeHour(rec: HourRecord, cells: Iterable<Cell>): HourRecord {
  // Maps, not objects: a secret may be named __proto__
  const rows = new Map<string, [string, string, number, number]>();
  for (const r of rec.rows) rows.set(`${r[0]}/${r[1]}`, [...r]);
  const actors = new Map(rec.actors);
  for (const c of cells) {
    const k = `${c.name}/${c.actor}`;
    const r = rows.get(k);
    if (r) {
      r[2] += c.count;
      if (c.last > r[3]) r[3] = c.last;
    } else rows.set(k, [c.name, c.actor, c.count, c.last]);
    actors.set(c.actor, c.display);
  }
  return {
    v: 1,
    start: rec.start,
    rows: [...rows.values()].sort((a, b) => cmp(a[0], b[0]) || cmp(a[1], b[1])),
    actors: [...actors].sort((a, b) => cmp(a[0], b[0])),
  };
}

function mergeLast(rec: LastRecord, cells: Iterable<Cell>): LastRecord {
  const secrets = new Map(rec.secrets);
  const actors = new Map(rec.actors.map((a) => [a[0], a] as const));
  for (const c of cells) {
    if (c.last > (secrets.get(c.name) ?? -1)) secrets.set(c.name, c.last);
    const a = actors.get(c.actor);
    if (!a || c.last >= a[2]) actors.set(c.actor, [c.actor, c.display, c.last]);
  }
  return {
    v: 1,
    secrets: [...secrets].sort((a, b) => cmp(a[0], b[0])),
    actors: [...actors.values()].sort((a, b) => cmp(a[0], b[0])),
  };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export interface RecorderOptions {
  clock: Clock;
  /** Flush now (in the background) once this many counters are pending. */
  maxPending?: number;
}

export interface UsageRecorder {
  /**
   * The core's success hook: counts a secret read. Synchronous, no I/O, and
   * it never throws (a read must not fail because of analytics).
   */
  observe(operation: string, identity: Identity | undefined, input: unknown, output: unknown): void;
  /** Merges the pending counts into storage. Pending counts survive a failed flush. */
  flush(): Promise<{ cells: number }>;
  /** Runs `fn` with no flush in progress, so stored + pending counts are exact. */
  snapshot<T>(fn: (pending: readonly Cell[]) => Promise<T>): Promise<T>;
  /** Counters waiting for a flush. */
  readonly pendingCount: number;
  /** Starts the periodic flush. */
  start(intervalMs: number): void;
  /** Stops the periodic flush and flushes what is pending. */
  close(): Promise<void>;
  /** Sets the store (the `sys/usage/` barrier view) once the core exists. */
  attach(store: BarrierStore, sealed: () => boolean): void;
  /** The last flush error, if the last flush failed. */
  readonly lastError: unknown;
}

/** Pending counters of one hour: project -> env -> name -> owner id -> cell. */
type HourCells = Map<string, Map<string, Map<string, Map<string, Cell>>>>;

function* cellsOf(pending: ReadonlyMap<number, HourCells>): Generator<Cell> {
  for (const projects of pending.values())
    for (const envs of projects.values())
      for (const names of envs.values()) for (const actors of names.values()) yield* actors.values();
}

function child<K, V>(m: Map<K, V>, k: K, make: () => V): V {
  let v = m.get(k);
  if (v === undefined) {
    v = make();
    m.set(k, v);
  }
  return v;
}

export function createRecorder(opts: RecorderOptions): UsageRecorder {
  const { clock } = opts;
  const maxPending = opts.maxPending ?? 100_000;
  // nested maps keyed by the strings a read already has: counting a read builds no key and allocates nothing
  let pending = new Map<number, HourCells>();
  let cells = 0;
  let curHour = -1;
  let cur: HourCells | undefined;
  let store: BarrierStore | undefined;
  let sealed: () => boolean = () => true;
  const lock = new Mutex();
  let timer: NodeJS.Timeout | undefined;
  let lastError: unknown;
  let flushing = false;

  /** Adds a counter (a first read, or counts put back after a failed flush). */
  function add(c: Cell, ownerId: string): void {
    const actors = child(
      child(
        child(
          child(pending, c.hour, () => new Map() as HourCells),
          c.project,
          () => new Map(),
        ),
        c.env,
        () => new Map(),
      ),
      c.name,
      () => new Map<string, Cell>(),
    );
    // owner ids of different kinds could in theory collide: the full actor key then tells them apart
    const key = actors.get(ownerId)?.actor === c.actor || !actors.has(ownerId) ? ownerId : c.actor;
    const was = actors.get(key);
    if (was) {
      was.count += c.count;
      if (c.last > was.last) was.last = c.last;
      if (c.display) was.display = c.display;
    } else {
      actors.set(key, c);
      cells++;
    }
  }

  function count(identity: Identity, project: string, env: string, name: string): void {
    const now = clock.now();
    const hour = Math.floor(now / HOUR_MS);
    if (hour !== curHour || cur === undefined) {
      cur = child(pending, hour, () => new Map() as HourCells);
      curHour = hour;
    }
    const o = identity.owner;
    const c = cur.get(project)?.get(env)?.get(name)?.get(o.id);
    if (c !== undefined && c.type === o.type) {
      c.count++;
      if (now > c.last) c.last = now;
      return;
    }
    add(
      {
        hour,
        project,
        env,
        name,
        type: o.type,
        actor: `${o.type}:${o.id}`,
        display: o.name || identity.display_name,
        count: 1,
        last: now,
      },
      o.id,
    );
    if (cells >= maxPending && !flushing) recorder.flush().catch(() => {});
  }

  async function write(batch: Iterable<Cell>): Promise<void> {
    // group by environment, then hour
    const envs = new Map<string, { project: string; env: string; hours: Map<number, Cell[]> }>();
    for (const c of batch) {
      const ek = `${c.project}/${c.env}`;
      let e = envs.get(ek);
      if (!e) {
        e = { project: c.project, env: c.env, hours: new Map() };
        envs.set(ek, e);
      }
      const h = e.hours.get(c.hour);
      if (h) h.push(c);
      else e.hours.set(c.hour, [c]);
    }
    // one transaction: all of a flush lands, or none of it (and it is retried next time)
    await store!.transaction(async (tx) => {
      for (const e of envs.values()) {
        for (const [hour, cells] of e.hours) {
          const path = hourPath(e.project, e.env, hour);
          const rec = (await readJson<HourRecord>(tx, path)) ?? emptyHour(hour);
          await tx.put(path, enc(mergeHour(rec, cells)));
        }
        const lp = lastPath(e.project, e.env);
        const last = (await readJson<LastRecord>(tx, lp)) ?? emptyLast();
        await tx.put(lp, enc(mergeLast(last, [...e.hours.values()].flat())));
      }
    });
  }

  function putBack(batch: Cell[]): void {
    if (pending.size === 0) curHour = -1;
    for (const c of batch) add({ ...c }, c.actor.slice(c.actor.indexOf(':') + 1));
  }

  const recorder: UsageRecorder = {
    observe(operation, identity, input, output) {
      if (identity === undefined) return;
      try {
        if (operation === 'secret.read' || operation === 'secret.checkout') {
          const i = input as { project: string; env: string; name: string };
          count(identity, i.project, i.env, i.name);
        } else if (operation === 'secret.export') {
          // an export with values reads every secret it returns
          const i = input as { project?: unknown; env?: unknown };
          if (typeof i.project !== 'string' || typeof i.env !== 'string') return;
          const secrets = (output as { secrets?: unknown } | undefined)?.secrets;
          if (!Array.isArray(secrets)) return;
          for (const s of secrets as { name?: unknown; value?: unknown }[]) {
            if (typeof s?.name === 'string' && typeof s.value === 'string')
              count(identity, i.project, i.env, s.name);
          }
        }
      } catch {
        // analytics never fail a read
      }
    },
    flush() {
      return lock.run(async () => {
        if (cells === 0 || !store || sealed()) return { cells: 0 };
        const batch = [...cellsOf(pending)];
        pending = new Map();
        cells = 0;
        curHour = -1;
        cur = undefined;
        flushing = true;
        try {
          await write(batch);
          lastError = undefined;
          return { cells: batch.length };
        } catch (err) {
          putBack(batch);
          lastError = err;
          throw err;
        } finally {
          flushing = false;
        }
      });
    },
    snapshot(fn) {
      return lock.run(() => fn([...cellsOf(pending)]));
    },
    get pendingCount() {
      return cells;
    },
    get lastError() {
      return lastError;
    },
    start(intervalMs) {
      if (timer) return;
      timer = setInterval(() => {
        recorder.flush().catch(() => {});
      }, intervalMs);
      timer.unref();
    },
    async close() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await recorder.flush();
    },
    attach(s, isSealed) {
      store = s;
      sealed = isSealed;
    },
  };
  return recorder;
}
