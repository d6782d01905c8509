import type * as api from '../api/rotation.ts';
import type { SecretRotateRequest } from '../api/rotation.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import type { Call } from './auth.ts';

const seg = (s: string) => encodeURIComponent(s);

/**
 * Rotates a secret: with `value`, the operator's new key becomes current; without, the
 * secret's provider adapter mints one. The previous key stays valid through the grace period.
 */
export function rotateSecret(
  call: Call,
  project: string,
  env: string,
  name: string,
  body: SecretRotateRequest = {},
): Promise<Out<typeof api.SecretRotate>> {
  return call<Out<typeof api.SecretRotate>>(
    'POST',
    `/v1/secrets/${seg(project)}/${seg(env)}/${seg(name)}/rotate`,
    body,
  );
}

/** Rotation schedule, failures, and old keys waiting for the end of their grace period. */
export function rotationStatus(
  call: Call,
  project: string,
  env: string,
  name: string,
): Promise<Out<typeof api.SecretRotationStatus>> {
  return call<Out<typeof api.SecretRotationStatus>>(
    'GET',
    `/v1/secrets/${seg(project)}/${seg(env)}/${seg(name)}/rotation`,
  );
}
