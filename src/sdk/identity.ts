import type * as api from '../api/identity.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import type { Call } from './auth.ts';

const seg = (s: string) => encodeURIComponent(s);

/**
 * Typed calls for workload identity (docs/identity.md), built on a client's
 * low-level `request`.
 *
 * @example
 * const id = identityClient(sr.request);
 * await id.register({ spiffe_id: 'spiffe://strongroom.local/ns/prod/gateway', selectors: ['app:gateway'] });
 * const svid = await id.x509Svid({ csr });
 */
export function identityClient(call: Call) {
  return {
    /** Signs a CSR into an X.509-SVID (the caller must be entitled to the CSR's SPIFFE ID, or give a join token). */
    x509Svid: (req: api.X509SvidRequest) =>
      call<Out<typeof api.IdentityX509Svid>>('POST', '/v1/identity/x509-svid', req),
    /** A JWT-SVID for the given audiences. */
    jwtSvid: (req: api.JwtSvidRequest) =>
      call<Out<typeof api.IdentityJwtSvid>>('POST', '/v1/identity/jwt-svid', req),
    /** Verifies a JWT-SVID for an audience (400 when it is not valid). */
    validateJwtSvid: (token: string, audience: string) =>
      call<Out<typeof api.IdentityJwtSvidValidate>>('POST', '/v1/identity/jwt-svid/validate', {
        token,
        audience,
      } satisfies api.JwtValidateRequest),
    /** The trust bundle (SPIFFE bundle format; public). */
    bundle: () => call<Out<typeof api.IdentityBundle>>('GET', '/v1/identity/bundle'),
    /** Every bundle this server trusts, its own and the federated ones, by trust domain. */
    bundles: () => call<Out<typeof api.IdentityBundles>>('GET', '/v1/identity/bundles'),
    /** The JWT signing keys as a plain JWKS (for OIDC verifiers; public). */
    jwks: () => call<Out<typeof api.IdentityJwks>>('GET', '/v1/identity/jwks'),
    /** OpenID Connect discovery (public; 404 when the server knows no issuer URL). */
    openidConfiguration: () =>
      call<Out<typeof api.IdentityOpenidConfiguration>>('GET', '/.well-known/openid-configuration'),
    /** Records who may obtain a SPIFFE ID, and the roles/scope the workload gets when it calls the API. */
    register: (req: api.RegistrationRequest) =>
      call<Out<typeof api.IdentityRegistrationCreate>>('POST', '/v1/identity/registrations', req),
    registrations: () => call<Out<typeof api.IdentityRegistrationList>>('GET', '/v1/identity/registrations'),
    unregister: (spiffeId: string) =>
      call<Out<typeof api.IdentityRegistrationDelete>>(
        'DELETE',
        `/v1/identity/registrations/${seg(spiffeId)}`,
      ),
    /** A one-time token with which a new workload obtains its first SVID (shown once). */
    joinToken: (spiffeId: string, ttl?: string | number) =>
      call<Out<typeof api.IdentityJoinTokenCreate>>(
        'POST',
        '/v1/identity/join-tokens',
        (ttl === undefined
          ? { spiffe_id: spiffeId }
          : { spiffe_id: spiffeId, ttl }) satisfies api.JoinTokenRequest,
      ),
    /** The CA: trust domain, authorities (active and retiring), JWT keys, TTLs. */
    ca: () => call<Out<typeof api.IdentityCaRead>>('GET', '/v1/identity/ca'),
    /** Adds a new CA and JWT key; the old ones stay in the bundle until their SVIDs expire. */
    rotateCa: () => call<Out<typeof api.IdentityCaRotate>>('POST', '/v1/identity/ca/rotate'),
    /** Trusts another trust domain's SVIDs (its SPIFFE bundle, or an https URL serving it). */
    federate: (trustDomain: string, source: { bundle: string } | { bundle_url: string }) =>
      call<Out<typeof api.IdentityFederationPut>>(
        'PUT',
        `/v1/identity/federation/${seg(trustDomain)}`,
        source satisfies api.FederationRequest,
      ),
    federations: () => call<Out<typeof api.IdentityFederationList>>('GET', '/v1/identity/federation'),
    unfederate: (trustDomain: string) =>
      call<Out<typeof api.IdentityFederationDelete>>('DELETE', `/v1/identity/federation/${seg(trustDomain)}`),
  };
}

export type IdentityClient = ReturnType<typeof identityClient>;
