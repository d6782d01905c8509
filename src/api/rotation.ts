import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso, IsoOrNull, Nullable, StringOrNull } from './response-schemas.ts';
import { MAX_SECRET_VALUE_BYTES, RotationSettingsOut, type SecretParams } from './v1.ts';

/** Wire contract of secret rotation (docs/rotation.md). */
const Strict = { additionalProperties: false } as const;

/** POST /v1/secrets/{project}/{env}/{name}/rotate */
export const SecretRotateRequest = Type.Object(
  {
    /** The operator's new key; absent: the secret's rotation adapter mints one. */
    value: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_SECRET_VALUE_BYTES })),
    /** Store a value that does not look like the provider's key format. */
    force: Type.Optional(Type.Boolean()),
  },
  Strict,
);
export type SecretRotateRequest = Static<typeof SecretRotateRequest>;

// ---- responses ----
// Schemas of successful response bodies: the server serializes each body with its schema (a field the
// schema does not name is never sent), /v1/openapi.json documents them, and the SDK's types are theirs.

const SecretRotateResponseSchema = Type.Object({
  name: Type.String(),
  /** The new current version. */
  version: Type.Integer(),
  previous_version: Type.Integer(),
  created_at: Iso,
  source: Type.Literal('rotation'),
  /** 'adapter': minted by the provider adapter; 'operator': the value given. */
  minted_by: Type.Union([Type.Literal('adapter'), Type.Literal('operator')]),
  adapter: StringOrNull,
  /** Until when the previous key stays valid (the grace period); then it is deleted or marked superseded. */
  old_key_valid_until: Iso,
});
export type SecretRotateResponse = Static<typeof SecretRotateResponseSchema>;

/** GET /v1/secrets/{project}/{env}/{name}/rotation */
const RotationStatusResponseSchema = Type.Object({
  name: Type.String(),
  rotation: Nullable(RotationSettingsOut),
  current_version: Type.Integer(),
  last_rotated_at: IsoOrNull,
  next_rotation_at: IsoOrNull,
  last_rotation_error: StringOrNull,
  consecutive_failures: Type.Integer(),
  /** Old keys waiting for the end of their grace period. */
  pending_revocations: Type.Array(
    Type.Object({
      version: Type.Integer(),
      revoke_at: Iso,
      deletes_provider_key: Type.Boolean(),
      attempts: Type.Integer(),
      last_error: StringOrNull,
    }),
  ),
  /** Old versions past their grace period (the newest 50). */
  superseded: Type.Array(
    Type.Object({ version: Type.Integer(), at: Iso, provider_key_deleted: Type.Boolean() }),
  ),
});

// ---- operations ----
// Each operation of this API, by the object routes, engines, the SDK and the CLI name it with (src/api/op.ts).

type SecretAddress = Static<typeof SecretParams>;

export const SecretRotate = op<SecretAddress & SecretRotateRequest>()(
  'secret.rotate',
  SecretRotateResponseSchema,
);
export const SecretRotationStatus = op<SecretAddress>()(
  'secret.rotation-status',
  RotationStatusResponseSchema,
);
