import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import * as api from '../../../api/identity.ts';
import type { RouteDef } from './routes.ts';

/** Workload identity routes (src/engines/identity; docs/identity.md). */
type Req = FastifyRequest<{ Params: Record<string, string>; Body: Record<string, unknown> }>;
const body = (r: FastifyRequest) => ({ ...(((r as Req).body ?? {}) as Record<string, unknown>) });
const params = (r: FastifyRequest) => (r as Req).params;
const none = () => ({});

/**
 * The URL of the listener that accepted the request, for the OIDC issuer when `identity.issuer` is
 * not set: the scheme from the socket, the address and port the server is bound to, never a Host or
 * X-Forwarded-* header a client chose. Undefined when there is no one such URL (not listening, or
 * bound to every interface).
 */
function listenerUrl(r: FastifyRequest): string | undefined {
  const a = r.server.server.address();
  if (!a || typeof a === 'string' || a.address === '0.0.0.0' || a.address === '::') return undefined;
  const host = a.address.includes(':') ? `[${a.address}]` : a.address;
  return `${(r.raw.socket as TLSSocket).encrypted ? 'https' : 'http'}://${host}:${a.port}`;
}

export const identityRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/v1/identity/x509-svid',
    operation: api.IdentityX509Svid,
    // a join token in the body is the credential: no bearer token, no SVID needed
    variant: { operation: api.IdentityX509SvidJoin, when: (r) => typeof body(r).join_token === 'string' },
    schema: { body: api.X509SvidRequest },
    input: body,
  },
  {
    method: 'POST',
    url: '/v1/identity/jwt-svid',
    operation: api.IdentityJwtSvid,
    schema: { body: api.JwtSvidRequest },
    input: (r) => ({ ...body(r), listener: listenerUrl(r) }),
  },
  {
    method: 'POST',
    url: '/v1/identity/jwt-svid/validate',
    operation: api.IdentityJwtSvidValidate,
    schema: { body: api.JwtValidateRequest },
    input: body,
  },
  { method: 'GET', url: '/v1/identity/bundle', operation: api.IdentityBundle, schema: {}, input: none },
  { method: 'GET', url: '/v1/identity/bundles', operation: api.IdentityBundles, schema: {}, input: none },
  { method: 'GET', url: '/v1/identity/jwks', operation: api.IdentityJwks, schema: {}, input: none },
  {
    method: 'GET',
    url: '/.well-known/openid-configuration',
    operation: api.IdentityOpenidConfiguration,
    schema: {},
    input: (r) => ({ listener: listenerUrl(r) }),
  },
  {
    method: 'POST',
    url: '/v1/identity/registrations',
    operation: api.IdentityRegistrationCreate,
    schema: { body: api.RegistrationRequest },
    input: body,
  },
  {
    method: 'GET',
    url: '/v1/identity/registrations',
    operation: api.IdentityRegistrationList,
    schema: {},
    input: none,
  },
  {
    method: 'DELETE',
    url: '/v1/identity/registrations/:spiffe_id',
    operation: api.IdentityRegistrationDelete,
    schema: { params: api.SpiffeIdParams },
    input: (r) => ({ spiffe_id: params(r).spiffe_id }),
  },
  {
    method: 'POST',
    url: '/v1/identity/join-tokens',
    operation: api.IdentityJoinTokenCreate,
    schema: { body: api.JoinTokenRequest },
    input: body,
  },
  { method: 'GET', url: '/v1/identity/ca', operation: api.IdentityCaRead, schema: {}, input: none },
  { method: 'POST', url: '/v1/identity/ca/rotate', operation: api.IdentityCaRotate, schema: {}, input: none },
  {
    method: 'PUT',
    url: '/v1/identity/federation/:trust_domain',
    operation: api.IdentityFederationPut,
    schema: { params: api.TrustDomainParams, body: api.FederationRequest },
    input: (r) => ({ ...body(r), trust_domain: params(r).trust_domain }),
  },
  {
    method: 'GET',
    url: '/v1/identity/federation',
    operation: api.IdentityFederationList,
    schema: {},
    input: none,
  },
  {
    method: 'DELETE',
    url: '/v1/identity/federation/:trust_domain',
    operation: api.IdentityFederationDelete,
    schema: { params: api.TrustDomainParams },
    input: (r) => ({ trust_domain: params(r).trust_domain }),
  },
];
