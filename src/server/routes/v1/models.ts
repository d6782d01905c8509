import type { FastifyRequest } from 'fastify';
import * as m from '../../../api/models.ts';
import type { RouteDef } from './routes.ts';

type Req = FastifyRequest<{ Params: Record<string, string>; Body: Record<string, unknown> }>;
const params = (req: FastifyRequest) => (req as Req).params;
const body = (req: FastifyRequest) => ((req as Req).body ?? {}) as Record<string, unknown>;
const merged = (r: FastifyRequest) => ({ ...body(r), ...params(r) });

/** Model policies and verify-then-unwrap releases (docs/models.md). */
export const modelRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/models/advisories',
    operation: m.ModelAdvisoriesLoad,
    schema: { body: m.ModelAdvisoriesRequest },
    input: body,
    bodyLimit: 32 * 1024 * 1024,
  },
  ...(['PUT', 'POST'] as const).map(
    (method): RouteDef => ({
      method,
      url: '/v1/models/:name',
      operation: m.ModelPolicyWrite,
      schema: { params: m.ModelPolicyParams, body: m.ModelPolicyRequest },
      input: merged,
    }),
  ),
  {
    method: 'GET',
    url: '/v1/models/:name',
    operation: m.ModelPolicyRead,
    schema: { params: m.ModelPolicyParams },
    input: params,
  },
  { method: 'GET', url: '/v1/models', operation: m.ModelPolicyList, schema: {}, input: () => ({}) },
  {
    method: 'DELETE',
    url: '/v1/models/:name',
    operation: m.ModelPolicyDelete,
    schema: { params: m.ModelPolicyParams },
    input: params,
  },
  {
    method: 'POST',
    url: '/v1/models/:name/release',
    operation: m.ModelRelease,
    schema: { params: m.ModelPolicyParams, body: m.ModelReleaseRequest },
    input: merged,
    // a signature lists every file of the model
    bodyLimit: 16 * 1024 * 1024,
  },
];
