import { type Dispatcher, Pool } from 'undici';
import { isStrongroomError, StrongroomError } from '../errors/errors.ts';
import { authHeaders, type Endpoint } from './providers.ts';
import type { RouteTarget, Upstream } from './routing.ts';
import type { GatewayVault } from './vault-port.ts';

/**
 * Forwarding a call upstream: the route's upstreams in order, each key of a pool in turn (round
 * robin per upstream), the next on a connection error, a 429 or a 5xx; each key read from the vault
 * at the moment it is injected. Connections are pooled per origin and kept alive.
 */

/** What one forwarding attempt sequence ended with. */
export interface UpstreamAnswer {
  /** The answer passed on (the last attempt's, even a 429 or a 5xx), if any upstream answered. */
  res: Dispatcher.ResponseData | undefined;
  /** The host that answered (or the first tried, or `-`). */
  host: string;
  /** Every key injected into a request (the response filters redact each). */
  injected: string[];
  /** Whether any request left (a call that reached a provider may have been billed). */
  sent: boolean;
  lastErr: unknown;
}

export interface Upstreams {
  send(
    target: RouteTarget,
    ep: Endpoint,
    request: { headers: Record<string, string>; payload: string | undefined; signal: AbortSignal },
  ): Promise<UpstreamAnswer>;
  close(): Promise<void>;
}

export function createUpstreams(keys: GatewayVault['keys']): Upstreams {
  const pools = new Map<string, Pool>();
  const rr = new Map<string, number>();

  function poolFor(origin: string): Pool {
    let p = pools.get(origin);
    if (!p) {
      p = new Pool(origin, { connections: 128, keepAliveTimeout: 30_000 });
      pools.set(origin, p);
    }
    return p;
  }

  /** The provider key at `path`; one missing from the vault is the gateway's configuration, not the caller's request. */
  async function keyAt(path: string): Promise<string> {
    try {
      return await keys.get(path);
    } catch (err) {
      if (isStrongroomError(err, 'secret_not_found'))
        throw new StrongroomError('provider_key_missing', err.message, { cause: err });
      throw err;
    }
  }

  async function send(
    target: RouteTarget,
    ep: Endpoint,
    request: { headers: Record<string, string>; payload: string | undefined; signal: AbortSignal },
  ): Promise<UpstreamAnswer> {
    const { headers, payload, signal } = request;
    const attempts: { upstream: Upstream; keyPath: string }[] = [];
    for (const u of target.upstreams) {
      const start = (rr.get(u.base_url) ?? 0) % u.keys.length;
      rr.set(u.base_url, start + 1);
      for (let i = 0; i < u.keys.length; i++)
        attempts.push({ upstream: u, keyPath: u.keys[(start + i) % u.keys.length]! });
    }
    const injected: string[] = [];
    let res: Dispatcher.ResponseData | undefined;
    let used: (typeof attempts)[number] | undefined;
    let lastErr: unknown;
    let sent = false;
    for (const a of attempts) {
      if (signal.aborted) break;
      const key = await keyAt(a.keyPath);
      injected.push(key);
      try {
        sent = true;
        const r = await poolFor(a.upstream.origin).request({
          method: ep.method,
          path: a.upstream.prefix + ep.path,
          headers: { ...headers, ...authHeaders(target.api, key) },
          ...(payload === undefined ? {} : { body: payload }),
          headersTimeout: target.timeoutMs,
          bodyTimeout: target.timeoutMs,
          signal,
        });
        const retryable = r.statusCode === 429 || r.statusCode >= 500;
        if (retryable && a !== attempts[attempts.length - 1]) {
          await r.body.dump().catch(() => {});
          lastErr = new Error(`upstream answered ${r.statusCode}`);
          continue;
        }
        res = r;
        used = a;
        break;
      } catch (err) {
        lastErr = err;
      }
    }
    return {
      res: used ? res : undefined,
      host: (used ?? attempts[0])?.upstream.host ?? '-',
      injected,
      sent,
      lastErr,
    };
  }

  return {
    send,
    async close() {
      await Promise.all([...pools.values()].map((p) => p.close()));
    },
  };
}
