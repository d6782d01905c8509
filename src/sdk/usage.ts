import type * as api from '../api/usage.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import type { Call } from './auth.ts';

export type { UsageByActorRow, UsageByHourRow, UsageBySecretRow, UsageGrouping } from '../api/usage.ts';

/** The query of `GET /v1/usage/{project}/{env}[/{name}]` (src/api/usage.ts). */
export interface UsageQueryOptions extends api.UsageQuery {
  /** One secret of the environment (default: all of them). */
  name?: string;
  /** An ISO 8601 time or a duration before now (`24h`, `7d`; default `7d`). */
  since?: string;
  until?: string;
  /** Rows per secret (default for an environment), per actor (default for one secret), or per hour. */
  by?: api.UsageGrouping;
}

const seg = (s: string) => encodeURIComponent(s);

/** Who read the secrets of an environment (or one secret), how often and when last. */
export function usageQuery(
  call: Call,
  project: string,
  env: string,
  q: UsageQueryOptions = {},
): Promise<Out<typeof api.UsageQueryOp>> {
  const params = new URLSearchParams();
  for (const k of ['since', 'until', 'by'] as const) if (q[k] !== undefined) params.set(k, q[k]);
  // a secret named like a reserved path word (`unused`) is asked for with ?name=
  const nameInQuery = q.name === 'unused';
  if (nameInQuery) params.set('name', q.name!);
  const qs = params.toString();
  const path = `/v1/usage/${seg(project)}/${seg(env)}${q.name !== undefined && !nameInQuery ? `/${seg(q.name)}` : ''}`;
  // usage.secret (a name in the path) answers with usage.query's schema
  return call<Out<typeof api.UsageQueryOp>>('GET', `${path}${qs ? `?${qs}` : ''}`);
}

/** Secrets of an environment nobody read for `days` days (default 30): candidates for removal. */
export function usageUnused(
  call: Call,
  project: string,
  env: string,
  days?: number,
): Promise<Out<typeof api.UsageUnused>> {
  return call<Out<typeof api.UsageUnused>>(
    'GET',
    `/v1/usage/${seg(project)}/${seg(env)}/unused${days === undefined ? '' : `?days=${days}`}`,
  );
}
