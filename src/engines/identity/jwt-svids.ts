import * as api from '../../api/identity.ts';
import { implement } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { signJwtSvid, verifyJwtSvid } from '../../spiffe/index.ts';
import { bundleDocument, type CertificateAuthority } from './ca.ts';
import type { TrustedBundles } from './federation.ts';
import { bad, identityResource, identitySystem, isoTime, spiffeIdOf, ttlOf } from './inputs.ts';
import { type Registrations, refuseNotEntitled, regMax } from './registrations.ts';

/**
 * JWT-SVIDs: issuance to entitled callers, validation for relying parties,
 * and what OIDC verifiers need to check them alone (JWKS, discovery).
 */

export interface JwtSvidDeps {
  clock: Clock;
  trustDomain: string;
  ca: CertificateAuthority;
  bundles: TrustedBundles;
  registrations: Registrations;
  /** Default and longest JWT-SVID lifetimes, and the default X.509-SVID one (the bundle's refresh hint), in seconds. */
  jwtTtl: number;
  jwtMax: number;
  x509Ttl: number;
  /** The configured OIDC issuer (`iss`), if any. */
  issuer: string | undefined;
}

export function jwtSvidOperations(deps: JwtSvidDeps) {
  const { clock, trustDomain, ca, bundles, registrations, jwtTtl, jwtMax } = deps;
  /** The OIDC issuer: the configured one, else the URL of the listener the request came in on. */
  const issuerFor = (listener: string | undefined) => deps.issuer ?? listener;

  // `listener`: the URL of the listener the request came in on (set by the HTTP adapter), for `iss`
  const jwtSvid = implement(api.IdentityJwtSvid, {
    action: 'identity.issue',
    auth: 'token',
    resource: (i) => identityResource(i.spiffe_id ?? 'spiffe://self/caller', true),
    async handle(ctx, i) {
      let id = i.spiffe_id;
      if (id === undefined) {
        if (ctx.identity?.owner.type === 'workload') id = ctx.identity.owner.id;
        else throw bad('invalid_value', 'spiffe_id: say which SPIFFE ID the JWT-SVID is for');
      }
      const sid = spiffeIdOf(id);
      if (sid.trustDomain !== trustDomain) {
        throw bad(
          'invalid_value',
          `spiffe_id: this server issues for ${trustDomain}, not ${sid.trustDomain}`,
        );
      }
      const reg = (await registrations.entitled(sid.toString(), ctx)) ?? refuseNotEntitled(sid.toString());
      if (i.audience.some((a) => a.length === 0 || a.length > 512)) {
        throw bad('invalid_value', 'audience: each entry is 1 to 512 characters');
      }
      const max = regMax(reg, jwtMax);
      const ttl = ttlOf(i.ttl, Math.min(jwtTtl, max), max, 'ttl');
      const issuer = issuerFor(i.listener);
      const c = await ca.signing();
      const at = clock.now();
      const token = await signJwtSvid({
        key: c.jwtSigner,
        spiffeId: sid,
        audience: i.audience,
        ttlSeconds: ttl,
        now: at,
        ...(issuer ? { issuer } : {}),
      });
      return {
        token,
        spiffe_id: sid.toString(),
        expires_at: isoTime(Math.floor(at / 1000) * 1000 + ttl * 1000),
      };
    },
  });

  const jwtValidate = implement(api.IdentityJwtSvidValidate, {
    action: 'identity.validate',
    auth: 'token',
    resource: identitySystem,
    async handle(_ctx, i) {
      const maps = await bundles.trustMaps();
      try {
        const v = await verifyJwtSvid(i.token, { audience: i.audience, bundles: maps.jwt, now: clock.now() });
        return { spiffe_id: v.spiffeId.toString(), expires_at: v.expiresAt.toISOString(), claims: v.claims };
      } catch (err) {
        // 400, not 401: the caller is authenticated; the token it asks about is what is wrong
        throw bad('invalid_value', `the JWT-SVID is not valid: ${(err as Error).message}`);
      }
    },
  });

  const jwks = implement(api.IdentityJwks, {
    action: 'identity.bundle',
    auth: 'none',
    resource: identitySystem,
    handle: async () => {
      const doc = bundleDocument(await ca.current(), deps.x509Ttl);
      // a plain JWKS for OIDC verifiers: only the JWT signing keys, with alg
      return {
        keys: doc.keys.filter((k) => k.use === 'jwt-svid').map((k) => ({ ...k, use: 'sig', alg: 'ES256' })),
      };
    },
  });

  // OpenID Connect Discovery 1.0 §3-§4: `issuer` and `jwks_uri` are absolute URLs, and `issuer` is what
  // the JWT-SVIDs' `iss` says; with neither a configured issuer nor a listener of one address, say so
  const oidc = implement(api.IdentityOpenidConfiguration, {
    action: 'identity.bundle',
    auth: 'none',
    resource: identitySystem,
    async handle(_ctx, i) {
      const issuer = issuerFor(i.listener);
      if (!issuer) {
        throw new StrongroomError(
          'not_found',
          'no OpenID configuration: identity.issuer is not set, and the listener has no one address to derive it from (it is bound to every interface); set identity.issuer to the URL relying parties reach this server at (e.g. https://vault.example.com)',
        );
      }
      return {
        issuer,
        jwks_uri: `${issuer.replace(/\/+$/, '')}/v1/identity/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
      };
    },
  });

  return { jwtSvid, jwtValidate, jwks, oidc };
}
