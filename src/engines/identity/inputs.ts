import { createHash } from 'node:crypto';
import type { Resource } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import { parseDuration } from '../../lib/duration.ts';
import { parseSpiffeId, type SpiffeId } from '../../spiffe/index.ts';

/** Hex SHA-256: the storage key of a SPIFFE ID or a join token (neither is stored as a path). */
export const sha = (s: string | Uint8Array) => createHash('sha256').update(s).digest('hex');

export const bad = (code: 'invalid_value' | 'invalid_csr' | 'invalid_svid', message: string) =>
  new StrongroomError(code, message);

/** ISO 8601 form of a time in ms. */
export const isoTime = (ms: number) => new Date(ms).toISOString();

/** A workload SPIFFE ID (not a bare trust domain); `what` names the input in the refusal. */
export function spiffeIdOf(text: string, what = 'spiffe_id'): SpiffeId {
  try {
    const id = parseSpiffeId(text);
    if (id.path === '') throw bad('invalid_value', `${what}: ${text} names a trust domain, not a workload`);
    return id;
  } catch (err) {
    if (err instanceof StrongroomError) throw err;
    throw bad('invalid_value', `${what}: ${(err as Error).message}`);
  }
}

/** A lifetime in seconds from `v` (a duration or seconds), `fallback` when absent, refused outside 1..max. */
export function ttlOf(v: string | number | undefined, fallback: number, max: number, what: string): number {
  if (v === undefined) return fallback;
  let s: number;
  try {
    s = parseDuration(v);
  } catch (err) {
    throw bad('invalid_value', `${what}: ${(err as Error).message}`);
  }
  if (s < 1 || s > max) throw bad('invalid_value', `${what} must be between 1 s and ${max} s`);
  return s;
}

/** The policy resource of an operation on a SPIFFE ID. */
export const identityResource = (id: string, issuance = false): Resource => {
  const m = /^spiffe:\/\/([^/]+)(\/.*)?$/.exec(id);
  return {
    type: 'Identity',
    id,
    // issuance is bound by registrations (checked by the handler), not by token scopes
    attrs: {
      trust_domain: m?.[1] ?? '',
      path: m?.[2] ?? '',
      ...(issuance ? { entitlement_checked: true } : {}),
    },
  };
};

/** The policy resource of the identity engine as a whole (CA, federation, listings). */
export const identitySystem = (): Resource => ({ type: 'System', id: 'identity' });

/** A workload SPIFFE ID of this server's trust domain (the only ones it registers and issues). */
export function ownSpiffeId(text: string, trustDomain: string): SpiffeId {
  const id = spiffeIdOf(text);
  if (id.trustDomain !== trustDomain) {
    throw bad(
      'invalid_value',
      `spiffe_id: this server's trust domain is ${trustDomain}, not ${id.trustDomain}`,
    );
  }
  return id;
}
