import type { StreamMessage, WatchClose, WatchEvent, WatchInput, WatchStream } from '../../api/watch.ts';
import * as api from '../../api/watch.ts';
import { WATCH_HEARTBEAT_SECONDS } from '../../api/watch.ts';
import { identityOf } from '../../contract/identity.ts';
import type { VaultModule } from '../../contract/module.ts';
import type { Operation, RequestInfo, Resource } from '../../contract/operation.ts';
import { implement } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { SecretEvent, SecretRecord } from '../kv/kv.ts';
import { checkSecretName, checkSlug } from '../kv/names.ts';
import type { AllowsPort, BarrierPort, ClockPort, SecretsPort, TokensPort } from '../ports.ts';

/** What watch streams need: the secrets and their change events, token lookups, authorization, the clock, whether sealed. */
export type WatchDeps = SecretsPort & TokensPort & AllowsPort & ClockPort & BarrierPort;

/**
 * Change propagation (issue 4, item 3): `secret.watch` returns a stream of
 * the changes to an environment's secrets that the caller may read, never
 * their values. The stream as a whole is authorized like any operation
 * (`secret.list` on the Environment, through the core pipeline); each event
 * is then checked with `secret.read` on its Secret (scope and Cedar), and the
 * token is re-checked on every event and heartbeat, so a revoked or expired
 * token's stream ends at once.
 *
 * Local changes come from the kv engine's events. When storage is shared
 * with other servers (PostgreSQL), an environment with watchers is also
 * polled (every `pollMs`), so a change made through another server reaches
 * this server's watchers within about that long. Both sources feed one state
 * per environment, so a change seen both ways is delivered once.
 */
export interface WatchOptions {
  /** Default milliseconds between heartbeats (a request may ask for 1–60 s). */
  heartbeatMs?: number;
  /** Milliseconds between polls of shared storage while an environment has watchers (default 500, so a change made on another server arrives within a second). */
  pollMs?: number;
  /** Messages a slow client may have pending before its stream is closed (default 1000). */
  maxPending?: number;
}

export type { WatchInput, WatchStream } from '../../api/watch.ts';

type Listener = (e: SecretEvent) => void;

interface Hub {
  listeners: Set<Listener>;
  /** name -> "version:deleted", kept only when polling (shared storage). */
  state: Map<string, string> | undefined;
  ready: boolean;
  polling: boolean;
  timer: NodeJS.Timeout | undefined;
}

const secretResource = (project: string, env: string, name: string): Resource => ({
  type: 'Secret',
  id: `${project}/${env}/${name}`,
  attrs: { project, environment: env, name },
});

function stateOf(r: Pick<SecretRecord, 'current_version' | 'deleted_at'>): string {
  return `${r.current_version}:${r.deleted_at === null ? 0 : 1}`;
}

function parseSince(s: string): number {
  const ms = /^\d{1,16}$/.test(s) ? Number(s) : Date.parse(s);
  if (!Number.isFinite(ms)) {
    throw new StrongroomError(
      'validation_failed',
      'since must be a time (ISO 8601) or milliseconds since the epoch, as in the id of the last event received',
    );
  }
  return ms;
}

export interface WatchEngine {
  operations: Operation<WatchInput, WatchStream>[];
  /** Open streams (for tests and metrics). */
  readonly open: number;
  /** Ends every open stream (server shutdown, seal). */
  closeAll(reason: WatchClose['reason'], message: string): void;
  /** Makes every open stream re-check its token now (after a revocation on this server). */
  recheckAll(): void;
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: the streams share the subscriber set and the shared-storage poller kept in this closure
function createWatchEngine(deps: WatchDeps, storage: { exclusive: boolean }, opts: WatchOptions = {}) {
  const { secrets } = deps;
  const pollMs = opts.pollMs ?? 500;
  const maxPending = opts.maxPending ?? 1000;
  const hubs = new Map<string, Hub>();
  const streams = new Set<{ end(reason: WatchClose['reason'], message: string): void; recheck(): void }>();
  const iso = () => new Date(deps.clock.now()).toISOString();

  /** Applies a change to the hub's state; false when the state already had it (seen by the other source). */
  function apply(hub: Hub, e: SecretEvent): boolean {
    if (!hub.state) return true;
    const before = hub.state.get(e.name);
    if (e.kind === 'destroy') {
      if (before === undefined) return false;
      hub.state.delete(e.name);
      return true;
    }
    const after = `${e.version}:${e.kind === 'delete' ? 1 : 0}`;
    if (before === after) return false;
    // an older state than we hold (a poll that raced a local commit) is not news
    if (before !== undefined && Number(before.split(':')[0]) > e.version) return false;
    hub.state.set(e.name, after);
    return true;
  }

  function dispatch(hub: Hub, e: SecretEvent): void {
    if (!apply(hub, e)) return;
    for (const l of hub.listeners) l(e);
  }

  async function readRecords(project: string, env: string): Promise<Readonly<SecretRecord>[]> {
    const out: Readonly<SecretRecord>[] = [];
    for await (const { record } of secrets.records({ project, env })) out.push(record);
    return out;
  }

  async function poll(key: string, hub: Hub, project: string, env: string): Promise<void> {
    if (hub.polling || deps.barrier.sealed) return;
    hub.polling = true;
    try {
      const recs = await readRecords(project, env);
      if (hubs.get(key) !== hub) return;
      if (!hub.ready) {
        // first snapshot: local events that arrived meanwhile are newer, keep them
        for (const r of recs) if (!hub.state!.has(r.name)) hub.state!.set(r.name, stateOf(r));
        hub.ready = true;
        return;
      }
      const seen = new Set<string>();
      for (const r of recs) {
        seen.add(r.name);
        const before = hub.state!.get(r.name);
        const now = stateOf(r);
        if (before === now) continue;
        const [bv, bd] = before === undefined ? [0, '0'] : before.split(':');
        let kind: SecretEvent['kind'];
        let at: string;
        if (Number(bv) !== r.current_version || before === undefined) {
          const last = r.versions[r.versions.length - 1];
          kind = last?.source ?? 'write';
          at = last?.created_at ?? r.updated_at;
          if (r.deleted_at !== null) {
            kind = 'delete';
            at = r.deleted_at;
          }
        } else if (r.deleted_at !== null && bd === '0') {
          kind = 'delete';
          at = r.deleted_at;
        } else {
          kind = 'restore';
          at = iso();
        }
        dispatch(hub, { project, env, name: r.name, kind, version: r.current_version, at });
      }
      for (const [name, s] of [...hub.state!]) {
        if (!seen.has(name)) {
          dispatch(hub, { project, env, name, kind: 'destroy', version: Number(s.split(':')[0]), at: iso() });
        }
      }
    } catch {
      // storage briefly unavailable: the next poll tries again
    } finally {
      hub.polling = false;
    }
  }

  function subscribe(project: string, env: string, l: Listener): () => void {
    const key = `${project}/${env}`;
    let hub = hubs.get(key);
    if (!hub) {
      const h: Hub = {
        listeners: new Set(),
        state: storage.exclusive ? undefined : new Map(),
        ready: storage.exclusive,
        polling: false,
        timer: undefined,
      };
      hub = h;
      hubs.set(key, h);
      const onLocal = (e: SecretEvent) => {
        if (e.project === project && e.env === env) dispatch(h, e);
      };
      secrets.events.on('change', onLocal);
      if (!storage.exclusive) {
        void poll(key, h, project, env);
        h.timer = setInterval(() => void poll(key, h, project, env), pollMs);
        h.timer.unref();
      }
      const stop = () => {
        secrets.events.off('change', onLocal);
        if (h.timer) clearInterval(h.timer);
        hubs.delete(key);
      };
      (h as Hub & { stop?: () => void }).stop = stop;
    }
    const h = hub;
    h.listeners.add(l);
    return () => {
      h.listeners.delete(l);
      if (h.listeners.size === 0 && hubs.get(key) === h) (h as Hub & { stop?: () => void }).stop?.();
    };
  }

  const watch = implement(api.SecretWatch, {
    action: 'secret.list',
    auth: 'token',
    resource: (i) => ({
      type: 'Environment',
      id: `${i.project}/${i.env}`,
      attrs: { project: i.project, environment: i.env },
    }),
    async handle(ctx, i) {
      checkSlug('project', i.project);
      checkSlug('environment', i.env);
      if (i.name !== undefined) checkSecretName(i.name);
      const since = i.since === undefined ? undefined : parseSince(i.since);
      const heartbeatMs =
        i.heartbeat !== undefined
          ? Math.min(60, Math.max(1, i.heartbeat)) * 1000
          : (opts.heartbeatMs ?? WATCH_HEARTBEAT_SECONDS * 1000);
      await secrets.environment(i);
      const token = ctx.request.token;
      if (!token || !ctx.identity) throw new TypeError('secret.watch needs a token');
      return openStream(i, token, ctx.request, heartbeatMs, since);
    },
  });

  function openStream(
    i: WatchInput,
    token: string,
    request: RequestInfo,
    heartbeatMs: number,
    since: number | undefined,
  ): WatchStream {
    type Item = SecretEvent | 'heartbeat' | { close: WatchClose };
    const pending: Item[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    const push = (item: Item) => {
      if (closed) return;
      if (pending.length >= maxPending) {
        pending.length = 0;
        pending.push({
          close: {
            reason: 'overflow',
            message: 'the client fell too far behind; reconnect with Last-Event-ID',
          },
        });
      } else pending.push(item);
      wake?.();
    };
    // subscribe before the snapshot, so no change falls between the two (a duplicate may)
    const unsubscribe = subscribe(i.project, i.env, (e) => {
      if (i.name === undefined || e.name === i.name) push(e);
    });
    const heartbeat = setInterval(() => push('heartbeat'), heartbeatMs);
    heartbeat.unref();
    let expiry: NodeJS.Timeout | undefined;
    const handle = {
      end(reason: WatchClose['reason'], message: string) {
        push({ close: { reason, message } });
      },
      recheck() {
        push('heartbeat');
      },
    };
    streams.add(handle);
    const cleanup = () => {
      if (closed) return;
      closed = true;
      unsubscribe();
      clearInterval(heartbeat);
      if (expiry) clearTimeout(expiry);
      streams.delete(handle);
      wake?.();
    };

    /** The token's identity if it is still valid, else undefined. */
    async function live() {
      try {
        const entry = await deps.tokens.lookup(token);
        if (!expiry && entry.expires_at) {
          // wake up when the token expires, not only at the next heartbeat
          const ms = Date.parse(entry.expires_at) - deps.clock.now();
          expiry = setTimeout(() => push('heartbeat'), Math.min(Math.max(ms + 5, 0), 2 ** 31 - 1));
          expiry.unref();
        }
        return identityOf(entry);
      } catch {
        return undefined;
      }
    }
    const invalid: WatchClose = {
      reason: 'token_invalid',
      message: 'the token expired or was revoked; log in again and reconnect',
    };

    async function* messages(): AsyncGenerator<StreamMessage> {
      try {
        let identity = await live();
        if (!identity) {
          yield { event: 'close', data: invalid };
          return;
        }
        const readable = async (name: string) =>
          deps.allows(identity!, 'secret.read', secretResource(i.project, i.env, name), request);
        const recs = (await readRecords(i.project, i.env)).filter(
          (r) => i.name === undefined || r.name === i.name,
        );
        const visible: Readonly<SecretRecord>[] = [];
        for (const r of recs) if (await readable(r.name)) visible.push(r);
        yield {
          event: 'ready',
          data: {
            project: i.project,
            env: i.env,
            at: iso(),
            secrets: visible.map((r) => ({
              name: r.name,
              version: r.current_version,
              deleted: r.deleted_at !== null,
            })),
          },
        };
        if (since !== undefined) {
          const replay: WatchEvent[] = [];
          for (const r of visible) {
            for (const v of r.versions) {
              if (Date.parse(v.created_at) >= since) {
                replay.push({
                  project: i.project,
                  env: i.env,
                  name: r.name,
                  kind: v.source,
                  version: v.version,
                  at: v.created_at,
                  replayed: true,
                });
              }
            }
            if (r.deleted_at !== null && Date.parse(r.deleted_at) >= since) {
              replay.push({
                project: i.project,
                env: i.env,
                name: r.name,
                kind: 'delete',
                version: r.current_version,
                at: r.deleted_at,
                replayed: true,
              });
            }
          }
          replay.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
          for (const e of replay) yield { event: 'change', id: String(Date.parse(e.at)), data: e };
        }
        while (!closed) {
          if (pending.length === 0) {
            await new Promise<void>((r) => {
              wake = r;
            });
            wake = undefined;
            continue;
          }
          const item = pending.shift()!;
          if (typeof item === 'object' && 'close' in item) {
            yield { event: 'close', data: item.close };
            return;
          }
          identity = await live();
          if (!identity) {
            yield { event: 'close', data: invalid };
            return;
          }
          if (item === 'heartbeat') {
            yield { comment: 'heartbeat' };
            continue;
          }
          if (!(await readable(item.name))) continue;
          const data: WatchEvent = {
            project: item.project,
            env: item.env,
            name: item.name,
            kind: item.kind,
            version: item.version,
            at: item.at,
          };
          yield { event: 'change', id: String(Date.parse(item.at)), data };
        }
      } catch {
        yield { event: 'close', data: { reason: 'error', message: 'the stream failed; reconnect' } };
      } finally {
        cleanup();
      }
    }

    const it = messages();
    return {
      [Symbol.asyncIterator]: () => it,
      close() {
        cleanup();
        // a generator that never started would otherwise keep nothing, but end it anyway
        void it.return(undefined);
      },
    };
  }

  const engine: WatchEngine = {
    operations: [watch],
    get open() {
      return streams.size;
    },
    closeAll(reason, message) {
      for (const s of [...streams]) s.end(reason, message);
    },
    recheckAll() {
      for (const s of streams) s.recheck();
    },
  };
  return engine;
}

/** The core module that registers `secret.watch`. */
export function watchModule(
  storage: { exclusive: boolean },
  opts: WatchOptions = {},
  bind?: (engine: WatchEngine) => void,
): VaultModule<WatchDeps> {
  return {
    name: 'watch',
    needs: ['secrets'],
    operations(deps) {
      const engine = createWatchEngine(deps, storage, opts);
      bind?.(engine);
      return engine.operations;
    },
  };
}
