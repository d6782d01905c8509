import type { FastifyRequest } from 'fastify';
import * as co from '../../../api/checkout.ts';
import * as db from '../../../api/database.ts';
import * as ops from '../../../api/leases.ts';
import * as pk from '../../../api/provider-keys.ts';
import * as tl from '../../../api/tools.ts';
import { SecretParams } from '../../../api/v1.ts';
import * as wrap from '../../../api/wrapping.ts';
import type { RouteDef } from './routes.ts';

type Req = FastifyRequest<{
  Params: Record<string, string>;
  Querystring: Record<string, unknown>;
  Body: Record<string, unknown>;
}>;
const params = (req: FastifyRequest) => (req as Req).params;
const query = (req: FastifyRequest) => (req as Req).query;
const body = (req: FastifyRequest) => ((req as Req).body ?? {}) as Record<string, unknown>;
const none = () => ({});

/** Vault uses PUT for these; POST is accepted too. */
const both = (r: Omit<RouteDef, 'method'>): RouteDef[] => [
  { ...r, method: 'PUT' },
  { ...r, method: 'POST' },
];

/** Leases (docs/leases.md), Vault's `sys/leases` paths. */
export const leaseRoutes: RouteDef[] = [
  ...both({
    url: '/v1/sys/leases/lookup',
    operation: ops.LeaseLookup,
    schema: { body: ops.LeaseIdRequest },
    input: body,
  }),
  ...both({
    url: '/v1/sys/leases/renew',
    operation: ops.LeaseRenew,
    schema: { body: ops.LeaseRenewRequest },
    input: body,
  }),
  ...both({
    url: '/v1/sys/leases/revoke',
    operation: ops.LeaseRevoke,
    schema: { body: ops.LeaseIdRequest },
    input: body,
  }),
  ...both({
    url: '/v1/sys/leases/revoke-prefix',
    operation: ops.LeaseRevokePrefix,
    schema: { body: ops.LeaseRevokePrefixRequest },
    input: body,
  }),
  {
    method: 'GET',
    url: '/v1/sys/leases',
    operation: ops.LeaseList,
    schema: { querystring: ops.LeaseListQuerySchema },
    input: (r) => {
      const q = query(r) as Record<string, string | undefined>;
      return {
        ...(q.prefix === undefined ? {} : { prefix: q.prefix }),
        ...(q.after === undefined ? {} : { after: q.after }),
        ...(q.limit === undefined ? {} : { limit: Number(q.limit) }),
      };
    },
  },
];

/** Dynamic database credentials (docs/database.md), Vault's `database/` paths. */
export const databaseRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/database/config/:name',
    operation: db.DatabaseConfigWrite,
    schema: { params: db.DatabaseParams, body: db.DatabaseConfigRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
  },
  {
    method: 'GET',
    url: '/v1/database/config/:name',
    operation: db.DatabaseConfigRead,
    schema: { params: db.DatabaseParams },
    input: params,
  },
  { method: 'GET', url: '/v1/database/config', operation: db.DatabaseConfigList, schema: {}, input: none },
  {
    method: 'DELETE',
    url: '/v1/database/config/:name',
    operation: db.DatabaseConfigDelete,
    schema: { params: db.DatabaseParams },
    input: params,
  },
  {
    method: 'POST',
    url: '/v1/database/rotate-root/:name',
    operation: db.DatabaseRotateRoot,
    schema: { params: db.DatabaseParams },
    input: params,
  },
  {
    method: 'POST',
    url: '/v1/database/roles/:role',
    operation: db.DatabaseRoleWrite,
    schema: { params: db.RoleParams, body: db.DatabaseRoleRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
  },
  {
    method: 'GET',
    url: '/v1/database/roles/:role',
    operation: db.DatabaseRoleRead,
    schema: { params: db.RoleParams },
    input: params,
  },
  { method: 'GET', url: '/v1/database/roles', operation: db.DatabaseRoleList, schema: {}, input: none },
  {
    method: 'DELETE',
    url: '/v1/database/roles/:role',
    operation: db.DatabaseRoleDelete,
    schema: { params: db.RoleParams },
    input: params,
  },
  // Vault clients read credentials with GET; POST takes options (a tenant, a shorter TTL)
  {
    method: 'GET',
    url: '/v1/database/creds/:role',
    operation: db.DatabaseCredsIssue,
    schema: { params: db.RoleParams, querystring: db.DatabaseCredsRequest },
    input: (r) => ({ ...query(r), ...params(r) }),
    wrappable: true,
  },
  {
    method: 'POST',
    url: '/v1/database/creds/:role',
    operation: db.DatabaseCredsIssue,
    schema: { params: db.RoleParams, body: db.DatabaseCredsRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
    wrappable: true,
  },
];

/** Response wrapping (docs/wrapping.md), Vault's `sys/wrapping` paths: the wrapping token is the credential. */
export const wrappingRoutes: RouteDef[] = [
  ...both({
    url: '/v1/sys/wrapping/unwrap',
    operation: wrap.WrappingUnwrap,
    schema: { body: wrap.WrappingTokenRequest },
    input: body,
  }),
  ...both({
    url: '/v1/sys/wrapping/lookup',
    operation: wrap.WrappingLookup,
    schema: { body: wrap.WrappingTokenRequest },
    input: body,
  }),
];

/** Check-out / check-in of static secrets (docs/checkout.md). */
export const checkoutRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/secrets/:project/:env/:name/checkout',
    operation: co.SecretCheckout,
    schema: { params: SecretParams, body: co.CheckoutRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
    wrappable: true,
  },
  {
    method: 'GET',
    url: '/v1/secrets/:project/:env/:name/checkout',
    operation: co.SecretHolder,
    schema: { params: SecretParams },
    input: params,
  },
  {
    method: 'POST',
    url: '/v1/secrets/:project/:env/:name/checkin',
    operation: co.SecretCheckin,
    schema: { params: SecretParams, body: co.CheckinRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
  },
];

/** Per-lease LLM provider keys (docs/provider-keys.md). */
export const providerKeyRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/provider-keys/roles/:role',
    operation: pk.ProviderRoleWrite,
    schema: { params: pk.ProviderRoleParams, body: pk.ProviderRoleRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
  },
  {
    method: 'GET',
    url: '/v1/provider-keys/roles/:role',
    operation: pk.ProviderRoleRead,
    schema: { params: pk.ProviderRoleParams },
    input: params,
  },
  { method: 'GET', url: '/v1/provider-keys/roles', operation: pk.ProviderRoleList, schema: {}, input: none },
  {
    method: 'DELETE',
    url: '/v1/provider-keys/roles/:role',
    operation: pk.ProviderRoleDelete,
    schema: { params: pk.ProviderRoleParams },
    input: params,
  },
  {
    method: 'POST',
    url: '/v1/provider-keys/creds/:role',
    operation: pk.ProviderCreds,
    schema: { params: pk.ProviderRoleParams, body: pk.ProviderCredsRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
    wrappable: true,
  },
];

/** The tool registry and per-tool credentials (docs/tools.md). */
export const toolRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/tools/:tool',
    operation: tl.ToolWrite,
    schema: { params: tl.ToolParams, body: tl.ToolRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
  },
  {
    method: 'GET',
    url: '/v1/tools/:tool',
    operation: tl.ToolRead,
    schema: { params: tl.ToolParams },
    input: params,
  },
  { method: 'GET', url: '/v1/tools', operation: tl.ToolList, schema: {}, input: none },
  {
    method: 'DELETE',
    url: '/v1/tools/:tool',
    operation: tl.ToolDelete,
    schema: { params: tl.ToolParams },
    input: params,
  },
  {
    method: 'POST',
    url: '/v1/tools/:tool/credentials',
    operation: tl.ToolCredential,
    schema: { params: tl.ToolParams, body: tl.ToolCredentialRequest },
    input: (r) => ({ ...body(r), ...params(r) }),
    wrappable: true,
  },
];
