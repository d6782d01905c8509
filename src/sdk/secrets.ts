import { createClient, StrongroomApiError, type StrongroomClient, type TokenSource } from './client.ts';
import { watchSecrets } from './watch.ts';

/**
 * Options of {@link createSecretsCache}.
 *
 * @example
 * const cache = createSecretsCache({
 *   addrs: ['http://vault-a:8210', 'http://vault-b:8210'],
 *   token: process.env.STRONGROOM_TOKEN!,
 *   watch: { project: 'demo', env: 'prod' },
 * });
 */
export interface SecretsCacheOptions {
  /** Server addresses, tried in order on unreachable/5xx; the last healthy one is tried first next time. */
  addrs: string[];
  /** A Strongroom token, or a function returning the current one (e.g. `session.token` of {@link createSession}). */
  token: TokenSource;
  /** How long a value is served from memory without asking the server (default 60 s). */
  ttlMs?: number;
  /** How old a value may be and still be served when every server is unreachable or answers 5xx (default 5 min). */
  staleIfErrorMs?: number;
  /** Follow these environments' watch streams and drop cached entries as they change. */
  watch?: { project: string; env: string } | { project: string; env: string }[];
  /**
   * Called when the watch stream says a secret changed (after its cached value
   * was dropped), and for each secret that changed while the stream was down.
   */
  onChange?: (project: string, env: string, name: string) => void;
  /** Time source for the TTL and the stale window, in ms (default `Date.now`). */
  clock?: () => number;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
  /** Total time one `get` may spend retrying across servers before giving up (default 5 s). */
  deadlineMs?: number;
  /** Per-request timeout in ms (default 10 s, never more than what is left of the deadline when a request starts). */
  requestTimeoutMs?: number;
  /** First retry backoff in ms, doubled each round, with full jitter (default 100 ms, capped at 2 s). */
  backoffMs?: number;
}

/**
 * A caching secrets reader: values live only in this process's memory.
 *
 * @example
 * const key = await cache.get('demo', 'prod', 'OPENAI_API_KEY');
 * cache.invalidate('demo', 'prod', 'OPENAI_API_KEY');
 * cache.close();
 */
export interface SecretsCache {
  /**
   * The value of a secret: from memory within the TTL, else from the server.
   * When every server is unreachable or answers 5xx, a value younger than
   * `staleIfErrorMs` is served instead; after a 401, 403 or 404 the cached
   * value is dropped and the error is thrown.
   *
   * @example
   * const key = await cache.get('demo', 'prod', 'OPENAI_API_KEY');
   */
  get(project: string, env: string, name: string): Promise<string>;
  /**
   * Drops one cached value; the next `get` reads it from the server.
   *
   * @example
   * cache.invalidate('demo', 'prod', 'OPENAI_API_KEY');
   */
  invalidate(project: string, env: string, name: string): void;
  /**
   * Counters since creation: answers from memory, reads from a server, stale
   * answers served during an outage, and failed gets.
   *
   * @example
   * const { stale } = cache.stats();
   */
  stats(): { hits: number; loads: number; stale: number; errors: number };
  /**
   * Stops the watch stream and forgets every cached value.
   *
   * @example
   * process.on('SIGTERM', () => cache.close());
   */
  close(): void;
}

interface Entry {
  value: string;
  version: number;
  fetchedAt: number;
}

const keyOf = (project: string, env: string, name: string) => JSON.stringify([project, env, name]);

/** True for failures that may be an outage (unreachable, 5xx): try another server, serve stale. */
const isOutage = (err: unknown) =>
  err instanceof StrongroomApiError && (err.status === 0 || err.status >= 500);

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Creates an in-memory, TTL-based cache of secret values on top of the SDK
 * client, with failover across several servers, stale-if-error on outages
 * (never on 401/403/404), and optional invalidation from the watch stream.
 *
 * @example
 * const cache = createSecretsCache({ addrs: [process.env.STRONGROOM_ADDR!], token: process.env.STRONGROOM_TOKEN! });
 * const key = await cache.get('demo', 'prod', 'OPENAI_API_KEY');
 */
export function createSecretsCache(opts: SecretsCacheOptions): SecretsCache {
  if (opts.addrs.length === 0) throw new Error('createSecretsCache: at least one address is needed');
  const ttlMs = opts.ttlMs ?? 60_000;
  const staleIfErrorMs = opts.staleIfErrorMs ?? 300_000;
  const clock = opts.clock ?? Date.now;
  const deadlineMs = opts.deadlineMs ?? 5_000;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  const backoffMs = opts.backoffMs ?? 100;
  const entries = new Map<string, Entry>();
  const inflight = new Map<string, Promise<string>>();
  /** Bumped on every invalidation, so a read started before it does not re-cache an old value. */
  const epochs = new Map<string, number>();
  const counters = { hits: 0, loads: 0, stale: 0, errors: 0 };
  /** Bumped when everything is dropped (the token was refused). */
  let generation = 0;
  const closer = new AbortController();
  let preferred = 0;

  const clientFor = (addr: string, timeoutMs: number): StrongroomClient =>
    createClient({ addr, token: opts.token, timeoutMs, ...(opts.fetch ? { fetch: opts.fetch } : {}) });

  /** Tries each address (the last healthy first), in jittered-backoff rounds, until the deadline. */
  async function readFromServers(project: string, env: string, name: string) {
    const start = Date.now();
    let lastErr: unknown;
    for (let round = 0; ; round++) {
      for (let i = 0; i < opts.addrs.length; i++) {
        const idx = (preferred + i) % opts.addrs.length;
        const left = deadlineMs - (Date.now() - start);
        if (left <= 0 && lastErr !== undefined) throw lastErr;
        try {
          const res = await clientFor(
            opts.addrs[idx]!,
            Math.max(1, Math.min(requestTimeoutMs, left)),
          ).getSecret(project, env, name);
          preferred = idx;
          return res;
        } catch (err) {
          if (!isOutage(err)) throw err;
          lastErr = err;
        }
      }
      const left = deadlineMs - (Date.now() - start);
      const wait = Math.random() * Math.min(2_000, backoffMs * 2 ** round);
      if (left <= wait || closer.signal.aborted) throw lastErr;
      await sleep(wait, closer.signal);
    }
  }

  async function load(key: string, project: string, env: string, name: string): Promise<string> {
    const epoch = epochs.get(key) ?? 0;
    const gen = generation;
    try {
      const res = await readFromServers(project, env, name);
      counters.loads++;
      if ((epochs.get(key) ?? 0) === epoch && gen === generation && !closer.signal.aborted) {
        entries.set(key, { value: res.value, version: res.version, fetchedAt: clock() });
      }
      return res.value;
    } catch (err) {
      const cached = entries.get(key);
      if (isOutage(err)) {
        if (cached && clock() - cached.fetchedAt < staleIfErrorMs) {
          counters.stale++;
          return cached.value;
        }
      } else if (err instanceof StrongroomApiError && err.status === 401) {
        forgetAll(); // the token is refused: nothing it fetched may be served any more
      } else if (err instanceof StrongroomApiError && [403, 404].includes(err.status)) {
        entries.delete(key);
      }
      counters.errors++;
      throw err;
    }
  }

  function invalidate(project: string, env: string, name: string) {
    const key = keyOf(project, env, name);
    entries.delete(key);
    inflight.delete(key);
    epochs.set(key, (epochs.get(key) ?? 0) + 1);
  }

  /** Drops every cached value and makes reads in flight not cache what they bring back. */
  function forgetAll() {
    generation++;
    entries.clear();
    inflight.clear();
  }

  async function follow(project: string, env: string) {
    let failures = 0;
    while (!closer.signal.aborted) {
      const addr = opts.addrs[preferred % opts.addrs.length]!;
      try {
        for await (const m of watchSecrets({
          addr,
          token: opts.token,
          project,
          env,
          signal: closer.signal,
          ...(opts.fetch ? { fetch: opts.fetch } : {}),
        })) {
          if (m.event === 'ready') {
            failures = 0;
            // Changes may have been missed while disconnected: drop what differs from now.
            const now = new Map(m.data.secrets.map((s) => [s.name, s]));
            for (const [key, entry] of entries) {
              const [p, e, n] = JSON.parse(key) as [string, string, string];
              if (p !== project || e !== env) continue;
              const s = now.get(n);
              if (!s || s.deleted || s.version !== entry.version) {
                invalidate(p, e, n);
                opts.onChange?.(p, e, n);
              }
            }
          } else if (m.event === 'change') {
            invalidate(m.data.project, m.data.env, m.data.name);
            opts.onChange?.(m.data.project, m.data.env, m.data.name);
          } else if (m.event === 'close' && m.data.reason === 'token_invalid') {
            // Revoked or expired: stop serving at once rather than at the end of the TTL.
            forgetAll();
          }
        }
      } catch (err) {
        // An auth failure is not an outage: nothing cached may be served any more.
        if (err instanceof StrongroomApiError && (err.status === 401 || err.status === 403)) forgetAll();
        // Unreachable, 5xx or an auth error: try the next address after a backoff.
        preferred = (preferred + 1) % opts.addrs.length;
      }
      if (closer.signal.aborted) return;
      failures++;
      await sleep(Math.random() * Math.min(30_000, backoffMs * 2 ** Math.min(failures, 16)), closer.signal);
    }
  }

  for (const w of opts.watch === undefined ? [] : Array.isArray(opts.watch) ? opts.watch : [opts.watch]) {
    void follow(w.project, w.env);
  }

  return {
    get(project, env, name) {
      if (closer.signal.aborted) return Promise.reject(new Error('secrets cache is closed'));
      const key = keyOf(project, env, name);
      const cached = entries.get(key);
      if (cached && clock() - cached.fetchedAt < ttlMs) {
        counters.hits++;
        return Promise.resolve(cached.value);
      }
      let p = inflight.get(key);
      if (!p) {
        p = load(key, project, env, name).finally(() => {
          if (inflight.get(key) === p) inflight.delete(key);
        });
        inflight.set(key, p);
      }
      return p;
    },
    invalidate,
    stats: () => ({ ...counters }),
    close() {
      closer.abort();
      entries.clear();
      inflight.clear();
    },
  };
}
