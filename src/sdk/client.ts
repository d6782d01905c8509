import type { Static } from 'typebox';
import type * as api from '../api/v1.ts';
import type { OutputOf as Out } from '../contract/operation.ts';

/**
 * A typed client for the Strongroom HTTP API. Values it fetches are kept only
 * in memory and only as long as the caller holds them.
 *
 * @example
 * const sr = createClient({ addr: 'http://127.0.0.1:8210', token: process.env.STRONGROOM_TOKEN });
 * const { value } = await sr.getSecret('demo', 'dev', 'OPENAI_API_KEY');
 */
export interface ClientOptions {
  /**
   * Base URL of the server, e.g. http://127.0.0.1:8210 — or several, tried in
   * order when one is unreachable or answers 5xx (the last healthy one first).
   */
  addr: string | readonly string[];
  /**
   * A Strongroom token, sent as `Authorization: Bearer`: a string, or a
   * function read before every request (see {@link createSession}, which
   * renews it).
   */
  token?: TokenSource | undefined;
  /** Per-request timeout in milliseconds (default 30 s). */
  timeoutMs?: number;
  /**
   * Total time one call may spend on failover and retries (default: one pass
   * over the addresses, no retry rounds). Only idempotent methods (GET, PUT,
   * DELETE) are retried after a request may have reached a server.
   */
  deadlineMs?: number;
  /** First retry backoff in ms, doubled each round, full jitter, capped at 2 s (default 100 ms). */
  backoffMs?: number;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

/** A token, or a function that returns the current one (undefined: send none). */
export type TokenSource = string | (() => string | undefined);

/** The token a source holds right now. */
export const tokenOf = (src: TokenSource | undefined): string | undefined =>
  typeof src === 'function' ? src() : src;

/** The first (preferred) address of a client's options, without a trailing slash. */
export const firstAddr = (addr: string | readonly string[]): string =>
  (typeof addr === 'string' ? addr : (addr[0] ?? '')).replace(/\/+$/, '');

/** An error answered by the server (`status` >= 400) or a failure to reach it (`status` 0, code 'unreachable'). */
export class StrongroomApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | undefined;

  constructor(status: number, code: string, message: string, requestId?: string) {
    super(message);
    this.name = 'StrongroomApiError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

const seg = (s: string) => encodeURIComponent(s);

/** Connection failures where the request cannot have reached the server: safe to send elsewhere. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOENT']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: one typed method per route, sharing the failover, retry and deadline logic of call()
export function createClient(opts: ClientOptions) {
  const addrs = (typeof opts.addr === 'string' ? [opts.addr] : [...opts.addr]).map((a) =>
    a.replace(/\/+$/, ''),
  );
  if (addrs.length === 0) throw new TypeError('createClient: at least one address is needed');
  const doFetch = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadlineMs = opts.deadlineMs ?? 0;
  const backoffMs = opts.backoffMs ?? 100;
  let preferred = 0;

  /** One request to one server: a parsed answer, or a StrongroomApiError (`notSent` when it never left). */
  async function once<T>(
    base: string,
    method: string,
    path: string,
    body: unknown,
    accept: number[],
    timeout: number,
  ): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = tokenOf(opts.token);
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeout),
        redirect: 'error',
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      const e = new StrongroomApiError(
        0,
        'unreachable',
        `cannot reach Strongroom at ${base} (${cause}): is the server running, and is STRONGROOM_ADDR right?`,
      );
      if (NOT_SENT.has(cause)) notSent.add(e);
      throw e;
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.ok || accept.includes(res.status)) return json as T;
    const e = (json as api.ErrorBody | undefined)?.error;
    throw new StrongroomApiError(
      res.status,
      e?.code ?? 'http_error',
      e?.message ?? `HTTP ${res.status} from ${base}`,
      e?.request_id,
    );
  }
  const notSent = new WeakSet<StrongroomApiError>();

  /**
   * Sends a request, failing over across the addresses: on a connection that
   * never opened, always; on a timeout, a dropped connection or a 5xx, only
   * for idempotent methods (a POST may have been applied).
   */
  async function call<T>(method: string, path: string, body?: unknown, accept: number[] = []): Promise<T> {
    const start = Date.now();
    let lastErr: unknown;
    for (let round = 0; ; round++) {
      for (let i = 0; i < addrs.length; i++) {
        const idx = (preferred + i) % addrs.length;
        const left = deadlineMs > 0 ? deadlineMs - (Date.now() - start) : timeoutMs;
        if (left <= 0 && lastErr !== undefined) throw lastErr;
        try {
          const res = await once<T>(
            addrs[idx]!,
            method,
            path,
            body,
            accept,
            Math.max(1, Math.min(timeoutMs, left)),
          );
          preferred = idx;
          return res;
        } catch (err) {
          if (!(err instanceof StrongroomApiError)) throw err;
          const outage = err.status === 0 || err.status >= 500;
          if (!outage || !(notSent.has(err) || IDEMPOTENT.has(method))) throw err;
          lastErr = err;
        }
      }
      const left = deadlineMs - (Date.now() - start);
      const wait = Math.random() * Math.min(2_000, backoffMs * 2 ** round);
      if (left <= wait) throw lastErr;
      await sleep(wait);
    }
  }

  const secretPath = (project: string, env: string, name: string) =>
    `/v1/secrets/${seg(project)}/${seg(env)}/${seg(name)}`;

  return {
    /** Seal state: initialised, sealed, threshold and unseal progress. Needs no token. */
    sealStatus: () => call<Out<typeof api.SysSealStatus>>('GET', '/v1/sys/seal-status'),
    /** Initialises a new server; returns the key shares and the root token, once. */
    init: (req: api.InitRequest = {}) => call<Out<typeof api.SysInit>>('POST', '/v1/sys/init', req),
    /** Submits one unseal key share. */
    unseal: (key: string) =>
      call<Out<typeof api.SysUnseal>>('POST', '/v1/sys/unseal', { key } satisfies api.UnsealRequest),
    /** Discards the unseal shares given so far. */
    unsealReset: () =>
      call<Out<typeof api.SysUnseal>>('POST', '/v1/sys/unseal', { reset: true } satisfies api.UnsealRequest),
    /** Seals the server (root only): keys are wiped from memory. */
    seal: () => call<Out<typeof api.SysSeal>>('POST', '/v1/sys/seal'),
    /** Adds a new encryption key term; new writes use it. */
    rotate: () => call<Out<typeof api.SysRotate>>('POST', '/v1/sys/rotate'),
    /** The active encryption key term. */
    keyStatus: () => call<Out<typeof api.SysKeyStatus>>('GET', '/v1/sys/key-status'),

    /** Creates a project with its environments (default dev, staging, prod). */
    createProject: (name: string, environments?: string[]) =>
      call<Out<typeof api.ProjectCreate>>(
        'POST',
        '/v1/projects',
        environments ? { name, environments } : { name },
      ),
    listProjects: () => call<Out<typeof api.ProjectList>>('GET', '/v1/projects'),
    getProject: (project: string) => call<Out<typeof api.ProjectRead>>('GET', `/v1/projects/${seg(project)}`),
    createEnvironment: (project: string, name: string) =>
      call<Out<typeof api.EnvironmentCreate>>('POST', `/v1/projects/${seg(project)}/environments`, { name }),

    /** Writes a new version of a secret; `cas` makes it conditional on the current version (0: must not exist). */
    putSecret: (
      project: string,
      env: string,
      name: string,
      value: string,
      options: Omit<api.SecretPutRequest, 'value'> = {},
    ) =>
      call<Out<typeof api.SecretWrite>>('PUT', secretPath(project, env, name), {
        value,
        ...options,
      } satisfies api.SecretPutRequest),
    /** Reads the current (or a given) version of a secret. */
    getSecret: (project: string, env: string, name: string, version?: number) =>
      call<Out<typeof api.SecretRead>>(
        'GET',
        `${secretPath(project, env, name)}${version === undefined ? '' : `?version=${version}`}`,
      ),
    /** Names and versions in an environment (never values). */
    listSecrets: (project: string, env: string) =>
      call<Out<typeof api.SecretList>>('GET', `/v1/secrets/${seg(project)}/${seg(env)}`),
    /** Version history of a secret (never values). */
    secretVersions: (project: string, env: string, name: string) =>
      call<Out<typeof api.SecretVersions>>('GET', `${secretPath(project, env, name)}/versions`),
    /** Creates a new version holding the value of an older one. */
    rollbackSecret: (project: string, env: string, name: string, version: number) =>
      call<Out<typeof api.SecretRollback>>('POST', `${secretPath(project, env, name)}/rollback`, {
        version,
      } satisfies Static<typeof api.SecretRollbackRequest>),
    /** Soft-deletes a secret (restorable), or with `destroy` erases every version for good. */
    deleteSecret: (project: string, env: string, name: string, options: { destroy?: boolean } = {}) =>
      call<Out<typeof api.SecretDelete>>(
        'DELETE',
        `${secretPath(project, env, name)}${options.destroy ? '?destroy=true' : ''}`,
      ),
    restoreSecret: (project: string, env: string, name: string) =>
      call<Out<typeof api.SecretRestore>>('POST', `${secretPath(project, env, name)}/restore`),

    /** Creates a child of the calling token: never more roles, scope or lifetime than the caller. */
    createToken: (req: api.TokenCreateRequest = {}) =>
      call<Out<typeof api.TokenCreate>>('POST', '/v1/auth/token/create', req),
    /** The calling token's own record. */
    lookupSelf: () => call<Out<typeof api.TokenLookupSelf>>('GET', '/v1/auth/token/lookup-self'),
    /** Extends the calling token (up to its maximum lifetime). */
    renewSelf: (increment?: string | number) =>
      call<Out<typeof api.TokenRenewSelf>>(
        'POST',
        '/v1/auth/token/renew-self',
        increment === undefined ? {} : { increment },
      ),
    /** Revokes the calling token and its children. */
    revokeSelf: () => call<Out<typeof api.TokenRevokeSelf>>('POST', '/v1/auth/token/revoke-self'),
    /** Revokes a token (and its children) by value. */
    revokeToken: (token: string) =>
      call<Out<typeof api.TokenRevoke>>('POST', '/v1/auth/token/revoke', { token }),
    /** Revokes a token (and its children) by accessor. */
    revokeAccessor: (accessor: string) =>
      call<Out<typeof api.TokenRevokeAccessor>>('POST', '/v1/auth/token/revoke-accessor', { accessor }),
    lookupAccessor: (accessor: string) =>
      call<Out<typeof api.TokenLookupAccessor>>('POST', '/v1/auth/token/lookup-accessor', { accessor }),

    /** Stores a named Cedar policy file (validated against the schema). */
    putPolicy: (name: string, policy: string) =>
      call<Out<typeof api.PolicyPut>>('PUT', `/v1/sys/policies/${seg(name)}`, { policy }),
    getPolicy: (name: string) => call<Out<typeof api.PolicyGet>>('GET', `/v1/sys/policies/${seg(name)}`),
    listPolicies: () => call<Out<typeof api.PolicyList>>('GET', '/v1/sys/policies'),
    deletePolicy: (name: string) =>
      call<Out<typeof api.PolicyDelete>>('DELETE', `/v1/sys/policies/${seg(name)}`),
    /** Explains whether a principal may perform an action on a resource. */
    testPolicy: (req: api.PolicyTestRequest) =>
      call<Out<typeof api.PolicyTest>>('POST', '/v1/sys/policy-test', req),

    /** Low-level call for routes without a typed method. */
    request: call,
  };
}

export type StrongroomClient = ReturnType<typeof createClient>;
