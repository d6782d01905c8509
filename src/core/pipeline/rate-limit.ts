import type { Owner } from '../../contract/identity.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { createRateLimiter } from '../../lib/ratelimit.ts';

/**
 * The pipeline's rate-limit step: requests per second (and burst) per
 * principal, counted against its owner (one app, one user, one standalone
 * token and its descendants, one workload), so minting child tokens or
 * logging in again buys no more requests. Root-policy tokens are exempt (the
 * authentication step decides that).
 */
export interface RateLimitStep {
  /** Counts one request for `owner`; throws `rate_limited` (with `details.retry_after`) when it is over. */
  take(owner: Readonly<Owner>): void;
  /** Counts one refused request (an operation outside the limit when allowed: refused calls still count). */
  takeRefused(owner: Readonly<Owner>): void;
}

const NOUNS: Readonly<Record<Owner['type'], string>> = {
  root: 'token',
  user: 'user',
  app: 'application',
  token: 'token',
  workload: 'workload',
};

/** Whom the limit counts a principal against. */
export const limitSubject = (owner: Readonly<Owner>): string => `${owner.type}:${owner.id}`;

/** Undefined when no limit is configured (or a rate of 0): nothing is counted. */
export function rateLimitStep(
  limits: { requests_per_second: number; burst: number } | undefined,
  clock: Clock,
): RateLimitStep | undefined {
  if (!limits || limits.requests_per_second <= 0) return undefined;
  const limiter = createRateLimiter({
    rate: limits.requests_per_second,
    burst: limits.burst,
    now: () => clock.now(),
  });
  const take = (owner: Readonly<Owner>, message: (wait: number) => string) => {
    const wait = limiter.take(limitSubject(owner));
    if (wait > 0) {
      throw new StrongroomError('rate_limited', message(wait), { details: { retry_after: wait } });
    }
  };
  return {
    take: (owner) =>
      take(owner, (wait) => `too many requests for this ${NOUNS[owner.type]}; retry in ${wait} s`),
    takeRefused: (owner) => take(owner, (wait) => `too many refused requests; retry in ${wait} s`),
  };
}
