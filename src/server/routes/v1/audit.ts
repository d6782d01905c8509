import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import * as ops from '../../../api/audit.ts';
import type { RouteDef } from './routes.ts';

/**
 * Audit routes: compute the HMAC an audit entry carries for a value (to search
 * the log for it), and search the audit file. The operations (src/audit/
 * operations.ts) declare the actions `audit.hash` and `audit.read`.
 */
const Strict = { additionalProperties: false } as const;

const MAX_AUDIT_HASH_INPUT = 64 * 1024;

const AuditHashRequest = Type.Object({ input: Type.String({ maxLength: MAX_AUDIT_HASH_INPUT }) }, Strict);

const Filter = Type.String({ minLength: 1, maxLength: 256 });
// an ISO 8601 time or a duration before now (90s, 15m, 1h, 7d)
const TimeBound = Type.String({ minLength: 1, maxLength: 40, pattern: '^[0-9A-Za-z:.+-]+$' });

const AuditQuery = Type.Object(
  {
    actor: Type.Optional(Filter),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[a-z0-9_.-]+\\*?$' })),
    request_id: Type.Optional(Filter),
    since: Type.Optional(TimeBound),
    until: Type.Optional(TimeBound),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$' })),
  },
  Strict,
);

type Req = FastifyRequest<{ Querystring: Record<string, string>; Body: Record<string, unknown> }>;

export const auditRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/sys/audit-hash',
    operation: ops.AuditHash,
    schema: { body: AuditHashRequest },
    input: (r) => ({ input: (r as Req).body?.input }),
  },
  {
    method: 'GET',
    url: '/v1/audit',
    operation: ops.AuditQuery,
    schema: { querystring: AuditQuery },
    input: (r) => {
      const { limit, ...rest } = (r as Req).query;
      return { ...rest, ...(limit === undefined ? {} : { limit: Number(limit) }) };
    },
  },
];
