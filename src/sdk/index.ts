/**
 * The Strongroom SDK: every API route in one typed client, a session that keeps
 * its token renewed, and a caching secrets reader with stale-if-error.
 * Values are kept only in memory (docs/sdk.md).
 *
 * @example
 * import { connect } from 'strongroom';
 * const sr = await connect({
 *   addrs: ['https://vault-a:8210', 'https://vault-b:8210'],
 *   app: { client_id: process.env.SR_CLIENT_ID!, client_secret: process.env.SR_CLIENT_SECRET! },
 *   watch: { project: 'demo', env: 'prod' },
 * });
 * const key = await sr.secrets.get('demo', 'prod', 'OPENAI_API_KEY');
 */
import type { StaleQuery, StaleReport } from '../api/hygiene.ts';
import type { AuditQueryOptions } from './audit.ts';
import { auditHash, auditQuery } from './audit.ts';
import { authClient } from './auth.ts';
import { exportSecrets, type ImportProgress, importSecrets } from './bulk.ts';
import { type ClientOptions, createClient } from './client.ts';
import { gatewayClient } from './gateway.ts';
import { identityClient } from './identity.ts';
import { checkoutClient, databaseClient, keepLease, leasesClient, wrappingClient } from './leases.ts';
import type { encryptModel } from './models/encrypt.ts';
import type { signModel, verifyModel } from './models/sign.ts';
import { rotateSecret, rotationStatus } from './rotation.ts';
import { createSecretsCache, type SecretsCache, type SecretsCacheOptions } from './secrets.ts';
import { createSession, type Session, type SessionOptions } from './session.ts';
import { transitClient } from './transit.ts';
import { type UsageQueryOptions, usageQuery, usageUnused } from './usage.ts';
import { type WatchSecretsOptions, watchSecrets } from './watch.ts';

export type { AuditLogEntry, AuditQueryOptions, AuditQueryResponse } from './audit.ts';
export type { AuthClient, Call } from './auth.ts';
export type { ImportProgress } from './bulk.ts';
export { StrongroomImportError } from './bulk.ts';
export type { ClientOptions, StrongroomClient, TokenSource } from './client.ts';
export { createClient, StrongroomApiError } from './client.ts';
export type { GatewayClient } from './gateway.ts';
export { gatewayClient } from './gateway.ts';
export type { IdentityClient } from './identity.ts';
export { identityClient } from './identity.ts';
export type { DatabaseCreds, KeptLease, LeaseInfo } from './leases.ts';
export { checkoutClient, databaseClient, keepLease, leasesClient, wrappingClient } from './leases.ts';
export type { SecretsCache, SecretsCacheOptions } from './secrets.ts';
export { createSecretsCache } from './secrets.ts';
export type { Session, SessionCredentials, SessionOptions } from './session.ts';
export { createSession } from './session.ts';
export type { TransitKeyInfo } from './transit.ts';
export { transitClient } from './transit.ts';
export type { UsageQueryOptions } from './usage.ts';
export type { WatchSecretsOptions } from './watch.ts';
export { watchSecrets } from './watch.ts';

/**
 * Options of {@link connect}: where the servers are and how to authenticate.
 * Give exactly one of `token` and `app`.
 */
export interface ConnectOptions {
  /** One or more server addresses; failover goes through them in order. */
  addrs: string[];
  /** A token you hold (renewed while renewable). */
  token?: string;
  /** Application credentials: login, renewal and re-login are automatic. */
  app?: { client_id: string; client_secret: string };
  /** Cache settings for `secrets` (TTL, stale-if-error window, watch, deadlines). */
  cache?: Omit<SecretsCacheOptions, 'addrs' | 'token' | 'fetch' | 'watch'>;
  /** Follow this environment's change stream so cached values are dropped as they change. */
  watch?: { project: string; env: string };
  /** Retry/failover budget for API calls (default 5 s). */
  deadlineMs?: number;
  /** Session tuning (renewal point, error callback). */
  session?: Pick<SessionOptions, 'renewAt' | 'onError' | 'onRenew'>;
  fetch?: typeof fetch;
}

/** A connected SDK: see {@link connect}. */
export type Strongroom = Awaited<ReturnType<typeof connect>>;

/**
 * Authenticates and returns the whole typed API plus a caching secrets reader.
 * `close()` stops renewal and the watch stream and forgets cached values.
 *
 * @example
 * const sr = await connect({ addrs: [process.env.STRONGROOM_ADDR!], token: process.env.STRONGROOM_TOKEN! });
 * await sr.putSecret('demo', 'dev', 'OPENAI_API_KEY', key, { provider: 'openai' });
 * const { events } = await sr.audit.query({ limit: 10 });
 * await sr.close();
 */
export async function connect(opts: ConnectOptions) {
  if (opts.addrs.length === 0) throw new TypeError('connect: at least one address is needed');
  if ((opts.token === undefined) === (opts.app === undefined)) {
    throw new TypeError('connect: give exactly one of `token` and `app`');
  }
  const fetchOpt = opts.fetch ? { fetch: opts.fetch } : {};
  const session: Session = await createSession({
    addrs: opts.addrs,
    credentials: opts.app ? { app: opts.app } : { token: opts.token! },
    ...opts.session,
    ...fetchOpt,
  });
  const clientOpts: ClientOptions = {
    addr: opts.addrs,
    token: session.token,
    deadlineMs: opts.deadlineMs ?? 5_000,
    ...fetchOpt,
  };
  const client = createClient(clientOpts);
  const call = client.request;
  const secrets: SecretsCache = createSecretsCache({
    addrs: opts.addrs,
    token: session.token,
    ...opts.cache,
    ...(opts.watch ? { watch: opts.watch } : {}),
    ...fetchOpt,
  });

  return {
    ...client,
    /** The session that holds (and renews) the token. */
    session,
    /** Cached secret reads with stale-if-error and failover. */
    secrets,
    /** Secrets past their rotation schedule or expiry, or never rotated (docs/hygiene.md). */
    staleReport: (q: StaleQuery = {}) => {
      const qs = new URLSearchParams(Object.entries(q).map(([k, v]): [string, string] => [k, String(v)]));
      return call<StaleReport>('GET', `/v1/reports/stale${qs.size ? `?${qs}` : ''}`);
    },
    /** Server health: 200 active, otherwise the status says why (sealed, uninitialised, standby). */
    health: () =>
      call<Record<string, unknown>>('GET', '/v1/sys/health', undefined, [429, 472, 473, 501, 503]),
    /** Users, apps, MFA and logins. */
    auth: authClient(call),
    /** Workload identity: SVIDs, registrations, join tokens, bundles, federation. */
    identity: identityClient(call),
    /** AI gateway virtual keys: create, list, read, narrow, revoke. */
    gateway: gatewayClient(call),
    /** The audit log. */
    audit: {
      /** Entries matching a query (newest first). */
      query: (q: AuditQueryOptions = {}) => auditQuery(call, q),
      /** The HMAC the audit log records for a value, to search for it without revealing it. */
      hash: (input: string) => auditHash(call, input),
    },
    /** Provider-backed or manual rotation. */
    rotation: {
      rotate: (project: string, env: string, name: string, body?: Parameters<typeof rotateSecret>[4]) =>
        rotateSecret(call, project, env, name, body),
      status: (project: string, env: string, name: string) => rotationStatus(call, project, env, name),
    },
    /** Leases of dynamic credentials: lookup, renew, revoke; `keep` renews one at 2/3 of its TTL. */
    leases: {
      ...leasesClient(call),
      keep: (
        lease: { lease_id: string; lease_duration: number },
        options?: Parameters<typeof keepLease>[2],
      ) => keepLease(leasesClient(call), lease, options),
    },
    /** Dynamic database credentials (docs/database.md). */
    database: databaseClient(call),
    /** Check-out / check-in of static secrets under a lease (docs/checkout.md). */
    checkout: checkoutClient(call),
    /** Response wrapping: unwrap a wrapping token once, or look at what it was made for. */
    wrapping: wrappingClient(call),
    /** Encryption, signatures and HMACs under keys that stay in the vault (docs/transit.md). */
    transit: transitClient(call),
    /**
     * Models (docs/models.md): sign and verify (OpenSSF model signing), encrypt under a transit key, and
     * `open`: the vault checks signature, digests and formats, then releases the data keys; each file is
     * streamed decrypted, never written.
     */
    // loaded when first used: the rest of the SDK needs no package at run time
    models: {
      sign: async (dir: string, key: string, options?: Parameters<typeof signModel>[3]) =>
        (await import('./models/sign.ts')).signModel(transitClient(call), dir, key, options),
      verify: async (...args: Parameters<typeof verifyModel>) =>
        (await import('./models/sign.ts')).verifyModel(...args),
      encrypt: async (dir: string, key: string, out: string, options?: Parameters<typeof encryptModel>[4]) =>
        (await import('./models/encrypt.ts')).encryptModel(transitClient(call), dir, key, out, options),
      open: async (dir: string, policy: string) =>
        (await import('./models/encrypt.ts')).openModel(call, dir, policy),
      fetch: async (dir: string, policy: string, out: string) =>
        (await import('./models/encrypt.ts')).fetchModel(call, dir, policy, out),
    },
    /** Who read what, and what nobody reads. */
    usage: {
      query: (project: string, env: string, q?: UsageQueryOptions) => usageQuery(call, project, env, q),
      unused: (project: string, env: string, days?: number) => usageUnused(call, project, env, days),
    },
    /** Bulk import and export of an environment (one transaction). */
    bulk: {
      import: (
        project: string,
        env: string,
        req: Parameters<typeof importSecrets>[3],
        options?: { onProgress?: (p: ImportProgress) => void; signal?: AbortSignal },
      ) => importSecrets(clientOpts, project, env, req, options),
      export: (project: string, env: string, options?: { values?: boolean }) =>
        exportSecrets(clientOpts, project, env, options),
    },
    /** The change stream of an environment (names and versions, never values). */
    watch: (
      project: string,
      env: string,
      options: Omit<WatchSecretsOptions, 'addr' | 'token' | 'project' | 'env'> = {},
    ) => watchSecrets({ addr: opts.addrs[0]!, token: session.token, project, env, ...fetchOpt, ...options }),
    /** Stops renewal and the watch stream; with `revoke`, revokes the token. */
    async close(options: { revoke?: boolean } = {}) {
      secrets.close();
      await session.close(options);
    },
  };
}
