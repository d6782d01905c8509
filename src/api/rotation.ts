import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { MAX_SECRET_VALUE_BYTES } from './v1.ts';

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

export interface SecretRotateResponse {
  name: string;
  /** The new current version. */
  version: number;
  previous_version: number;
  created_at: string;
  source: 'rotation';
  minted_by: 'adapter' | 'operator';
  adapter: string | null;
  /** Until when the previous key stays valid (the grace period); then it is deleted or marked superseded. */
  old_key_valid_until: string;
}

/** GET /v1/secrets/{project}/{env}/{name}/rotation */
export interface RotationStatusResponse {
  name: string;
  rotation: { interval: number; grace: number; adapter?: string; options?: Record<string, string> } | null;
  current_version: number;
  last_rotated_at: string | null;
  next_rotation_at: string | null;
  last_rotation_error: string | null;
  consecutive_failures: number;
  pending_revocations: {
    version: number;
    revoke_at: string;
    deletes_provider_key: boolean;
    attempts: number;
    last_error: string | null;
  }[];
  superseded: { version: number; at: string; provider_key_deleted: boolean }[];
}

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
export const SecretRotate = op()('secret.rotate');
export const SecretRotationStatus = op()('secret.rotation-status');
