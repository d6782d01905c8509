import { type Static, Type } from 'typebox';

/**
 * Gateway virtual keys (issue 7 items 3 and 5; docs/gateway-keys.md): keys an
 * application presents to the AI gateway instead of a provider key, scoped to
 * providers and models, with budget and rate limits and an expiry.
 */
const Strict = { additionalProperties: false } as const;
const Duration = Type.Union([
  Type.String({ minLength: 1, maxLength: 32 }),
  Type.Integer({ minimum: 1, maximum: 315360000 }),
]);
const KeyName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' });
const Classification = Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9][a-z0-9_-]*$' });
const SpiffeIdText = Type.String({ minLength: 10, maxLength: 2048, pattern: '^spiffe://' });

export const KeyScope = Type.Object(
  {
    /** Providers the key may call (e.g. `openai`); absent: any. */
    providers: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 50 }),
    ),
    /** Model names or globs (e.g. `gpt-4o*`); absent: any. */
    models: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 50 }),
    ),
  },
  Strict,
);
export type KeyScope = Static<typeof KeyScope>;

export const BudgetLimits = Type.Object(
  {
    requests_per_minute: Type.Optional(Type.Integer({ minimum: 0, maximum: 1e12 })),
    tokens_per_minute: Type.Optional(Type.Integer({ minimum: 0, maximum: 1e12 })),
    /** Spend in USD per period, priced from the gateway's price table (`total` never resets). */
    spend: Type.Optional(
      Type.Object(
        {
          usd: Type.Number({ minimum: 0, maximum: 1e9 }),
          period: Type.Union([Type.Literal('day'), Type.Literal('month'), Type.Literal('total')]),
        },
        Strict,
      ),
    ),
  },
  Strict,
);
export type BudgetLimits = Static<typeof BudgetLimits>;

export const KeyCreateRequest = Type.Object(
  {
    name: KeyName,
    scope: Type.Optional(KeyScope),
    limits: Type.Optional(BudgetLimits),
    /** Lifetime (default 1 h, at most 30 days). */
    ttl: Type.Optional(Duration),
    /** The key only works for a caller that also proves this SPIFFE ID (mTLS or JWT-SVID). */
    spiffe_id: Type.Optional(SpiffeIdText),
    /** Default data classification of the key's calls. */
    classification: Type.Optional(Classification),
  },
  Strict,
);
export type KeyCreateRequest = Static<typeof KeyCreateRequest>;

/** Changes to a key: each may only narrow it (scope, limits, a shorter ttl, a SPIFFE ID where there was none). */
export const KeyUpdateRequest = Type.Object(
  {
    name: Type.Optional(KeyName),
    scope: Type.Optional(KeyScope),
    limits: Type.Optional(BudgetLimits),
    /** A new lifetime from now; may not end later than the current expiry. */
    ttl: Type.Optional(Duration),
    spiffe_id: Type.Optional(SpiffeIdText),
    classification: Type.Optional(Classification),
  },
  Strict,
);
export type KeyUpdateRequest = Static<typeof KeyUpdateRequest>;

export const KeyIdParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_]+$' }) },
  Strict,
);

export const KeyListQuery = Type.Object(
  /** `true`: revoked and expired keys too. */
  { include_inactive: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])) },
  Strict,
);

/** A virtual key's metadata (never the key string, which is shown once at creation). */
export interface VirtualKey {
  id: string;
  name: string;
  owner: { type: string; id: string; name: string };
  created_by: string;
  scope: KeyScope;
  limits: BudgetLimits;
  created_at: string;
  expires_at: string;
  spiffe_id?: string;
  classification?: string;
  revoked: boolean;
  revoked_at?: string;
  updated_at?: string;
  /** The roles its gateway calls are authorized with: `virtual-key`. */
  roles: string[];
}

export interface KeyCreateResponse {
  /** The key string (`srv_…`): shown only in this response; store it like a password. */
  virtual_key: string;
  key: VirtualKey;
}

export interface KeyListResponse {
  keys: VirtualKey[];
}

export interface KeyResponse {
  key: VirtualKey;
}

export interface KeyRevokeResponse {
  revoked: string;
  revoked_at: string;
}
