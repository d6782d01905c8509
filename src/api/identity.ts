import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, IsoOrNull, Nullable, Strings } from './response-schemas.ts';
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

// Response pieces. The server serializes each JSON answer with its operation's response schema (a field
// the schema does not name is never sent; a value that does not fit fails the request), so these name
// every field the handlers return.

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

/** The answer to both `identity.x509-svid` and `identity.x509-svid.join` (one schema object: the route has both). */
export const X509SvidResponse = Type.Object({
  spiffe_id: Type.String(),
  /** The leaf certificate (PEM). */
  certificate: Type.String(),
  /** This trust domain's X.509 authorities (PEM), the old ones too while they are retiring. */
  bundle: Strings,
  /** Authorities of federated trust domains (PEM), by trust domain. */
  federated_bundles: Type.Record(Type.String(), Strings),
  /** The leaf's serial number (lower-case hex). */
  serial: Type.String(),
  expires_at: Iso,
  /** Hex SHA-256 of the CSR (DER). */
  csr_sha256: Type.String(),
});
export type X509SvidResponse = Static<typeof X509SvidResponse>;

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

export const JwtSvidResponse = Type.Object({
  token: Type.String(),
  spiffe_id: Type.String(),
  expires_at: Iso,
});
export type JwtSvidResponse = Static<typeof JwtSvidResponse>;

export const JwtValidateRequest = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 16 * 1024 }),
    audience: Type.String({ minLength: 1, maxLength: 512 }),
  },
  Strict,
);
export type JwtValidateRequest = Static<typeof JwtValidateRequest>;

/** `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3); 404 when no issuer is known. */
export const OpenIdConfiguration = Type.Object({
  /** `identity.issuer`, or the URL of the listener; the `iss` of every JWT-SVID. */
  issuer: Type.String(),
  /** Absolute URL of the JWKS (`/v1/identity/jwks`). */
  jwks_uri: Type.String(),
  response_types_supported: Strings,
  subject_types_supported: Strings,
  id_token_signing_alg_values_supported: Strings,
});
export type OpenIdConfiguration = Static<typeof OpenIdConfiguration>;

export const JwtValidateResponse = Type.Object({
  spiffe_id: Type.String(),
  expires_at: Iso,
  /** Every claim of the token as it was signed (`sub`, `aud`, `exp`, `iat`, `iss`, and any other). */
  claims: Type.Record(Type.String(), Type.Unknown()),
});
export type JwtValidateResponse = Static<typeof JwtValidateResponse>;

/**
 * A public JWK as this server writes it (RFC 7517 §4, RFC 7518 §6): into its own bundle and JWKS (EC
 * P-256 keys), and into `identity.bundles` for federated trust domains (EC, RSA or OKP keys, written
 * back from the parsed bundle). Every public member a JWK of those kinds can carry is named, so no
 * member a verifier needs is dropped by the serializer. Their order is the order node:crypto exports
 * EC and RSA keys in, then the SPIFFE members, so the answer is byte for byte what it was before the
 * schema (an OKP key, which node exports `crv` first, is now written `kty` first: same JSON).
 */
const Jwk = Type.Object({
  kty: Type.String(),
  /** RSA (RFC 7518 §6.3.1) */
  n: Type.Optional(Type.String()),
  e: Type.Optional(Type.String()),
  /** EC (RFC 7518 §6.2.1) and OKP (RFC 8037 §2) */
  x: Type.Optional(Type.String()),
  y: Type.Optional(Type.String()),
  crv: Type.Optional(Type.String()),
  /** `x509-svid` or `jwt-svid` in a SPIFFE bundle; `sig` in the plain JWKS. */
  use: Type.Optional(Type.String()),
  /** Set on JWT authorities (a JWT-SVID's header names it). */
  kid: Type.Optional(Type.String()),
  /** Set on X.509 authorities: the CA certificate (base64 DER). */
  x5c: Type.Optional(Strings),
  /** Set in the plain JWKS (`ES256`). */
  alg: Type.Optional(Type.String()),
  key_ops: Type.Optional(Strings),
  x5u: Type.Optional(Type.String()),
  x5t: Type.Optional(Type.String()),
  'x5t#S256': Type.Optional(Type.String()),
});
export type Jwk = Static<typeof Jwk>;

/**
 * A SPIFFE bundle document (SPIFFE Trust Domain and Bundle §4): a JWK set with the SPIFFE members.
 * The answer of `GET /v1/identity/bundle`, and each bundle of `GET /v1/identity/bundles`.
 */
export const SpiffeBundleDocument = Type.Object({
  keys: Type.Array(Jwk),
  /** §4.1.1 */
  spiffe_sequence: Type.Optional(Type.Integer()),
  /** §4.1.2, seconds */
  spiffe_refresh_hint: Type.Optional(Type.Integer()),
});
export type SpiffeBundleDocument = Static<typeof SpiffeBundleDocument>;

/** `GET /v1/identity/jwks`: a plain JWKS for OIDC verifiers (the JWT signing keys only, with `use` and `alg`). */
const Jwks = Type.Object({ keys: Type.Array(Jwk) });
export type Jwks = Static<typeof Jwks>;

/** Every bundle this server trusts, its own first, by trust domain. */
const TrustBundlesResponse = Type.Object({
  trust_domain: Type.String(),
  bundles: Type.Record(Type.String(), SpiffeBundleDocument),
});
export type TrustBundlesResponse = Static<typeof TrustBundlesResponse>;

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

/** A registration: who may obtain `spiffe_id`, and what a workload holding it may do (also its stored form). */
export const Registration = Type.Object({
  id: Type.String(),
  spiffe_id: Type.String(),
  /** `app:NAME`, `user:NAME`, `cidr:10.0.0.0/8`, `spiffe:ID` (a workload holding that SVID). Any one entitles. */
  selectors: Strings,
  /** Roles and scope of the workload when it calls this API with the SVID. */
  roles: Strings,
  scope: Nullable(
    Type.Object({
      paths: Type.Optional(Strings),
      providers: Type.Optional(Strings),
      credentials: Type.Optional(Strings),
    }),
  ),
  /** Longest SVID issued for this ID, in seconds (0: the server maxima); bounds JWT-SVIDs too. */
  x509_ttl: Type.Integer(),
  created_at: Iso,
  created_by: Type.String(),
  /**
   * SVIDs of this ID issued before this time do not renew themselves (the ID was unregistered and
   * registered again, or lost a selector); absent: every SVID of this ID may renew while registered.
   */
  renewable_since: Type.Optional(Iso),
});
export type Registration = Static<typeof Registration>;
const RegistrationResponse = Type.Object({ registration: Registration });
const RegistrationListResponse = Type.Object({
  registrations: Type.Array(Registration),
  trust_domain: Type.String(),
});
/** The answer of a delete: what was deleted (a SPIFFE ID, as given, or a trust domain). */
const DeletedResponse = Type.Object({ deleted: Type.String() });

export const SpiffeIdParams = Type.Object(
  { spiffe_id: Type.String({ minLength: 1, maxLength: 2048 }) },
  Strict,
);

export const JoinTokenRequest = Type.Object(
  { spiffe_id: SpiffeIdText, ttl: Type.Optional(Duration) },
  Strict,
);
export type JoinTokenRequest = Static<typeof JoinTokenRequest>;

export const JoinTokenResponse = Type.Object({
  /** Shown once; only its digest is stored. */
  join_token: Type.String(),
  spiffe_id: Type.String(),
  expires_at: Iso,
});
export type JoinTokenResponse = Static<typeof JoinTokenResponse>;

export const FederationRequest = Type.Object(
  {
    /** SPIFFE bundle JSON of the other trust domain (e.g. `spire-server bundle show -format spiffe`). */
    bundle: Type.Optional(Type.String({ minLength: 2, maxLength: 1024 * 1024 })),
    /** Or an https URL serving it (fetched now; re-put to refresh). */
    bundle_url: Type.Optional(Type.String({ minLength: 9, maxLength: 2048 })),
  },
  Strict,
);
export type FederationRequest = Static<typeof FederationRequest>;
export const TrustDomainParams = Type.Object(
  { trust_domain: Type.String({ minLength: 1, maxLength: 255 }) },
  Strict,
);

const FederationPutResponse = Type.Object({
  trust_domain: Type.String(),
  /** How many X.509 and JWT authorities the bundle holds. */
  x509_authorities: Type.Integer(),
  jwt_authorities: Type.Integer(),
  updated_at: Iso,
});
export type FederationPutResponse = Static<typeof FederationPutResponse>;
const FederationListResponse = Type.Object({
  federations: Type.Array(
    Type.Object({
      trust_domain: Type.String(),
      /** Where the bundle is fetched from; null: it was given inline. */
      bundle_url: Nullable(Type.String()),
      updated_at: Iso,
    }),
  ),
});
export type FederationListResponse = Static<typeof FederationListResponse>;

/** The CA: its authorities and JWT keys (active and retiring) and the SVID settings. */
const CaStatusResponse = Type.Object({
  trust_domain: Type.String(),
  sequence: Type.Integer(),
  authorities: Type.Array(
    Type.Object({
      /** The CA certificate's serial number (lower-case hex). */
      id: Type.String(),
      created_at: Iso,
      not_after: Iso,
      /** When it drops out of the bundle (set once it no longer signs); null: active. */
      retire_at: IsoOrNull,
      active: Type.Boolean(),
    }),
  ),
  jwt_keys: Type.Array(
    Type.Object({ kid: Type.String(), created_at: Iso, retire_at: IsoOrNull, active: Type.Boolean() }),
  ),
  /** seconds */
  x509_svid_ttl: Type.Integer(),
  x509_svid_max_ttl: Type.Integer(),
  jwt_svid_ttl: Type.Integer(),
  /** The audience a JWT-SVID names to authenticate to this server's API. */
  jwt_api_audience: Type.String(),
});
export type CaStatusResponse = Static<typeof CaStatusResponse>;
const CaRotateResponse = Type.Object({
  sequence: Type.Integer(),
  /** The id of the new, active authority. */
  active: Type.String(),
  /** Authorities that no longer sign, and when each drops out of the bundle. */
  retiring: Type.Array(Type.Object({ id: Type.String(), retire_at: Iso })),
});
export type CaRotateResponse = Static<typeof CaRotateResponse>;

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
/** `listener`: the URL of the listener the request came in on (set by the HTTP adapter), for the OIDC issuer. */
type Listener = { listener?: string | undefined };
export const IdentityBundle = op()('identity.bundle', SpiffeBundleDocument);
export const IdentityBundles = op()('identity.bundles', TrustBundlesResponse);
export const IdentityCaRead = op()('identity.ca.read', CaStatusResponse);
export const IdentityCaRotate = op()('identity.ca.rotate', CaRotateResponse);
export const IdentityFederationDelete = op<Static<typeof TrustDomainParams>>()(
  'identity.federation.delete',
  DeletedResponse,
);
export const IdentityFederationList = op()('identity.federation.list', FederationListResponse);
export const IdentityFederationPut = op<Static<typeof TrustDomainParams> & FederationRequest>()(
  'identity.federation.put',
  FederationPutResponse,
);
export const IdentityJoinTokenCreate = op<JoinTokenRequest>()(
  'identity.join-token.create',
  JoinTokenResponse,
);
export const IdentityJwks = op()('identity.jwks', Jwks);
export const IdentityJwtSvid = op<JwtSvidRequest & Listener>()('identity.jwt-svid', JwtSvidResponse);
export const IdentityJwtSvidValidate = op<JwtValidateRequest>()(
  'identity.jwt-svid.validate',
  JwtValidateResponse,
);
export const IdentityOpenidConfiguration = op<Listener>()(
  'identity.openid-configuration',
  OpenIdConfiguration,
);
export const IdentityRegistrationCreate = op<RegistrationRequest>()(
  'identity.registration.create',
  RegistrationResponse,
);
export const IdentityRegistrationDelete = op<Static<typeof SpiffeIdParams>>()(
  'identity.registration.delete',
  DeletedResponse,
);
export const IdentityRegistrationList = op()('identity.registration.list', RegistrationListResponse);
// the same response schema object for both: the route that invokes either keeps it (server/app.ts routeSchema)
export const IdentityX509Svid = op<Omit<X509SvidRequest, 'join_token'>>()(
  'identity.x509-svid',
  X509SvidResponse,
);
export const IdentityX509SvidJoin = op<X509SvidRequest & { join_token: string }>()(
  'identity.x509-svid.join',
  X509SvidResponse,
);
