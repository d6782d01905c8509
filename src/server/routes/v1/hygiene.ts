import type { FastifyRequest } from 'fastify';
import * as ops from '../../../api/hygiene.ts';
import { StaleQuery } from '../../../api/hygiene.ts';
import type { RouteDef } from './routes.ts';

/**
 * Rotation and expiry hygiene: the stale report (src/engines/hygiene/) and
 * the Prometheus metrics endpoint (src/engines/metrics/metrics.ts).
 */
type Req = FastifyRequest<{ Querystring: Record<string, string> }>;

export const hygieneRoutes: RouteDef[] = [
  {
    method: 'GET',
    url: '/v1/reports/stale',
    operation: ops.SecretStale,
    schema: { querystring: StaleQuery },
    input: (r) => ({ ...(r as Req).query }),
  },
  {
    method: 'GET',
    url: '/v1/sys/metrics',
    operation: ops.SysMetrics,
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    schema: {},
    input: () => ({}),
  },
];
