import { Pool } from 'undici';
import type * as api from '../api/gateway.ts';
import { tokensOf } from '../api/pricing.ts';
import type { OutputOf } from '../contract/operation.ts';
import { ERROR_CODES, type ErrorCode, isStrongroomError, StrongroomError } from '../errors/errors.ts';
import { createMetricsRegistry } from '../lib/metrics.ts';
import type { SvidMaterial, SvidSource } from '../spiffe/svid-source.ts';
import type { GatewayIdentity } from './self-identity.ts';
import type { Reservation } from './types.ts';
import { type GatewayVault, type Session, settle } from './vault-port.ts';

/**
 * The gateway in front of a vault elsewhere (docs/gateway-remote.md): the
 * GatewayVault port spoken over HTTPS to the vault's gateway service
 * (src/assemble/gateway-vault/vault-service.ts), the gateway authenticating with its own
 * X.509-SVID as the TLS client certificate (rotated in place) and checking
 * the vault's server certificate against `ca` (or the system's CAs).
 *
 * Fail closed: a vault that cannot be reached, refuses the gateway or answers
 * anything unexpected is `vault_unavailable` (503 to the caller, no upstream
 * call); nothing is decided from a cache except provider keys, which are kept
 * in memory for `keyTtlMs` (a rotated key reaches the gateway within that).
 */
export interface RemoteVaultOptions {
  /** The vault's base URL (https://…). */
  url: string;
  /** PEM CA certificates for the vault's TLS certificate (default: the system's). */
  ca?: string;
  /** The gateway's identity: its SVID is the client certificate. */
  source: SvidSource;
  /** Per-call timeout (default 10 s). */
  timeoutMs?: number;
  /** How long a provider key read from the vault is reused (default 5 s). */
  keyTtlMs?: number;
  /** Told why the vault could not be used (for the gateway's log; the caller only sees vault_unavailable). */
  onError?: (detail: string) => void;
}

/** Bytes of candidates per question about vault values (the vault's request limit is 1 MiB). */
const HOLDS_BATCH_BYTES = 256 * 1024;
const HOLDS_BATCH_COUNT = 5_000;

/** The sealed session a remote vault returned, carried on the gateway's session object. */
const TICKET = Symbol('strongroom.gateway.ticket');
type RemoteSession = Session & { readonly [TICKET]: string };
const ticketOf = (s: Session): string => {
  const t = (s as Partial<RemoteSession>)[TICKET];
  if (typeof t !== 'string') throw new TypeError('not a session of this vault');
  return t;
};

const codeOf = (c: unknown, fallback: ErrorCode): ErrorCode =>
  typeof c === 'string' && (ERROR_CODES as readonly string[]).includes(c) ? (c as ErrorCode) : fallback;

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: one method per vault-service route, sharing the mTLS client and the session cache
export function remoteVault(options: RemoteVaultOptions): GatewayVault {
  const base = new URL(options.url);
  if (base.protocol !== 'https:')
    throw new TypeError('the vault URL must be https:// (the gateway authenticates with mTLS)');
  const prefix = base.pathname.replace(/\/+$/, '');
  const timeout = options.timeoutMs ?? 10_000;
  const keyTtl = options.keyTtlMs ?? 5_000;
  const metrics = createMetricsRegistry();
  /** Until when the vault is taken as sealed (its last answer said so): calls fail at once, then it is asked again. */
  let sealedUntil = 0;
  const SEALED_RECHECK_MS = 1_000;

  const poolFor = (svid: SvidMaterial) =>
    new Pool(base.origin, {
      connections: 64,
      keepAliveTimeout: 30_000,
      connect: {
        ...(options.ca ? { ca: options.ca } : {}),
        cert: svid.chainPem,
        // exported only into OpenSSL's context
        key: svid.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
        minVersion: 'TLSv1.2',
      },
    });
  let pool = poolFor(options.source.current());
  // a rotated SVID: new connections present it; calls on the old pool finish
  const unsubscribe = options.source.onUpdate((svid) => {
    const old = pool;
    pool = poolFor(svid);
    void old.close().catch(() => {});
  });

  /** What the caller is told: no internals (the detail goes to the gateway's log through onError). */
  const unavailable = (detail: string, cause?: unknown) => {
    report(detail);
    return new StrongroomError(
      'vault_unavailable',
      'the gateway cannot use its vault right now: try again later',
      {
        ...(cause === undefined ? {} : { cause }),
      },
    );
  };
  // one log line per distinct problem, and at most one every 10 s while it lasts
  let lastReport = { detail: '', at: 0 };
  function report(detail: string) {
    const at = Date.now();
    if (detail === lastReport.detail && at - lastReport.at < 10_000) return;
    lastReport = { detail, at };
    options.onError?.(detail);
  }

  async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      res = await pool.request({
        method,
        path: `${prefix}${path}`,
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
    } catch (err) {
      throw unavailable(`cannot reach the vault at ${base.origin}: ${(err as Error).message}`, err);
    }
    let json: Record<string, unknown>;
    try {
      json = (await res.body.json()) as Record<string, unknown>;
    } catch (err) {
      throw unavailable(
        `the vault at ${base.origin} answered ${path} with ${res.statusCode} and no JSON`,
        err,
      );
    }
    if (res.statusCode >= 200 && res.statusCode < 300) {
      sealedUntil = 0;
      return json as T;
    }
    const e = (json.error ?? {}) as { code?: string; message?: string };
    if (e.code === 'sealed') {
      sealedUntil = Date.now() + SEALED_RECHECK_MS;
      throw new StrongroomError('sealed', 'Strongroom is sealed: the gateway cannot reach provider keys');
    }
    // anything else is about the gateway itself (its SVID, its role, its requests): fail closed
    throw unavailable(
      `the vault refused the gateway's ${path} (${res.statusCode} ${e.code ?? 'error'}: ${String(e.message ?? '').slice(0, 300)})`,
    );
  }

  /**
   * For the call's record, which must not be lost once the provider was called: a failure is
   * retried (about 3 s in all), which also gives a rotating SVID time to arrive.
   */
  async function callPersistently<T>(path: string, body: unknown): Promise<T> {
    for (const wait of [200, 800, 2_000]) {
      try {
        return await call<T>('POST', path, body);
      } catch (err) {
        if (!isStrongroomError(err, 'vault_unavailable')) throw err;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    return call<T>('POST', path, body);
  }

  /** Throws what the vault said about the gateway's caller (an `error` in a 200 answer). */
  const raise = (
    out: { error?: { code?: string; message?: string; details?: Record<string, unknown> } },
    fallback: ErrorCode,
  ) => {
    if (!out.error) return;
    throw new StrongroomError(codeOf(out.error.code, fallback), String(out.error.message ?? 'refused'), {
      ...(out.error.details ? { details: out.error.details } : {}),
    });
  };

  /** Reservations taken from this vault, by object: their id travels with the call's record. */
  const remoteReservations = new WeakMap<Reservation, { id: string; done: boolean }>();

  /** A reservation the vault holds for this gateway: settled with the call's record, or on its own. */
  function remoteReservation(id: string): Reservation {
    const state = { id, done: false };
    const settleNow = async (usage?: { input_tokens: number; output_tokens: number; cost_usd: number }) => {
      if (state.done) return;
      state.done = true;
      await callPersistently('/v1/gateway/vault/budgets/settle', {
        reservation: id,
        ...(usage ? { usage } : {}),
      });
    };
    const reservation: Reservation = {
      settle: (u, costUsd) =>
        // prompt-cache tokens are input too: they travel counted in it
        settleNow({
          input_tokens: tokensOf(u) - u.output_tokens,
          output_tokens: u.output_tokens,
          cost_usd: costUsd,
        }),
      release: () => settleNow(),
    };
    remoteReservations.set(reservation, state);
    return reservation;
  }

  // provider keys: in memory only, one read at a time per key
  const keys = new Map<string, { value: string; at: number }>();
  const reading = new Map<string, Promise<string>>();
  const PATH = /^([a-z0-9][a-z0-9-]*)\/([a-z0-9][a-z0-9-]*)\/([A-Za-z0-9_.-]+)$/;

  let checked: { at: number; state: Promise<'ok' | 'sealed' | 'vault_unavailable'> } | undefined;
  /** Whether the vault serves this gateway now: an authenticated question (SVID, role), not just a ping. */
  async function probe(): Promise<'ok' | 'sealed' | 'vault_unavailable'> {
    try {
      await call('POST', '/v1/gateway/vault/authenticate', { client_address: '127.0.0.1' });
      return 'ok';
    } catch (err) {
      return isStrongroomError(err, 'sealed') ? 'sealed' : 'vault_unavailable';
    }
  }

  return {
    sealed: () => Date.now() < sealedUntil,
    health() {
      if (!checked || Date.now() - checked.at > 1_000) checked = { at: Date.now(), state: probe() };
      return checked.state;
    },
    now: () => Date.now(),
    metrics,
    async authenticate({ credential, chain, requireSvid }, info) {
      const out = await call<OutputOf<typeof api.GatewayVaultAuthenticate>>(
        'POST',
        '/v1/gateway/vault/authenticate',
        {
          ...(credential === undefined ? {} : { credential }),
          ...(chain?.length ? { peer_certificates: chain.map((c) => c.toString('base64')) } : {}),
          client_address: info.client_address,
          ...(requireSvid ? { require_svid: true } : {}),
        } satisfies api.VaultAuthenticateRequest,
      );
      raise(out, 'invalid_token');
      if (!out.caller || !out.identity || typeof out.session !== 'string')
        throw unavailable('the vault answered an authentication without a session');
      return { caller: out.caller, identity: out.identity, [TICKET]: out.session } as RemoteSession;
    },
    async authorize(session, resources, context) {
      const out = await call<OutputOf<typeof api.GatewayVaultAuthorize>>(
        'POST',
        '/v1/gateway/vault/authorize',
        {
          session: ticketOf(session),
          resources: resources.map((r) => ({
            provider: r.attrs!.provider as string,
            model: r.attrs!.model as string,
            route: r.attrs!.route as string,
          })),
          context,
        } satisfies api.VaultAuthorizeRequest,
      );
      // a caller whose credential ended since it was authenticated
      raise(out, 'invalid_token');
      if (!Array.isArray(out.decisions) || out.decisions.length !== resources.length) {
        throw new StrongroomError(
          'vault_unavailable',
          'the vault answered an authorization with the wrong count',
        );
      }
      return out.decisions.map((d) => ({ allowed: d?.allowed === true, reason: String(d?.reason ?? '') }));
    },
    async admit(session, record, reserve) {
      const { type: _type, action: _action, ...rest } = record;
      const out = await call<OutputOf<typeof api.GatewayVaultAdmit>>('POST', '/v1/gateway/vault/admit', {
        session: ticketOf(session),
        ...rest,
        ...(reserve
          ? {
              reserve: {
                defaults: reserve.defaults,
                estimate: {
                  tokens: reserve.estimate.tokens,
                  cost_usd: reserve.estimate.costUsd,
                  ...(reserve.estimate.unpriced ? { unpriced: true } : {}),
                },
              },
            }
          : {}),
      });
      raise(out, 'rate_limited');
      return out.reservation === undefined ? undefined : remoteReservation(out.reservation);
    },
    async audit(entry, opts) {
      const s = opts?.settle;
      const { type: _type, action: _action, ...rest } = entry;
      // a reservation of this vault is settled in the same request as the record
      const held = s ? remoteReservations.get(s.reservation) : undefined;
      if (s && !held) await settle(s);
      const owed = held && !held.done ? held : undefined;
      if (owed) owed.done = true;
      await callPersistently('/v1/gateway/vault/audit', {
        ...rest,
        ...(opts?.session ? { session: ticketOf(opts.session) } : {}),
        ...(owed && s
          ? {
              settle: {
                reservation: owed.id,
                ...(s.usage
                  ? {
                      usage: {
                        input_tokens: tokensOf(s.usage) - s.usage.output_tokens,
                        output_tokens: s.usage.output_tokens,
                        cost_usd: s.costUsd,
                      },
                    }
                  : {}),
              },
            }
          : {}),
      });
    },
    async revoke(session, reason) {
      await call('POST', '/v1/gateway/vault/revoke', {
        session: ticketOf(session),
        reason,
      } satisfies api.VaultRevokeRequest);
    },
    async live(sessions) {
      const out: boolean[] = [];
      // in batches the vault's request limit takes
      for (let i = 0; i < sessions.length; i += 256) {
        const batch = sessions.slice(i, i + 256);
        const a = await call<Partial<OutputOf<typeof api.GatewayVaultLive>>>(
          'POST',
          '/v1/gateway/vault/live',
          { sessions: batch.map(ticketOf) } satisfies api.VaultLiveRequest,
        );
        const live =
          Array.isArray(a.live) && a.live.length === batch.length ? a.live : batch.map(() => false);
        for (const v of live) out.push(v === true);
      }
      return out;
    },
    keys: {
      async get(path) {
        const hit = keys.get(path);
        if (hit && Date.now() - hit.at < keyTtl) return hit.value;
        const m = PATH.exec(path);
        if (!m)
          throw new StrongroomError('secret_not_found', `the gateway's key ${path} is not a vault path`);
        let p = reading.get(path);
        if (!p) {
          p = (async () => {
            try {
              const out = await call<{ value?: unknown }>(
                'GET',
                `/v1/secrets/${m[1]}/${m[2]}/${encodeURIComponent(m[3]!)}`,
              );
              if (typeof out.value !== 'string')
                throw new StrongroomError('secret_not_found', `the gateway's key ${path} has no value`);
              keys.set(path, { value: out.value, at: Date.now() });
              return out.value;
            } catch (err) {
              // a key the vault will not give (deleted, or outside the gateway's scope) is not served from memory
              if (isStrongroomError(err, 'vault_unavailable')) keys.delete(path);
              if (isStrongroomError(err, 'sealed')) keys.clear();
              throw err;
            } finally {
              reading.delete(path);
            }
          })();
          reading.set(path, p);
        }
        return p;
      },
    },
    async holds(session, candidates, info) {
      let batch: string[] = [];
      let bytes = 0;
      const ask = async (): Promise<{ found: boolean; compromised?: boolean }> => {
        if (!batch.length) return { found: false };
        const out = await call<OutputOf<typeof api.GatewayVaultHolds>>(
          'POST',
          '/v1/gateway/vault/fingerprints',
          {
            session: ticketOf(session),
            candidates: batch,
            request_id: info.request_id,
            ...(info.trace_id ? { trace_id: info.trace_id } : {}),
            client_address: info.client_address,
          } satisfies api.VaultHoldsRequest,
        );
        raise(out, 'invalid_token');
        batch = [];
        bytes = 0;
        return { found: out.found === true, ...(out.compromised === true ? { compromised: true } : {}) };
      };
      for (const c of candidates) {
        if (c.length > 4096) continue;
        if (bytes + c.length > HOLDS_BATCH_BYTES || batch.length >= HOLDS_BATCH_COUNT) {
          const a = await ask();
          if (a.found) return a;
        }
        batch.push(c);
        bytes += c.length + 4;
      }
      return ask();
    },
    async close() {
      unsubscribe();
      keys.clear();
      await pool.close().catch(() => {});
    },
  };
}

/** The gateway's identity from an SVID source (the agent's Workload API, or files): signs its provenance links. */
export function sourcedGatewayIdentity(source: SvidSource): GatewayIdentity {
  return {
    get spiffeId() {
      return source.current().spiffeId;
    },
    ready: () => Promise.resolve(),
    source,
    key: () => {
      const s = source.current();
      return { privateKey: s.privateKey, chain: s.chain };
    },
    // the source belongs to whoever made it (it also authenticates the gateway to the vault)
    close: () => {},
  };
}
