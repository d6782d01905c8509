import type * as api from '../api/v1.ts';

/**
 * A typed client for the Strongroom HTTP API. Values it fetches are kept only
 * in memory and only as long as the caller holds them.
 *
 * @example
 * const sr = createClient({ addr: 'http://127.0.0.1:8210', token: process.env.STRONGROOM_TOKEN });
 * const { value } = await sr.getSecret('demo', 'dev', 'OPENAI_API_KEY');
 */
export interface ClientOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:8210 */
  addr: string;
  /** A Strongroom token, sent as `Authorization: Bearer`. */
  token?: string | undefined;
  /** Per-request timeout in milliseconds (default 30 s). */
  timeoutMs?: number;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

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

export function createClient(opts: ClientOptions) {
  const base = opts.addr.replace(/\/+$/, '');
  const doFetch = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? 30_000;

  async function call<T>(method: string, path: string, body?: unknown, accept: number[] = []): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new StrongroomApiError(
        0,
        'unreachable',
        `cannot reach Strongroom at ${base} (${cause}): is the server running, and is STRONGROOM_ADDR right?`,
      );
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

  const secretPath = (project: string, env: string, name: string) =>
    `/v1/secrets/${seg(project)}/${seg(env)}/${seg(name)}`;

  return {
    /** Seal state: initialised, sealed, threshold and unseal progress. Needs no token. */
    sealStatus: () => call<api.SealStatusResponse>('GET', '/v1/sys/seal-status'),
    /** Initialises a new server; returns the key shares and the root token, once. */
    init: (req: api.InitRequest = {}) => call<api.InitResponse>('POST', '/v1/sys/init', req),
    /** Submits one unseal key share. */
    unseal: (key: string) => call<api.SealStatusResponse>('POST', '/v1/sys/unseal', { key }),
    /** Discards the unseal shares given so far. */
    unsealReset: () => call<api.SealStatusResponse>('POST', '/v1/sys/unseal', { reset: true }),
    /** Seals the server (root only): keys are wiped from memory. */
    seal: () => call<api.SealStatusResponse>('POST', '/v1/sys/seal'),
    /** Adds a new encryption key term; new writes use it. */
    rotate: () => call<{ term: number; installed_at: string }>('POST', '/v1/sys/rotate'),
    /** The active encryption key term. */
    keyStatus: () => call<api.KeyStatusResponse>('GET', '/v1/sys/key-status'),

    /** Creates a project with its environments (default dev, staging, prod). */
    createProject: (name: string, environments?: string[]) =>
      call<api.Project>('POST', '/v1/projects', environments ? { name, environments } : { name }),
    listProjects: () => call<{ projects: api.Project[] }>('GET', '/v1/projects'),
    getProject: (project: string) => call<api.Project>('GET', `/v1/projects/${seg(project)}`),
    createEnvironment: (project: string, name: string) =>
      call<{ project: string; name: string; created_at: string }>(
        'POST',
        `/v1/projects/${seg(project)}/environments`,
        { name },
      ),

    /** Writes a new version of a secret; `cas` makes it conditional on the current version (0: must not exist). */
    putSecret: (
      project: string,
      env: string,
      name: string,
      value: string,
      options: Omit<api.SecretPutRequest, 'value'> = {},
    ) =>
      call<api.SecretWriteResponse & { hint?: string }>('PUT', secretPath(project, env, name), {
        value,
        ...options,
      }),
    /** Reads the current (or a given) version of a secret. */
    getSecret: (project: string, env: string, name: string, version?: number) =>
      call<api.SecretReadResponse>(
        'GET',
        `${secretPath(project, env, name)}${version === undefined ? '' : `?version=${version}`}`,
      ),
    /** Names and versions in an environment (never values). */
    listSecrets: (project: string, env: string) =>
      call<api.SecretListResponse>('GET', `/v1/secrets/${seg(project)}/${seg(env)}`),
    /** Version history of a secret (never values). */
    secretVersions: (project: string, env: string, name: string) =>
      call<api.SecretVersionsResponse>('GET', `${secretPath(project, env, name)}/versions`),
    /** Creates a new version holding the value of an older one. */
    rollbackSecret: (project: string, env: string, name: string, version: number) =>
      call<api.SecretWriteResponse & { rolled_back_from: number }>(
        'POST',
        `${secretPath(project, env, name)}/rollback`,
        { version },
      ),
    /** Soft-deletes a secret (restorable), or with `destroy` erases every version for good. */
    deleteSecret: (project: string, env: string, name: string, options: { destroy?: boolean } = {}) =>
      call<{ name: string; deleted_at: string; destroyed: boolean }>(
        'DELETE',
        `${secretPath(project, env, name)}${options.destroy ? '?destroy=true' : ''}`,
      ),
    restoreSecret: (project: string, env: string, name: string) =>
      call<{ name: string; version: number }>('POST', `${secretPath(project, env, name)}/restore`),

    /** Creates a child of the calling token: never more roles, scope or lifetime than the caller. */
    createToken: (req: api.TokenCreateRequest = {}) =>
      call<api.AuthResponse>('POST', '/v1/auth/token/create', req),
    /** The calling token's own record. */
    lookupSelf: () => call<{ data: api.TokenInfo }>('GET', '/v1/auth/token/lookup-self'),
    /** Extends the calling token (up to its maximum lifetime). */
    renewSelf: (increment?: string | number) =>
      call<{
        auth: Pick<api.AuthResponse['auth'], 'accessor' | 'policies' | 'expires_at' | 'renewable' | 'ttl'>;
      }>('POST', '/v1/auth/token/renew-self', increment === undefined ? {} : { increment }),
    /** Revokes the calling token and its children. */
    revokeSelf: () => call<{ revoked: number }>('POST', '/v1/auth/token/revoke-self'),
    /** Revokes a token (and its children) by value. */
    revokeToken: (token: string) => call<{ revoked: number }>('POST', '/v1/auth/token/revoke', { token }),
    /** Revokes a token (and its children) by accessor. */
    revokeAccessor: (accessor: string) =>
      call<{ revoked: number }>('POST', '/v1/auth/token/revoke-accessor', { accessor }),
    lookupAccessor: (accessor: string) =>
      call<{ data: api.TokenInfo }>('POST', '/v1/auth/token/lookup-accessor', { accessor }),

    /** Stores a named Cedar policy file (validated against the schema). */
    putPolicy: (name: string, policy: string) =>
      call<{ name: string; policies: number }>('PUT', `/v1/sys/policies/${seg(name)}`, { policy }),
    getPolicy: (name: string) =>
      call<{ name: string; policy: string }>('GET', `/v1/sys/policies/${seg(name)}`),
    listPolicies: () => call<{ policies: string[] }>('GET', '/v1/sys/policies'),
    deletePolicy: (name: string) => call<{ deleted: string }>('DELETE', `/v1/sys/policies/${seg(name)}`),
    /** Explains whether a principal may perform an action on a resource. */
    testPolicy: (req: api.PolicyTestRequest) =>
      call<api.PolicyTestResponse>('POST', '/v1/sys/policy-test', req),

    /** Low-level call for routes without a typed method. */
    request: call,
  };
}

export type StrongroomClient = ReturnType<typeof createClient>;
