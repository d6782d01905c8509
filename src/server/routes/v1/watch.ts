import type { FastifyRequest } from 'fastify';
import { EnvParams } from '../../../api/v1.ts';
import * as ops from '../../../api/watch.ts';
import { WatchQuery } from '../../../api/watch.ts';
import type { RouteDef } from './routes.ts';

/**
 * The watch stream (src/engines/watch/watch.ts): server-sent events of the
 * changes to an environment's secrets. `Last-Event-ID` (sent by EventSource
 * on reconnect) resumes like `?since=`.
 */
type Req = FastifyRequest<{ Params: Record<string, string>; Querystring: Record<string, string> }>;

export const watchRoutes: RouteDef[] = [
  {
    method: 'GET',
    url: '/v1/secrets/:project/:env/watch',
    operation: ops.SecretWatch,
    stream: true,
    schema: { params: EnvParams, querystring: WatchQuery },
    input: (r) => {
      const { project, env } = (r as Req).params;
      const q = (r as Req).query;
      const last = r.headers['last-event-id'];
      const since = q.since ?? (typeof last === 'string' && last !== '' ? last.slice(0, 40) : undefined);
      return {
        project,
        env,
        ...(q.name === undefined ? {} : { name: q.name }),
        ...(since === undefined ? {} : { since }),
        ...(q.heartbeat === undefined ? {} : { heartbeat: Number(q.heartbeat) }),
      };
    },
  },
];
