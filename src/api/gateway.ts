import { type Static, Type } from 'typebox';
import type { Identity } from '../contract/identity.ts';
import { op } from './op.ts';
import { Iso, Nullable } from './response-schemas.ts';

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
    /**
     * Lifetime (default 1 h, at most 30 days), and never beyond the creating token's expiry unless the
     * key is an orphan (the answer's `ttl` and `warnings` say when it was cut).
     */
    ttl: Type.Optional(Duration),
    /** The key only works for a caller that also proves this SPIFFE ID (mTLS or JWT-SVID). */
    spiffe_id: Type.Optional(SpiffeIdText),
    /** Default data classification of the key's calls. */
    classification: Type.Optional(Classification),
    /**
     * true: the key does not end with the token minting it (its expiry, revocation, its user's
     * deletion). Needs Cedar action `gateway.key.orphan` on System::"gateway-keys" (admin, root).
     * A workload authenticated by SVID holds no token, so the keys it mints must be orphans.
     */
    orphan: Type.Optional(Type.Boolean()),
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
    /** A new lifetime from now; may not end later than the current expiry (so never past the creator's). */
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
const VirtualKeySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  /** The owner of the token that minted it (user, app, standalone token tree, root, workload). */
  owner: Type.Object({ type: Type.String(), id: Type.String(), name: Type.String() }),
  created_by: Type.String(),
  /**
   * The token that minted it (its accessor; a workload's identity accessor for an SVID caller), and
   * whether the key outlives it (`orphan`). `accessor` is null for keys recorded before creators were.
   */
  creator: Type.Object({ accessor: Nullable(Type.String()), orphan: Type.Boolean() }),
  /** `creator_gone`: its creator token was revoked, used up or expired, and the key with it. */
  state: Type.Union([
    Type.Literal('active'),
    Type.Literal('revoked'),
    Type.Literal('expired'),
    Type.Literal('creator_gone'),
  ]),
  scope: KeyScope,
  limits: BudgetLimits,
  created_at: Iso,
  expires_at: Iso,
  spiffe_id: Type.Optional(Type.String()),
  classification: Type.Optional(Type.String()),
  revoked: Type.Boolean(),
  revoked_at: Type.Optional(Iso),
  updated_at: Type.Optional(Iso),
  /** The roles its gateway calls are authorized with: `virtual-key`. */
  roles: Type.Array(Type.String()),
});
export type VirtualKey = Static<typeof VirtualKeySchema>;

const KeyCreateResponse = Type.Object({
  /** The key string (`srv_…`): shown only in this response; store it like a password. */
  virtual_key: Type.String(),
  key: VirtualKeySchema,
  /** The lifetime granted, in seconds (`key.expires_at` - `key.created_at`). */
  ttl: Type.Integer(),
  /** Present when the request was not granted as asked (a TTL cut to the creating token's expiry). */
  warnings: Type.Optional(Type.Array(Type.String())),
});
export type KeyCreateResponse = Static<typeof KeyCreateResponse>;
const KeyListResponse = Type.Object({ keys: Type.Array(VirtualKeySchema) });
export type KeyListResponse = Static<typeof KeyListResponse>;
const KeyResponse = Type.Object({ key: VirtualKeySchema });
export type KeyResponse = Static<typeof KeyResponse>;
const KeyRevokeResponse = Type.Object({ revoked: Type.String(), revoked_at: Iso });

// ---------------------------------------------------------------- the vault service of a remote gateway

/*
 * A gateway running apart from the vault (docs/gateway-remote.md) calls these
 * over mTLS with its own X.509-SVID; the caller needs the `gateway` role
 * (Cedar action `gateway.vault` on System::"gateway"). Outcomes about the
 * gateway's caller (a bad credential, a budget with no room) come back as
 * `error` in a 200 answer; an HTTP error is always about the gateway itself.
 */
const Text = (max: number) => Type.String({ minLength: 1, maxLength: max });
const Address = Type.String({ minLength: 1, maxLength: 64 });
const Count = Type.Integer({ minimum: 0, maximum: 1e12 });

/** A caller session the vault sealed for this gateway (`authenticate`), passed back with every question about the call. */
const SessionTicket = Type.String({ minLength: 16, maxLength: 65536, pattern: '^st1\\.[A-Za-z0-9_-]+$' });

export const VaultAuthenticateRequest = Type.Object(
  {
    /** The API key the gateway's caller sent: a token, a virtual key or a JWT-SVID. */
    credential: Type.Optional(Text(8192)),
    /** The caller's mTLS certificate chain, leaf first, base64 DER. */
    peer_certificates: Type.Optional(Type.Array(Text(16384), { minItems: 1, maxItems: 8 })),
    client_address: Address,
    /** The gateway's listener requires an X.509-SVID of every caller. */
    require_svid: Type.Optional(Type.Boolean()),
  },
  Strict,
);
export type VaultAuthenticateRequest = Static<typeof VaultAuthenticateRequest>;

export const VaultAuthorizeRequest = Type.Object(
  {
    session: SessionTicket,
    resources: Type.Array(
      Type.Object(
        {
          provider: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]*$' }),
          model: Text(200),
          route: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z.]+$' }),
        },
        Strict,
      ),
      { minItems: 1, maxItems: 1000 },
    ),
    context: Type.Object(
      { client_address: Address, classification: Classification, estimated_tokens: Count },
      Strict,
    ),
  },
  Strict,
);
export type VaultAuthorizeRequest = Static<typeof VaultAuthorizeRequest>;

export const VaultSettleRequest = Type.Object(
  {
    /** An id from admit (a ticket on shared storage, hence the length). */
    reservation: Type.String({ minLength: 16, maxLength: 32768, pattern: '^[A-Za-z0-9_.-]+$' }),
    /** What was used; absent: the call did not happen and the whole reservation is given back. */
    usage: Type.Optional(
      Type.Object(
        { input_tokens: Count, output_tokens: Count, cost_usd: Type.Number({ minimum: 0, maximum: 1e9 }) },
        Strict,
      ),
    ),
  },
  Strict,
);
export type VaultSettleRequest = Static<typeof VaultSettleRequest>;

/** The fields of a gateway record (gateway.invoke or gateway.anomaly); the vault adds the time and the gateway's SPIFFE ID. */
const RecordFields = {
  request_id: Text(128),
  trace_id: Type.Optional(Text(128)),
  operation: Type.Union([Type.Literal('gateway.invoke'), Type.Literal('gateway.anomaly')]),
  resource: Text(400),
  actor: Type.Union([
    Type.Null(),
    Type.Object(
      {
        type: Type.Optional(Text(32)),
        id: Type.Optional(Text(2100)),
        accessor: Type.Optional(Text(2100)),
        display_name: Type.Optional(Text(2100)),
      },
      Strict,
    ),
  ]),
  client_address: Address,
  decision: Type.Object({ allowed: Type.Boolean(), reason: Text(400) }, Strict),
  /** What the call was (route, tokens, cost, latency; no prompt text): at most 32 fields. */
  request: Type.Record(
    Type.String({ maxLength: 64 }),
    Type.Union([Type.String({ maxLength: 2100 }), Type.Number(), Type.Boolean(), Type.Null()]),
    { maxProperties: 32 },
  ),
};

/**
 * A call that passed every check, before anything is spent: its upper bound reserved from the
 * caller's budgets (subjects derived by the vault from the session), then its request record
 * appended; no upstream call may be made unless this answered.
 */
export const VaultAdmitRequest = Type.Object(
  {
    session: SessionTicket,
    ...RecordFields,
    reserve: Type.Optional(
      Type.Object(
        {
          /** The gateway's default limits per kind of caller (a virtual key's own come from the vault). */
          defaults: Type.Object(
            {
              apps: Type.Optional(BudgetLimits),
              workloads: Type.Optional(BudgetLimits),
              tokens: Type.Optional(BudgetLimits),
            },
            Strict,
          ),
          estimate: Type.Object(
            {
              tokens: Count,
              cost_usd: Type.Number({ minimum: 0, maximum: 1e9 }),
              /** The model has no price: refused where a spend limit applies. */
              unpriced: Type.Optional(Type.Boolean()),
            },
            Strict,
          ),
        },
        Strict,
      ),
    ),
  },
  Strict,
);
export type VaultAdmitRequest = Static<typeof VaultAdmitRequest>;

/** One gateway record (the call's response entry, or an anomaly alert). */
export const VaultAuditRequest = Type.Object(
  {
    ...RecordFields,
    status: Type.Union([Type.Literal('ok'), Type.Literal('error')]),
    status_code: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
    error_code: Type.Optional(Text(64)),
    /** The caller's session: the record's actor is then the vault's, not the gateway's. */
    session: Type.Optional(SessionTicket),
    /** The call's reservation, settled (or released) before the record is appended: one round trip. */
    settle: Type.Optional(VaultSettleRequest),
  },
  Strict,
);
export type VaultAuditRequest = Static<typeof VaultAuditRequest>;

/** Revokes the credential of a caller that presented it to this gateway (after an anomaly). */
export const VaultRevokeRequest = Type.Object(
  {
    session: SessionTicket,
    reason: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9_:.-]+$' }),
  },
  Strict,
);
export type VaultRevokeRequest = Static<typeof VaultRevokeRequest>;

/** Whether any candidate is a vault value (within the gateway's scope); the caller's session decides what a match means. */
export const VaultHoldsRequest = Type.Object(
  {
    session: SessionTicket,
    candidates: Type.Array(Text(4096), { minItems: 1, maxItems: 10_000 }),
    request_id: Type.Optional(Text(128)),
    trace_id: Type.Optional(Text(128)),
    client_address: Type.Optional(Address),
  },
  Strict,
);
export type VaultHoldsRequest = Static<typeof VaultHoldsRequest>;

/** For open streams: whether each caller's credential is still valid. */
export const VaultLiveRequest = Type.Object(
  { sessions: Type.Array(SessionTicket, { minItems: 1, maxItems: 512 }) },
  Strict,
);
export type VaultLiveRequest = Static<typeof VaultLiveRequest>;

// ---- answers of the vault service ----
// Each is one object (no unions: the serializer stays a straight line); `error` is the caller's
// outcome told to the gateway in a 200 answer, and then the other fields are absent.

const CallerOutcome = {
  error: Type.Optional(
    Type.Object({
      code: Type.String(),
      message: Type.String(),
      details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }),
  ),
};

/** The caller's Cedar principal, as the vault's contract has it (src/contract/identity.ts), passed through whole. */
const IdentityOut = Type.Unsafe<Identity>({ type: 'object', additionalProperties: true });

const CallerOut = Type.Object({
  kind: Type.Union([Type.Literal('token'), Type.Literal('virtual_key'), Type.Literal('workload')]),
  id: Type.String(),
  display_name: Type.String(),
  spiffe_id: Type.Optional(Type.String()),
  classification: Type.Optional(Type.String()),
});

const VaultAuthenticateResponse = Type.Object({
  caller: Type.Optional(CallerOut),
  identity: Type.Optional(IdentityOut),
  /** The sealed session ticket, passed back with every question about the call. */
  session: Type.Optional(Type.String()),
  ...CallerOutcome,
});
const VaultAuthorizeResponse = Type.Object({
  decisions: Type.Optional(Type.Array(Type.Object({ allowed: Type.Boolean(), reason: Type.String() }))),
  ...CallerOutcome,
});
const VaultHoldsResponse = Type.Object({
  found: Type.Optional(Type.Boolean()),
  compromised: Type.Optional(Type.Boolean()),
  ...CallerOutcome,
});
const VaultAdmitResponse = Type.Object({
  /** Absent when nothing was reserved (no budget applies). */
  reservation: Type.Optional(Type.String()),
  ...CallerOutcome,
});
const VaultSettleResponse = Type.Object({ settled: Type.Boolean() });
const VaultAuditResponse = Type.Object({ recorded: Type.Boolean() });
const VaultRevokeResponse = Type.Object({ revoked: Type.Boolean() });
const VaultLiveResponse = Type.Object({ live: Type.Array(Type.Boolean()) });

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
export const GatewayKeyCreate = op<KeyCreateRequest>()('gateway.key.create', KeyCreateResponse);
export const GatewayKeyList = op<{ include_inactive?: boolean }>()('gateway.key.list', KeyListResponse);
export const GatewayKeyRead = op<{ id: string }>()('gateway.key.read', KeyResponse);
export const GatewayKeyRevoke = op<{ id: string }>()('gateway.key.revoke', KeyRevokeResponse);
export const GatewayKeyUpdate = op<{ id: string } & KeyUpdateRequest>()('gateway.key.update', KeyResponse);
export const GatewayVaultAuthenticate = op<VaultAuthenticateRequest>()(
  'gateway.vault.authenticate',
  VaultAuthenticateResponse,
);
export const GatewayVaultAuthorize = op<VaultAuthorizeRequest>()(
  'gateway.vault.authorize',
  VaultAuthorizeResponse,
);
export const GatewayVaultHolds = op<VaultHoldsRequest>()('gateway.vault.holds', VaultHoldsResponse);
export const GatewayVaultAdmit = op<VaultAdmitRequest>()('gateway.vault.admit', VaultAdmitResponse);
export const GatewayVaultSettle = op<VaultSettleRequest>()('gateway.vault.settle', VaultSettleResponse);
export const GatewayVaultAudit = op<VaultAuditRequest>()('gateway.vault.audit', VaultAuditResponse);
export const GatewayVaultRevoke = op<VaultRevokeRequest>()('gateway.vault.revoke', VaultRevokeResponse);
export const GatewayVaultLive = op<VaultLiveRequest>()('gateway.vault.live', VaultLiveResponse);
