import type { FastifyRequest } from 'fastify';
import * as api from '../../../api/gateway.ts';
import type { RouteDef } from './routes.ts';

/** Gateway virtual keys (src/engines/gateway/virtual-keys.ts; docs/gateway-keys.md). */
type Req = FastifyRequest<{
  Params: Record<string, string>;
  Querystring: Record<string, string>;
  Body: Record<string, unknown>;
}>;
const body = (r: FastifyRequest) => ({ ...(((r as Req).body ?? {}) as Record<string, unknown>) });
const params = (r: FastifyRequest) => (r as Req).params;

export const gatewayRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/gateway/keys',
    operation: 'gateway.key.create',
    schema: { body: api.KeyCreateRequest },
    input: body,
    status: () => 201,
  },
  {
    method: 'GET',
    url: '/v1/gateway/keys',
    operation: 'gateway.key.list',
    schema: { querystring: api.KeyListQuery },
    input: (r) => ({ include_inactive: (r as Req).query.include_inactive === 'true' }),
  },
  {
    method: 'GET',
    url: '/v1/gateway/keys/:id',
    operation: 'gateway.key.read',
    schema: { params: api.KeyIdParams },
    input: (r) => ({ id: params(r).id }),
  },
  {
    method: 'PUT',
    url: '/v1/gateway/keys/:id',
    operation: 'gateway.key.update',
    schema: { params: api.KeyIdParams, body: api.KeyUpdateRequest },
    input: (r) => ({ ...body(r), id: params(r).id }),
  },
  {
    method: 'DELETE',
    url: '/v1/gateway/keys/:id',
    operation: 'gateway.key.revoke',
    schema: { params: api.KeyIdParams },
    input: (r) => ({ id: params(r).id }),
  },
  // the vault service of gateways running elsewhere (src/gateway/vault-service.ts; docs/gateway-remote.md)
  ...(
    [
      ['authenticate', 'authenticate', api.VaultAuthenticateRequest],
      ['authorize', 'authorize', api.VaultAuthorizeRequest],
      ['fingerprints', 'holds', api.VaultHoldsRequest],
      ['admit', 'admit', api.VaultAdmitRequest],
      ['budgets/settle', 'settle', api.VaultSettleRequest],
      ['audit', 'audit', api.VaultAuditRequest],
      ['revoke', 'revoke', api.VaultRevokeRequest],
      ['live', 'live', api.VaultLiveRequest],
    ] as const
  ).map(
    ([path, op, schema]): RouteDef => ({
      method: 'POST',
      url: `/v1/gateway/vault/${path}`,
      operation: `gateway.vault.${op}`,
      schema: { body: schema },
      input: body,
    }),
  ),
];
