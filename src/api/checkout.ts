import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, Nullable } from './response-schemas.ts';
import type { SecretParams } from './v1.ts';

/** Wire contract of check-out / check-in of static secrets (docs/checkout.md). */
const Strict = { additionalProperties: false } as const;
type SecretAddress = Static<typeof SecretParams>;

/** POST /v1/secrets/{project}/{env}/{name}/checkout */
export const CheckoutRequest = Type.Object(
  {
    /** Seconds or 15m, 1h (default 1h, at most 24h; never past your token's end). */
    ttl: Type.Optional(
      Type.Union([
        Type.Integer({ minimum: 1, maximum: 86_400 }),
        Type.String({ minLength: 1, maxLength: 32 }),
      ]),
    ),
    /** One holder at a time (a shared service-account credential): others get 409 until check-in or expiry. */
    exclusive: Type.Optional(Type.Boolean()),
  },
  Strict,
);
export type CheckoutRequest = Static<typeof CheckoutRequest>;

/** POST /v1/secrets/{project}/{env}/{name}/checkin */
export const CheckinRequest = Type.Object(
  { lease_id: Type.String({ minLength: 3, maxLength: 256, pattern: '^[A-Za-z0-9][A-Za-z0-9_./-]*$' }) },
  Strict,
);
export type CheckinRequest = Static<typeof CheckinRequest>;

const CheckoutSchema = Type.Object({
  lease_id: Type.String(),
  lease_duration: Type.Integer(),
  renewable: Type.Boolean(),
  exclusive: Type.Boolean(),
  data: Type.Object({ value: Type.String(), version: Type.Integer() }),
});

const CheckinSchema = Type.Object({ checked_in: Type.Boolean() });

const HolderSchema = Type.Object({
  /** The exclusive holder now, or null. */
  holder: Nullable(Type.Object({ lease_id: Type.String(), expires_at: Iso, yours: Type.Boolean() })),
});

export const SecretCheckout = op<SecretAddress & CheckoutRequest>()('secret.checkout', CheckoutSchema);
export const SecretCheckin = op<SecretAddress & CheckinRequest>()('secret.checkin', CheckinSchema);
export const SecretHolder = op<SecretAddress>()('secret.holder', HolderSchema);
