import type { FastifyRequest } from 'fastify';
import * as ops from '../../../api/rotation.ts';
import { SecretRotateRequest } from '../../../api/rotation.ts';
import { SecretParams } from '../../../api/v1.ts';
import type { RouteDef } from './routes.ts';

type Req = FastifyRequest<{ Params: Record<string, string>; Body: Record<string, unknown> }>;
const params = (req: FastifyRequest) => (req as Req).params;
const body = (req: FastifyRequest) => ((req as Req).body ?? {}) as Record<string, unknown>;

/** Secret rotation (docs/rotation.md). */
export const rotationRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/secrets/:project/:env/:name/rotate',
    operation: ops.SecretRotate,
    schema: { params: SecretParams, body: SecretRotateRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
  },
  {
    method: 'GET',
    url: '/v1/secrets/:project/:env/:name/rotation',
    operation: ops.SecretRotationStatus,
    schema: { params: SecretParams },
    input: (r) => ({ ...params(r) }),
  },
];
