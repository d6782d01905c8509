import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Scope } from './v1.ts';

/**
 * Workload identity (issue 6; docs/identity.md): SVID issuance, registrations,
 * join tokens, trust bundles and federation.
 */
const Strict = { additionalProperties: false } as const;
const Duration = Type.Union([
  Type.String({ minLength: 1, maxLength: 32 }),
  Type.Integer({ minimum: 1, maximum: 315360000 }),
]);
const SpiffeIdText = Type.String({ minLength: 10, maxLength: 2048, pattern: '^spiffe://' });
const Pem = Type.String({ minLength: 1, maxLength: 64 * 1024 });

export const X509SvidRequest = Type.Object(
  {
    /** PKCS#10 CSR (PEM) with exactly one URI SAN: the SPIFFE ID asked for. */
    csr: Pem,
    ttl: Type.Optional(Duration),
    /** A one-time join token instead of a bearer token or an SVID (a workload's first SVID). */
    join_token: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  },
  Strict,
);
export type X509SvidRequest = Static<typeof X509SvidRequest>;

export interface X509SvidResponse {
  spiffe_id: string;
  /** The leaf certificate (PEM). */
  certificate: string;
  /** This trust domain's X.509 authorities (PEM), the old ones too while they are retiring. */
  bundle: string[];
  /** Authorities of federated trust domains, by trust domain. */
  federated_bundles: Record<string, string[]>;
  serial: string;
  expires_at: string;
  csr_sha256: string;
}

export const JwtSvidRequest = Type.Object(
  {
    audience: Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { minItems: 1, maxItems: 10 }),
    /** Needed unless the caller is itself a workload authenticated by its SVID. */
    spiffe_id: Type.Optional(SpiffeIdText),
    ttl: Type.Optional(Duration),
  },
  Strict,
);
export type JwtSvidRequest = Static<typeof JwtSvidRequest>;

export interface JwtSvidResponse {
  token: string;
  spiffe_id: string;
  expires_at: string;
}

export const JwtValidateRequest = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 16 * 1024 }),
    audience: Type.String({ minLength: 1, maxLength: 512 }),
  },
  Strict,
);

/** `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3); 404 when no issuer is known. */
export interface OpenIdConfiguration {
  /** `identity.issuer`, or the URL of the listener; the `iss` of every JWT-SVID. */
  issuer: string;
  /** Absolute URL of the JWKS (`/v1/identity/jwks`). */
  jwks_uri: string;
  response_types_supported: string[];
  subject_types_supported: string[];
  id_token_signing_alg_values_supported: string[];
}

export interface JwtValidateResponse {
  spiffe_id: string;
  expires_at: string;
  claims: Record<string, unknown>;
}

export const RegistrationRequest = Type.Object(
  {
    spiffe_id: SpiffeIdText,
    /** Who may obtain it: `app:NAME`, `user:NAME`, `spiffe:ID`, narrowed by `cidr:NET`. */
    selectors: Type.Array(Type.String({ minLength: 3, maxLength: 2100 }), { minItems: 1, maxItems: 16 }),
    /** Roles of the workload when it calls this API with its SVID (default none: only policies naming it). */
    roles: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 20 })),
    scope: Type.Optional(Scope),
    /** Longest SVID (X.509, and JWT when shorter than the JWT maximum) issued for this ID. */
    x509_ttl: Type.Optional(Duration),
  },
  Strict,
);
export type RegistrationRequest = Static<typeof RegistrationRequest>;

export interface Registration {
  id: string;
  spiffe_id: string;
  selectors: string[];
  roles: string[];
  scope: Static<typeof Scope> | null;
  /** Longest SVID issued for this ID, in seconds (0: the server maxima); bounds JWT-SVIDs too. */
  x509_ttl: number;
  created_at: string;
  created_by: string;
  /**
   * SVIDs of this ID issued before this time do not renew themselves (the ID was unregistered and
   * registered again, or lost a selector); absent: every SVID of this ID may renew while registered.
   */
  renewable_since?: string;
}

export const SpiffeIdParams = Type.Object(
  { spiffe_id: Type.String({ minLength: 1, maxLength: 2048 }) },
  Strict,
);

export const JoinTokenRequest = Type.Object(
  { spiffe_id: SpiffeIdText, ttl: Type.Optional(Duration) },
  Strict,
);

export interface JoinTokenResponse {
  /** Shown once; only its digest is stored. */
  join_token: string;
  spiffe_id: string;
  expires_at: string;
}

export const FederationRequest = Type.Object(
  {
    /** SPIFFE bundle JSON of the other trust domain (e.g. `spire-server bundle show -format spiffe`). */
    bundle: Type.Optional(Type.String({ minLength: 2, maxLength: 1024 * 1024 })),
    /** Or an https URL serving it (fetched now; re-put to refresh). */
    bundle_url: Type.Optional(Type.String({ minLength: 9, maxLength: 2048 })),
  },
  Strict,
);
export const TrustDomainParams = Type.Object(
  { trust_domain: Type.String({ minLength: 1, maxLength: 255 }) },
  Strict,
);

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
export const IdentityBundle = op()('identity.bundle');
export const IdentityBundles = op()('identity.bundles');
export const IdentityCaRead = op()('identity.ca.read');
export const IdentityCaRotate = op()('identity.ca.rotate');
export const IdentityFederationDelete = op()('identity.federation.delete');
export const IdentityFederationList = op()('identity.federation.list');
export const IdentityFederationPut = op()('identity.federation.put');
export const IdentityJoinTokenCreate = op()('identity.join-token.create');
export const IdentityJwks = op()('identity.jwks');
export const IdentityJwtSvid = op()('identity.jwt-svid');
export const IdentityJwtSvidValidate = op()('identity.jwt-svid.validate');
export const IdentityOpenidConfiguration = op()('identity.openid-configuration');
export const IdentityRegistrationCreate = op()('identity.registration.create');
export const IdentityRegistrationDelete = op()('identity.registration.delete');
export const IdentityRegistrationList = op()('identity.registration.list');
export const IdentityX509Svid = op()('identity.x509-svid');
export const IdentityX509SvidJoin = op()('identity.x509-svid.join');
