import type { LoginResponse } from '../api/auth.ts';
import type { TokenInfo } from '../api/v1.ts';
import { createClient, StrongroomApiError } from './client.ts';

/** How a session obtains its token. */
export type SessionCredentials =
  /** A token you already hold (renewed while it is renewable; not replaced when it reaches its maximum). */
  | { token: string }
  /** An application's client id and secret: logs in, renews, and logs in again before the maximum lifetime. */
  | { app: { client_id: string; client_secret: string } };

/**
 * Options of {@link createSession}.
 *
 * @example
 * const session = await createSession({
 *   addrs: ['https://vault-a:8210', 'https://vault-b:8210'],
 *   credentials: { app: { client_id: process.env.SR_CLIENT_ID!, client_secret: process.env.SR_CLIENT_SECRET! } },
 * });
 */
export interface SessionOptions {
  addrs: string[];
  credentials: SessionCredentials;
  /** Renew when this fraction of the token's TTL has passed (default 2/3, between 0.1 and 0.9). */
  renewAt?: number;
  /** Called with each renewal or login failure the session recovers from (or not); never with a token. */
  onError?: (err: Error) => void;
  /** Called after every successful login or renewal, with the new expiry (ms since epoch, or null: never). */
  onRenew?: (expiresAt: number | null) => void;
  /** Wall-clock source in ms (default `Date.now`). */
  clock?: () => number;
  fetch?: typeof fetch;
}

/**
 * A token that stays valid: renewed in the background at 2/3 of its TTL, and,
 * for an app, replaced by a fresh login before it reaches its maximum lifetime.
 *
 * A token that the server refuses (401/403) while it should still be valid was
 * revoked: the session stops (`state` becomes `'revoked'`), every later
 * `token()` throws, and it does not log in again by itself — revocation stops a
 * workload at once. Call `login()` to start over deliberately.
 *
 * @example
 * const sr = createClient({ addr, token: session.token });
 */
export interface Session {
  /** The current token. Throws once the session is revoked or closed. */
  token(): string;
  /** `'active'`, `'revoked'` (refused by the server) or `'closed'`. */
  readonly state: 'active' | 'revoked' | 'closed';
  /** Expiry of the current token in ms since epoch (null: does not expire). */
  readonly expiresAt: number | null;
  /** Logs in again (app credentials only) and resumes renewal. */
  login(): Promise<void>;
  /** Stops renewing; with `revoke`, also revokes the token at the server. */
  close(options?: { revoke?: boolean }): Promise<void>;
}

const MIN_DELAY_MS = 1_000;
const RETRY_MAX_MS = 30_000;

/**
 * Starts a session: logs in (or looks the given token up), then keeps the token
 * renewed until `close()`.
 *
 * @example
 * const session = await createSession({ addrs: [addr], credentials: { token: process.env.STRONGROOM_TOKEN! } });
 * const cache = createSecretsCache({ addrs: [addr], token: session.token });
 */
export async function createSession(opts: SessionOptions): Promise<Session> {
  const renewAt = Math.min(0.9, Math.max(0.1, opts.renewAt ?? 2 / 3));
  const clock = opts.clock ?? Date.now;
  let current: string | undefined = 'token' in opts.credentials ? opts.credentials.token : undefined;
  let expiresAt: number | null = null;
  let maxExpiresAt: number | null = null;
  let renewable = false;
  let state: Session['state'] = 'active';
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;

  const client = createClient({
    addr: opts.addrs,
    token: () => current,
    timeoutMs: 10_000,
    deadlineMs: 10_000,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  const parse = (s: string | null) => (s === null ? null : Date.parse(s));

  async function login() {
    if (!('app' in opts.credentials)) throw new TypeError('login() needs app credentials');
    const res = await client.request<LoginResponse>('POST', '/v1/auth/app/login', opts.credentials.app);
    current = res.auth.client_token;
    renewable = res.auth.renewable;
    expiresAt = parse(res.auth.expires_at);
    // The login answer has no maximum: ask the token itself.
    const info = await client.request<{ data: TokenInfo }>('GET', '/v1/auth/token/lookup-self');
    maxExpiresAt = parse(info.data.max_expires_at);
  }

  async function lookup() {
    const info = await client.request<{ data: TokenInfo }>('GET', '/v1/auth/token/lookup-self');
    renewable = info.data.renewable;
    expiresAt = parse(info.data.expires_at);
    maxExpiresAt = parse(info.data.max_expires_at);
  }

  function schedule() {
    clearTimeout(timer);
    if (state !== 'active' || expiresAt === null) return;
    const now = clock();
    const left = expiresAt - now;
    // Retry after a failure with capped backoff, but never past the expiry.
    const delay =
      failures > 0
        ? Math.min(RETRY_MAX_MS * Math.random() + MIN_DELAY_MS, Math.max(MIN_DELAY_MS, left / 4))
        : Math.max(MIN_DELAY_MS, left * renewAt);
    timer = setTimeout(() => void refresh(), delay);
    timer.unref();
  }

  /** Renews, or for an app near its maximum lifetime, logs in again. */
  async function refresh() {
    if (state !== 'active') return;
    const app = 'app' in opts.credentials;
    try {
      const atMax = maxExpiresAt !== null && expiresAt !== null && expiresAt >= maxExpiresAt - 1_000;
      if (renewable && !atMax) {
        const res = await client.renewSelf();
        expiresAt = parse(res.auth.expires_at);
        renewable = res.auth.renewable;
        // Renewal capped by the maximum: an app logs in again at the next turn.
      } else if (app) {
        await login();
      } else {
        return; // a given token that cannot be renewed: it lasts what it lasts
      }
      failures = 0;
      opts.onRenew?.(expiresAt);
    } catch (first) {
      failures++;
      let err = first;
      if (err instanceof StrongroomApiError && (err.status === 401 || err.status === 403)) {
        const expired = expiresAt !== null && clock() >= expiresAt;
        if (app && expired) {
          // It ran out while the server was unreachable: a fresh login is not a revocation.
          try {
            await login();
            failures = 0;
            opts.onRenew?.(expiresAt);
            schedule();
            return;
          } catch (again) {
            err = again;
          }
        }
        if (err instanceof StrongroomApiError && (err.status === 401 || err.status === 403)) {
          state = 'revoked';
          current = undefined;
        }
      }
      opts.onError?.(err as Error);
    }
    schedule();
  }

  if ('app' in opts.credentials) await login();
  else await lookup();
  schedule();

  return {
    token() {
      if (state !== 'active' || current === undefined) {
        throw new StrongroomApiError(
          401,
          state === 'closed' ? 'session_closed' : 'token_revoked',
          state === 'closed'
            ? 'this Strongroom session is closed'
            : 'the Strongroom token was revoked: the workload needs new credentials',
        );
      }
      return current;
    },
    get state() {
      return state;
    },
    get expiresAt() {
      return expiresAt;
    },
    async login() {
      await login();
      state = 'active';
      failures = 0;
      schedule();
    },
    async close(options = {}) {
      clearTimeout(timer);
      if (options.revoke && current !== undefined && state === 'active') {
        await client.revokeSelf().catch(() => {});
      }
      state = 'closed';
      current = undefined;
    },
  };
}
