import { createHash } from 'node:crypto';
import type { Identity } from '../../contract/identity.ts';
import type { RequestInfo } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { ISSUANCE_BACKDATE_SECONDS, verifyJwtSvid, verifyX509Svid } from '../../spiffe/index.ts';
import type { TrustMaps } from './federation.ts';
import { sha } from './inputs.ts';
import type { Registration, SvidIssueTimes } from './registrations.ts';

/**
 * Workload authentication: a request carrying a JWT-SVID as its bearer token,
 * or a client certificate chain (an X.509-SVID), becomes a workload identity
 * with the roles and scope of the ID's registration.
 */

/**
 * Verified JWT-SVIDs, until they expire: what the signature proved (the ID, when it was issued). The
 * registration (roles, scope) is read at every request, so a change reaches every server sharing
 * the storage at once; a change of trust (federation, CA rotation) clears this server's cache.
 */
export type VerifiedJwts = Map<string, { spiffeId: string; issuedAt: number; exp: number }>;
const JWT_CACHE_MAX = 10_000;
const X509_CACHE_MAX = 10_000;
const X509_CACHE_MS = 5_000;
const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const chainKey = (chain: readonly Uint8Array[]) => {
  const h = createHash('sha256');
  for (const c of chain) h.update(c).update('\u0000');
  return h.digest('base64');
};

export interface WorkloadAuthDeps {
  clock: Clock;
  /** The audience a JWT-SVID must name to authenticate to this server's API. */
  apiAudience: string;
  trustMaps: () => Promise<TrustMaps>;
  registrationFor: (spiffeId: string) => Promise<Registration | undefined>;
  /** Shared with the registrations (a workload renews only an SVID issued since `renewable_since`). */
  svidIssuedAt: SvidIssueTimes;
  /** Cleared by whoever changes what is trusted (CA rotation, federation). */
  verifiedJwts: VerifiedJwts;
}

/** Authenticates a request by its client certificate chain or a JWT-SVID bearer token (undefined: neither). */
export function createWorkloadAuth(
  deps: WorkloadAuthDeps,
): (request: RequestInfo) => Promise<Identity | undefined> {
  const { clock, apiAudience, trustMaps, registrationFor, svidIssuedAt, verifiedJwts: jwtCache } = deps;
  /** Verified client chains: a change of trust (CA rotation, federation) reaches them within X509_CACHE_MS. */
  const x509Cache = new Map<string, { spiffeId: string; issuedAt: number; until: number }>();

  async function workloadIdentity(
    spiffeId: string,
    via: 'x509' | 'jwt',
    issuedAt: number,
  ): Promise<Identity> {
    const reg = await registrationFor(spiffeId);
    const roles = reg?.roles ?? [];
    const scope = reg?.scope ?? null;
    const identity: Identity = {
      kind: 'workload',
      // the accessor keys the decision cache: it changes with the roles and scope the registration grants
      accessor: `svid:${sha(`${spiffeId}\u0000${JSON.stringify(roles)}\u0000${JSON.stringify(scope)}`).slice(0, 32)}`,
      display_name: `${via === 'x509' ? 'x509-svid' : 'jwt-svid'}:${spiffeId}`,
      policies: roles,
      owner: { type: 'workload', id: spiffeId, name: spiffeId },
      scope,
      mfa: false,
    };
    svidIssuedAt.set(identity, issuedAt);
    return identity;
  }

  async function byJwt(token: string): Promise<Identity> {
    const key = sha(token);
    const hit = jwtCache.get(key);
    if (hit && hit.exp > clock.now()) return await workloadIdentity(hit.spiffeId, 'jwt', hit.issuedAt);
    const maps = await trustMaps();
    let v: Awaited<ReturnType<typeof verifyJwtSvid>>;
    try {
      v = await verifyJwtSvid(token, { audience: apiAudience, bundles: maps.jwt, now: clock.now() });
    } catch (err) {
      throw new StrongroomError('invalid_svid', `the JWT-SVID was refused: ${(err as Error).message}`);
    }
    // JWT-SVIDs of this server always carry iat; one without it never renews itself
    const iat = typeof v.claims.iat === 'number' ? v.claims.iat * 1000 : Number.NEGATIVE_INFINITY;
    if (jwtCache.size >= JWT_CACHE_MAX) jwtCache.clear();
    jwtCache.set(key, { spiffeId: v.spiffeId.toString(), issuedAt: iat, exp: v.expiresAt.getTime() });
    return await workloadIdentity(v.spiffeId.toString(), 'jwt', iat);
  }

  async function byCertificate(chain: readonly Buffer[]): Promise<Identity> {
    // a chain verified in the last few seconds is not verified again (a workload on a kept-alive
    // connection sends the same chain with every request); its expiry is still checked every time,
    // and the registration (roles, scope) is read every time
    const key = chainKey(chain);
    const hit = x509Cache.get(key);
    if (hit && clock.now() < hit.until) return await workloadIdentity(hit.spiffeId, 'x509', hit.issuedAt);
    const maps = await trustMaps();
    try {
      const v = verifyX509Svid(chain, maps.x509, { now: clock.now(), purpose: 'client' });
      // this CA backdates notBefore by ISSUANCE_BACKDATE_SECONDS (never earlier: it would only make
      // the SVID look older, so a renewal is refused rather than wrongly allowed)
      const issuedAt = v.certificate.validFromDate.getTime() + ISSUANCE_BACKDATE_SECONDS * 1000;
      if (x509Cache.size >= X509_CACHE_MAX) x509Cache.clear();
      x509Cache.set(key, {
        spiffeId: v.spiffeId.toString(),
        issuedAt,
        until: Math.min(v.notAfter.getTime(), clock.now() + X509_CACHE_MS),
      });
      return await workloadIdentity(v.spiffeId.toString(), 'x509', issuedAt);
    } catch (err) {
      if (err instanceof StrongroomError) throw err;
      // which rule the certificate broke goes to the server log only (details.reason)
      throw new StrongroomError('invalid_svid', 'the client certificate was refused', {
        details: { reason: (err as Error).message },
      });
    }
  }

  return async function authenticate(request: RequestInfo): Promise<Identity | undefined> {
    const token = request.token;
    if (token && JWT_SHAPE.test(token)) return await byJwt(token);
    if (!token && request.peer_certificates?.length) return await byCertificate(request.peer_certificates);
    return undefined;
  };
}
