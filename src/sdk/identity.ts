import type {
  JoinTokenResponse,
  JwtSvidRequest,
  JwtSvidResponse,
  JwtValidateResponse,
  Registration,
  RegistrationRequest,
  X509SvidRequest,
  X509SvidResponse,
} from '../api/identity.ts';
import type { Call } from './auth.ts';

export type {
  JoinTokenResponse,
  JwtSvidResponse,
  JwtValidateResponse,
  Registration,
  X509SvidResponse,
} from '../api/identity.ts';

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
    x509Svid: (req: X509SvidRequest) => call<X509SvidResponse>('POST', '/v1/identity/x509-svid', req),
    /** A JWT-SVID for the given audiences. */
    jwtSvid: (req: JwtSvidRequest) => call<JwtSvidResponse>('POST', '/v1/identity/jwt-svid', req),
    /** Verifies a JWT-SVID for an audience (400 when it is not valid). */
    validateJwtSvid: (token: string, audience: string) =>
      call<JwtValidateResponse>('POST', '/v1/identity/jwt-svid/validate', { token, audience }),
    /** The trust bundle (SPIFFE bundle format; public). */
    bundle: () =>
      call<{ keys: Record<string, unknown>[]; spiffe_sequence?: number; spiffe_refresh_hint?: number }>(
        'GET',
        '/v1/identity/bundle',
      ),
    /** Records who may obtain a SPIFFE ID, and the roles/scope the workload gets when it calls the API. */
    register: (req: RegistrationRequest) =>
      call<{ registration: Registration }>('POST', '/v1/identity/registrations', req),
    registrations: () =>
      call<{ registrations: Registration[]; trust_domain: string }>('GET', '/v1/identity/registrations'),
    unregister: (spiffeId: string) =>
      call<{ deleted: string }>('DELETE', `/v1/identity/registrations/${seg(spiffeId)}`),
    /** A one-time token with which a new workload obtains its first SVID (shown once). */
    joinToken: (spiffeId: string, ttl?: string | number) =>
      call<JoinTokenResponse>(
        'POST',
        '/v1/identity/join-tokens',
        ttl === undefined ? { spiffe_id: spiffeId } : { spiffe_id: spiffeId, ttl },
      ),
    /** The CA: trust domain, authorities (active and retiring), JWT keys, TTLs. */
    ca: () => call<Record<string, unknown>>('GET', '/v1/identity/ca'),
    /** Adds a new CA and JWT key; the old ones stay in the bundle until their SVIDs expire. */
    rotateCa: () => call<Record<string, unknown>>('POST', '/v1/identity/ca/rotate'),
    /** Trusts another trust domain's SVIDs (its SPIFFE bundle, or an https URL serving it). */
    federate: (trustDomain: string, source: { bundle: string } | { bundle_url: string }) =>
      call<Record<string, unknown>>('PUT', `/v1/identity/federation/${seg(trustDomain)}`, source),
    federations: () =>
      call<{ federations: { trust_domain: string; bundle_url: string | null; updated_at: string }[] }>(
        'GET',
        '/v1/identity/federation',
      ),
    unfederate: (trustDomain: string) =>
      call<{ deleted: string }>('DELETE', `/v1/identity/federation/${seg(trustDomain)}`),
  };
}

export type IdentityClient = ReturnType<typeof identityClient>;
