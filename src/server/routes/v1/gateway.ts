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
    operation: api.GatewayKeyCreate,
    schema: { body: api.KeyCreateRequest },
    input: body,
    status: () => 201,
  },
  {
    method: 'GET',
    url: '/v1/gateway/keys',
    operation: api.GatewayKeyList,
    schema: { querystring: api.KeyListQuery },
    input: (r) => ({ include_inactive: (r as Req).query.include_inactive === 'true' }),
  },
  {
    method: 'GET',
    url: '/v1/gateway/keys/:id',
    operation: api.GatewayKeyRead,
    schema: { params: api.KeyIdParams },
    input: (r) => ({ id: params(r).id }),
  },
  {
    method: 'PUT',
    url: '/v1/gateway/keys/:id',
    operation: api.GatewayKeyUpdate,
    schema: { params: api.KeyIdParams, body: api.KeyUpdateRequest },
    input: (r) => ({ ...body(r), id: params(r).id }),
  },
  {
    method: 'DELETE',
    url: '/v1/gateway/keys/:id',
    operation: api.GatewayKeyRevoke,
    schema: { params: api.KeyIdParams },
    input: (r) => ({ id: params(r).id }),
  },
  // the vault service of gateways running elsewhere (src/assemble/gateway-vault/vault-service.ts; docs/gateway-remote.md)
  ...(
    [
      ['authenticate', api.GatewayVaultAuthenticate, api.VaultAuthenticateRequest],
      ['authorize', api.GatewayVaultAuthorize, api.VaultAuthorizeRequest],
      ['fingerprints', api.GatewayVaultHolds, api.VaultHoldsRequest],
      ['admit', api.GatewayVaultAdmit, api.VaultAdmitRequest],
      ['budgets/settle', api.GatewayVaultSettle, api.VaultSettleRequest],
      ['audit', api.GatewayVaultAudit, api.VaultAuditRequest],
      ['revoke', api.GatewayVaultRevoke, api.VaultRevokeRequest],
      ['live', api.GatewayVaultLive, api.VaultLiveRequest],
    ] as const
  ).map(
    ([path, op, schema]): RouteDef => ({
      method: 'POST',
      url: `/v1/gateway/vault/${path}`,
      operation: op,
      schema: { body: schema },
      input: body,
    }),
  ),
];
