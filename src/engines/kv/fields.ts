import { StrongroomError } from '../../errors/errors.ts';
import { parseDuration } from '../../lib/duration.ts';
import { PROVIDERS, provider as providerInfo } from '../provider-catalog.ts';
import type { SecretFields, SecretFieldsInput, SecretRecord } from './records.ts';

/** A secret's fields besides its value (provider, owner, expiry, rotation, tags): checked in, shown out. */

/** Checks and normalises the optional fields of a write. */
export function fieldsFrom(i: SecretFieldsInput): Partial<SecretFields> {
  const out: Partial<SecretFields> = {};
  if (i.provider !== undefined) {
    if (i.provider !== null && !providerInfo(i.provider)) {
      throw new StrongroomError(
        'validation_failed',
        `unknown provider ${JSON.stringify(i.provider)}; known providers: ${PROVIDERS.map((p) => p.id).join(', ')}`,
      );
    }
    out.provider = i.provider;
  }
  if (i.owner !== undefined) out.owner = i.owner;
  if (i.expires_at !== undefined) {
    if (i.expires_at !== null && Number.isNaN(Date.parse(i.expires_at))) {
      throw new StrongroomError(
        'validation_failed',
        'expires_at must be a date and time like 2027-01-31T00:00:00Z',
      );
    }
    out.expires_at = i.expires_at === null ? null : new Date(i.expires_at).toISOString();
  }
  if (i.rotation !== undefined) {
    if (i.rotation === null) out.rotation = null;
    else {
      let interval: number;
      let grace: number;
      try {
        interval = parseDuration(i.rotation.interval);
        grace = parseDuration(i.rotation.grace ?? 0);
      } catch (err) {
        throw new StrongroomError('validation_failed', `rotation: ${(err as Error).message}`);
      }
      if (interval < 60)
        throw new StrongroomError('validation_failed', 'rotation.interval must be at least 1 minute');
      if (grace >= interval)
        throw new StrongroomError(
          'validation_failed',
          'rotation.grace must be shorter than rotation.interval',
        );
      out.rotation = {
        interval,
        grace,
        ...(i.rotation.adapter ? { adapter: i.rotation.adapter } : {}),
        ...(i.rotation.options ? { options: { ...i.rotation.options } } : {}),
      };
    }
  }
  if (i.tags !== undefined) out.tags = i.tags === null ? [] : [...new Set(i.tags)].sort();
  return out;
}

/** The fields of a secret a reader sees besides its value and versions. */
export function publicFields(rec: Readonly<SecretRecord>) {
  return {
    provider: rec.provider ?? null,
    owner: rec.owner ?? null,
    expires_at: rec.expires_at ?? null,
    rotation: rec.rotation ?? null,
    tags: rec.tags ?? [],
    last_rotated_at: rec.last_rotated_at ?? null,
    // present only while a rotation is failing (docs/rotation.md)
    ...(rec.last_rotation_error
      ? {
          last_rotation_error: rec.last_rotation_error,
          next_rotation_attempt_at: rec.next_rotation_attempt_at ?? null,
        }
      : {}),
  };
}
