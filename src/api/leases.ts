import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, IsoOrNull, StringOrNull } from './response-schemas.ts';

/** Wire contract of leases (docs/leases.md): every dynamic credential and every check-out is one. */
const Strict = { additionalProperties: false } as const;

/** A lease id: `<engine>/<path>/<random>`, e.g. `database/creds/rag-reader/3f9a…`. */
const LeaseId = Type.String({ minLength: 3, maxLength: 256, pattern: '^[A-Za-z0-9][A-Za-z0-9_./-]*$' });
const Duration = Type.Union([
  Type.Integer({ minimum: 0, maximum: 315_360_000 }),
  Type.String({ minLength: 1, maxLength: 32 }),
]);

/** PUT /v1/sys/leases/lookup, /revoke */
export const LeaseIdRequest = Type.Object({ lease_id: LeaseId }, Strict);
export type LeaseIdRequest = Static<typeof LeaseIdRequest>;

/** PUT /v1/sys/leases/renew */
export const LeaseRenewRequest = Type.Object(
  {
    lease_id: LeaseId,
    /** Seconds (or 15m, 1h) from now; default the lease's own TTL. Capped by max_ttl and the owner token's life. */
    increment: Type.Optional(Type.Union([Duration, Type.Null()])),
  },
  Strict,
);
export type LeaseRenewRequest = Static<typeof LeaseRenewRequest>;

/** PUT /v1/sys/leases/revoke-prefix */
export const LeaseRevokePrefixRequest = Type.Object(
  {
    prefix: Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9][A-Za-z0-9_./-]*$' }),
    /** Drop our records even where the backend refuses to revoke (audited as forced). */
    force: Type.Optional(Type.Boolean()),
  },
  Strict,
);
export type LeaseRevokePrefixRequest = Static<typeof LeaseRevokePrefixRequest>;

/** GET /v1/sys/leases: the operation's input. */
export interface LeaseListQuery {
  prefix?: string;
  /** The last id of the previous page. */
  after?: string;
  /** 1 to 1000 (default 100). */
  limit?: number;
}
/** GET /v1/sys/leases: the query string as sent. */
export const LeaseListQuerySchema = Type.Object(
  {
    prefix: Type.Optional(Type.String({ maxLength: 256, pattern: '^[A-Za-z0-9_./-]*$' })),
    after: Type.Optional(Type.String({ maxLength: 256, pattern: '^[A-Za-z0-9_./-]*$' })),
    limit: Type.Optional(Type.String({ pattern: '^(1000|[1-9][0-9]{0,2})$' })),
  },
  Strict,
);

// ---- responses ----

export const LeaseInfoSchema = Type.Object({
  lease_id: Type.String(),
  engine: Type.String(),
  role: Type.String(),
  issued_at: Iso,
  expires_at: Iso,
  /** The latest the lease may be renewed to (max_ttl, and the owner token's own end). */
  max_expires_at: Iso,
  /** Seconds left. */
  ttl: Type.Integer(),
  renewable: Type.Boolean(),
  /** 'creating' (the credential is being made), 'active', 'revoking' (revocation pending at the backend). */
  state: Type.Union([Type.Literal('creating'), Type.Literal('active'), Type.Literal('revoking')]),
  /** The accessor of the token that holds it (or the workload's SPIFFE ID). */
  holder: Type.String(),
  last_renewed_at: IsoOrNull,
  revoke_attempts: Type.Integer(),
  last_error: StringOrNull,
  /** Vault's names for the same facts (`sys/leases/lookup` and `renew` answers), for Vault clients. */
  lease_duration: Type.Integer(),
  data: Type.Object({
    id: Type.String(),
    issue_time: Iso,
    expire_time: Iso,
    last_renewal: IsoOrNull,
    renewable: Type.Boolean(),
    ttl: Type.Integer(),
  }),
});
export type LeaseInfo = Static<typeof LeaseInfoSchema>;

const LeaseListSchema = Type.Object({
  leases: Type.Array(LeaseInfoSchema),
  /** Pass as `after` for the next page; null on the last page. */
  next: StringOrNull,
});

const RevokedSchema = Type.Object({
  /** Leases revoked at their backend and removed. */
  revoked: Type.Integer(),
  /** Leases whose records were removed although the backend refused (force only). */
  forced: Type.Integer(),
  /** Leases left for the background revoker (the backend failed; they are retried with backoff). */
  pending: Type.Integer(),
});
export type RevokedResponse = Static<typeof RevokedSchema>;

// ---- operations ----

export const LeaseLookup = op<LeaseIdRequest>()('lease.lookup', LeaseInfoSchema);
export const LeaseRenew = op<LeaseRenewRequest>()('lease.renew', LeaseInfoSchema);
export const LeaseRevoke = op<LeaseIdRequest>()('lease.revoke', RevokedSchema);
export const LeaseRevokePrefix = op<LeaseRevokePrefixRequest>()('lease.revoke-prefix', RevokedSchema);
export const LeaseList = op<LeaseListQuery>()('lease.list', LeaseListSchema);
