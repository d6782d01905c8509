import type { UnusedResponse, UsageGrouping, UsageResponse } from '../api/usage.ts';
import type * as api from '../api/v1.ts';
import { type ClientOptions, StrongroomApiError } from './client.ts';

export type {
  UnusedResponse,
  UnusedSecret,
  UsageByActorRow,
  UsageByHourRow,
  UsageBySecretRow,
  UsageGrouping,
  UsageResponse,
} from '../api/usage.ts';

export interface UsageQueryOptions {
  /** One secret of the environment (default: all of them). */
  name?: string;
  /** An ISO 8601 time or a duration before now (`24h`, `7d`; default `7d`). */
  since?: string;
  until?: string;
  /** Rows per secret (default for an environment), per actor (default for one secret), or per hour. */
  by?: UsageGrouping;
}

async function request<T>(opts: ClientOptions, path: string): Promise<T> {
  const base = opts.addr.replace(/\/+$/, '');
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(`${base}${path}`, {
      method: 'GET',
      headers,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
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
  if (res.ok) return json as T;
  const e = (json as api.ErrorBody | undefined)?.error;
  throw new StrongroomApiError(
    res.status,
    e?.code ?? 'http_error',
    e?.message ?? `HTTP ${res.status} from ${base}`,
    e?.request_id,
  );
}

const seg = (s: string) => encodeURIComponent(s);

/** Who read the secrets of an environment (or one secret), how often and when last. */
export function usageQuery(
  opts: ClientOptions,
  project: string,
  env: string,
  q: UsageQueryOptions = {},
): Promise<UsageResponse> {
  const params = new URLSearchParams();
  for (const k of ['since', 'until', 'by'] as const) if (q[k] !== undefined) params.set(k, q[k]);
  // a secret named like a reserved path word (`unused`) is asked for with ?name=
  const nameInQuery = q.name === 'unused';
  if (nameInQuery) params.set('name', q.name!);
  const qs = params.toString();
  const path = `/v1/usage/${seg(project)}/${seg(env)}${q.name !== undefined && !nameInQuery ? `/${seg(q.name)}` : ''}`;
  return request(opts, `${path}${qs ? `?${qs}` : ''}`);
}

/** Secrets of an environment nobody read for `days` days (default 30): candidates for removal. */
export function usageUnused(
  opts: ClientOptions,
  project: string,
  env: string,
  days?: number,
): Promise<UnusedResponse> {
  return request(
    opts,
    `/v1/usage/${seg(project)}/${seg(env)}/unused${days === undefined ? '' : `?days=${days}`}`,
  );
}
