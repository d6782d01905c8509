import type { UnusedResponse, UsageGrouping, UsageResponse } from '../api/usage.ts';
import type { Call } from './auth.ts';

export type {
  UnusedResponse,
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

const seg = (s: string) => encodeURIComponent(s);

/** Who read the secrets of an environment (or one secret), how often and when last. */
export function usageQuery(
  call: Call,
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
  return call('GET', `${path}${qs ? `?${qs}` : ''}`);
}

/** Secrets of an environment nobody read for `days` days (default 30): candidates for removal. */
export function usageUnused(
  call: Call,
  project: string,
  env: string,
  days?: number,
): Promise<UnusedResponse> {
  return call(
    'GET',
    `/v1/usage/${seg(project)}/${seg(env)}/unused${days === undefined ? '' : `?days=${days}`}`,
  );
}
