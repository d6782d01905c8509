import type { FastifyRequest } from 'fastify';
import * as ops from '../../../api/usage.ts';
import { UnusedQuery, UsageQuery } from '../../../api/usage.ts';
import { EnvParams, SecretParams } from '../../../api/v1.ts';
import type { RouteDef } from './routes.ts';

/**
 * Usage analytics (docs/usage.md): who read which secret, how often and when
 * last, and the secrets nobody read for N days. Both operations declare the
 * action `usage.read` (src/engines/usage/operations.ts).
 */
type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

export const usageRoutes: RouteDef[] = [
  {
    // static segments win over parameters, so this is matched before /:name
    method: 'GET',
    url: '/v1/usage/:project/:env/unused',
    operation: ops.UsageUnused,
    schema: { params: EnvParams, querystring: UnusedQuery },
    input: (r) => {
      const { project, env } = (r as Req).params;
      const days = (r as Req).query.days;
      return { project, env, ...(days === undefined ? {} : { days: Number(days) }) };
    },
  },
  {
    method: 'GET',
    url: '/v1/usage/:project/:env',
    operation: ops.UsageQueryOp,
    schema: { params: EnvParams, querystring: UsageQuery },
    input: (r) => ({ ...(r as Req).query, ...(r as Req).params }),
  },
  {
    method: 'GET',
    url: '/v1/usage/:project/:env/:name',
    operation: ops.UsageSecret,
    schema: { params: SecretParams, querystring: UsageQuery },
    input: (r) => ({ ...(r as Req).query, ...(r as Req).params }),
  },
];
