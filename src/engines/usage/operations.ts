import { parseTimeBound } from '../../api/time-bound.ts';
import type {
  UnusedSecret,
  UsageActorRef,
  UsageByActorRow,
  UsageByHourRow,
  UsageBySecretRow,
  UsageGrouping,
} from '../../api/usage.ts';
import * as api from '../../api/usage.ts';
import { MAX_UNUSED_DAYS, USAGE_GROUPINGS } from '../../api/usage.ts';
import type { BarrierStore } from '../../barrier/barrier.ts';
import type { Identity } from '../../contract/identity.ts';
import { implement, type Operation, type OperationContext, type Resource } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { checkSecretName } from '../kv/names.ts';
import type { AllowsPort, ClockPort, SecretsPort } from '../ports.ts';
import { HOUR_MS, type HourRecord, type LastRecord, lastPath, type UsageRecorder } from './recorder.ts';

/** What the usage queries need of the vault. */
export type UsageVault = SecretsPort & ClockPort & AllowsPort;

const DEFAULT_SINCE = '7d';
const DEFAULT_UNUSED_DAYS = 30;

function secretResource(project: string, env: string, name: string): Resource {
  return { type: 'Secret', id: `${project}/${env}/${name}`, attrs: { project, environment: env, name } };
}
function envResource(project: string, env: string): Resource {
  return { type: 'Environment', id: `${project}/${env}`, attrs: { project, environment: env } };
}

const iso = (ms: number) => new Date(ms).toISOString();

function actorRef(actor: string, display: string): UsageActorRef {
  const i = actor.indexOf(':');
  return { actor, type: actor.slice(0, i), id: actor.slice(i + 1), display_name: display };
}

interface Hit {
  hour: number;
  name: string;
  actor: string;
  count: number;
  last: number;
}

interface Deps {
  vault: UsageVault;
  store: BarrierStore;
  recorder: UsageRecorder;
  recording: boolean;
}

/**
 * `usage.query` (who read what, how often, last use) and `usage.unused`
 * (secrets nobody read for N days). Both need `usage.read` on the environment
 * (or the secret); the rows are then filtered to the secrets the caller may
 * read usage of, so a scope or a narrower policy hides the rest.
 */
export function usageOperations(deps: Deps) {
  const { vault, store, recorder } = deps;

  /** A per-request filter: may this caller see usage of this secret? */
  function visibility(ctx: OperationContext, project: string, env: string) {
    const seen = new Map<string, Promise<boolean>>();
    const identity = ctx.identity as Identity;
    return (name: string): Promise<boolean> => {
      let p = seen.get(name);
      if (!p) {
        p = vault.allows(identity, 'usage.read', secretResource(project, env, name), ctx.request);
        seen.set(name, p);
      }
      return p;
    };
  }

  async function checkEnv(project: string, env: string): Promise<void> {
    await vault.secrets.environment({ project, env });
  }

  const queryDef = {
    action: 'usage.read',
    auth: 'token',
    resource: (i) =>
      i.name === undefined ? envResource(i.project, i.env) : secretResource(i.project, i.env, i.name),
    async handle(ctx, i) {
      await checkEnv(i.project, i.env);
      if (i.name !== undefined) checkSecretName(i.name);
      const by: UsageGrouping = i.by ?? (i.name === undefined ? 'secret' : 'actor');
      if (!USAGE_GROUPINGS.includes(by))
        throw new StrongroomError('validation_failed', `by must be one of ${USAGE_GROUPINGS.join(', ')}`);
      const now = vault.clock.now();
      const since = parseTimeBound('since', i.since ?? DEFAULT_SINCE, now);
      const until = i.until === undefined ? now : parseTimeBound('until', i.until, now);
      if (until < since) throw new StrongroomError('validation_failed', 'until is before since');
      const first = Math.floor(since / HOUR_MS);
      const lastHour = Math.floor(until / HOUR_MS);
      const prefix = `h/${i.project}/${i.env}/`;
      const hits: Hit[] = [];
      const names = new Map<string, string>();
      const wanted = (name: string) => i.name === undefined || i.name === name;
      await recorder.snapshot(async (pending) => {
        for (const path of await store.list(prefix)) {
          const hour = Number(path.slice(prefix.length));
          if (!(hour >= first && hour <= lastHour)) continue;
          const rec = await store.getJson<HourRecord>(path);
          if (!rec) continue;
          for (const [actor, display] of rec.actors) names.set(actor, display);
          for (const [name, actor, count, last] of rec.rows) {
            if (wanted(name)) hits.push({ hour, name, actor, count, last });
          }
        }
        for (const c of pending) {
          if (c.project !== i.project || c.env !== i.env || c.hour < first || c.hour > lastHour) continue;
          if (!wanted(c.name)) continue;
          hits.push({ hour: c.hour, name: c.name, actor: c.actor, count: c.count, last: c.last });
          names.set(c.actor, c.display);
        }
      });
      const visible = visibility(ctx, i.project, i.env);
      const allowed = new Set<string>();
      for (const n of new Set(hits.map((h) => h.name))) if (await visible(n)) allowed.add(n);
      const shown = hits.filter((h) => allowed.has(h.name));
      const display = (a: string) => names.get(a) ?? '';
      return {
        project: i.project,
        env: i.env,
        name: i.name ?? null,
        since: iso(first * HOUR_MS),
        until: iso((lastHour + 1) * HOUR_MS),
        by,
        recording: deps.recording,
        total: shown.reduce((a, h) => a + h.count, 0),
        rows:
          by === 'secret'
            ? bySecret(shown, display)
            : by === 'actor'
              ? byActor(shown, display)
              : byHour(shown, display),
      };
    },
  } satisfies Omit<Operation<api.UsageQueryInput, api.UsageResponse>, 'name'>;

  const query = implement(api.UsageQueryOp, queryDef);

  const unused = implement(api.UsageUnused, {
    action: 'usage.read',
    auth: 'token',
    resource: (i) => envResource(i.project, i.env),
    async handle(ctx, i) {
      await checkEnv(i.project, i.env);
      const days = i.days ?? DEFAULT_UNUSED_DAYS;
      if (!Number.isInteger(days) || days < 1 || days > MAX_UNUSED_DAYS)
        throw new StrongroomError(
          'validation_failed',
          `days must be a whole number from 1 to ${MAX_UNUSED_DAYS}`,
        );
      const cutoff = vault.clock.now() - days * 86_400_000;
      const lastRead = new Map<string, number>();
      await recorder.snapshot(async (pending) => {
        const rec = await store.getJson<LastRecord>(lastPath(i.project, i.env));
        for (const [name, last] of rec?.secrets ?? []) lastRead.set(name, last);
        for (const c of pending) {
          if (c.project === i.project && c.env === i.env && c.last > (lastRead.get(c.name) ?? -1))
            lastRead.set(c.name, c.last);
        }
      });
      const visible = visibility(ctx, i.project, i.env);
      const secrets: UnusedSecret[] = [];
      for await (const { record: rec } of vault.secrets.records({ project: i.project, env: i.env })) {
        if (rec.deleted_at !== null) continue;
        const last = lastRead.get(rec.name);
        const idle = last === undefined ? Date.parse(rec.created_at) < cutoff : last < cutoff;
        if (!idle || !(await visible(rec.name))) continue;
        secrets.push({
          name: rec.name,
          created_at: rec.created_at,
          last_read_at: last === undefined ? null : iso(last),
          provider: rec.provider ?? null,
          owner: rec.owner ?? null,
        });
      }
      return {
        project: i.project,
        env: i.env,
        days,
        cutoff: iso(cutoff),
        recording: deps.recording,
        secrets,
      };
    },
  });

  // one secret's usage (GET /v1/usage/:project/:env/:name): the same query, on a Secret resource
  const querySecret = implement(api.UsageSecret, {
    ...queryDef,
    resource: (i) => secretResource(i.project, i.env, i.name),
  });

  return [query, querySecret, unused];
}

function sumInto<K>(m: Map<K, { count: number; last: number }>, k: K, h: Hit): void {
  const e = m.get(k);
  if (e) {
    e.count += h.count;
    if (h.last > e.last) e.last = h.last;
  } else m.set(k, { count: h.count, last: h.last });
}

const byCountThenKey =
  <T extends { count: number }>(key: (t: T) => string) =>
  (a: T, b: T) =>
    b.count - a.count || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

function bySecret(hits: Hit[], display: (a: string) => string): UsageBySecretRow[] {
  const rows = new Map<
    string,
    { count: number; last: number; actors: Map<string, { count: number; last: number }> }
  >();
  for (const h of hits) {
    let r = rows.get(h.name);
    if (!r) {
      r = { count: 0, last: 0, actors: new Map() };
      rows.set(h.name, r);
    }
    r.count += h.count;
    if (h.last > r.last) r.last = h.last;
    sumInto(r.actors, h.actor, h);
  }
  return [...rows]
    .map(([name, r]) => ({
      name,
      count: r.count,
      last_read_at: iso(r.last),
      actors: [...r.actors]
        .map(([a, e]) => ({ ...actorRef(a, display(a)), count: e.count, last_read_at: iso(e.last) }))
        .sort(byCountThenKey((x) => x.actor)),
    }))
    .sort(byCountThenKey((x) => x.name));
}

function byActor(hits: Hit[], display: (a: string) => string): UsageByActorRow[] {
  const rows = new Map<
    string,
    { count: number; last: number; secrets: Map<string, { count: number; last: number }> }
  >();
  for (const h of hits) {
    let r = rows.get(h.actor);
    if (!r) {
      r = { count: 0, last: 0, secrets: new Map() };
      rows.set(h.actor, r);
    }
    r.count += h.count;
    if (h.last > r.last) r.last = h.last;
    sumInto(r.secrets, h.name, h);
  }
  return [...rows]
    .map(([a, r]) => ({
      ...actorRef(a, display(a)),
      count: r.count,
      last_read_at: iso(r.last),
      secrets: [...r.secrets]
        .map(([name, e]) => ({ name, count: e.count, last_read_at: iso(e.last) }))
        .sort(byCountThenKey((x) => x.name)),
    }))
    .sort(byCountThenKey((x) => x.actor));
}

function byHour(hits: Hit[], display: (a: string) => string): UsageByHourRow[] {
  const rows = new Map<
    number,
    { count: number; actors: Map<string, number>; secrets: Map<string, number> }
  >();
  for (const h of hits) {
    let r = rows.get(h.hour);
    if (!r) {
      r = { count: 0, actors: new Map(), secrets: new Map() };
      rows.set(h.hour, r);
    }
    r.count += h.count;
    r.actors.set(h.actor, (r.actors.get(h.actor) ?? 0) + h.count);
    r.secrets.set(h.name, (r.secrets.get(h.name) ?? 0) + h.count);
  }
  return [...rows]
    .sort((a, b) => a[0] - b[0])
    .map(([hour, r]) => ({
      hour: iso(hour * HOUR_MS),
      count: r.count,
      actors: [...r.actors]
        .map(([a, count]) => ({ ...actorRef(a, display(a)), count }))
        .sort(byCountThenKey((x) => x.actor)),
      secrets: [...r.secrets].map(([name, count]) => ({ name, count })).sort(byCountThenKey((x) => x.name)),
    }));
}
