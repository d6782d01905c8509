import { isIPv6 } from 'node:net';
import type { BarrierStore } from '../barrier/barrier.ts';
import { StrongroomError } from '../errors/errors.ts';
import type { Clock } from '../lib/clock.ts';
import { createRateLimiter, type RateLimiter } from '../lib/ratelimit.ts';

/**
 * Two brakes on password guessing (issue 3, items 2 and 6):
 *
 * - a token bucket per client address, in memory (per server): `per_minute`
 *   login attempts refill a bucket of `burst`;
 * - an account lockout per (normalised) username, kept in the barrier so
 *   every server sharing the storage, and a restarted one, sees it: after
 *   `max_failures` attempts without a success the name is locked for
 *   `lock_seconds`, doubling with each further lockout up to
 *   `max_lock_seconds`. Unknown names lock exactly like real ones, so a lock
 *   says nothing about whether an account exists.
 *
 * An attempt is counted before the password is checked (and forgiven when it
 * succeeds), so N parallel guesses cannot all slip in under the limit.
 */
export interface LoginLimits {
  /** Attempts per minute per client address (0 disables). */
  per_minute: number;
  burst: number;
}

export interface LockoutPolicy {
  max_failures: number;
  lock_seconds: number;
  max_lock_seconds: number;
  /** Failures and past lockouts are forgotten after this long without a failure. */
  forget_seconds: number;
}

export const DEFAULT_USER_LOGIN_LIMITS: LoginLimits = Object.freeze({ per_minute: 10, burst: 10 });
// machines behind one NAT log in together after a deploy; their secrets are 256-bit random, so a looser limit costs nothing
export const DEFAULT_APP_LOGIN_LIMITS: LoginLimits = Object.freeze({ per_minute: 120, burst: 60 });
export const DEFAULT_LOCKOUT: LockoutPolicy = Object.freeze({
  max_failures: 5,
  lock_seconds: 15 * 60,
  max_lock_seconds: 24 * 3600,
  forget_seconds: 24 * 3600,
});

/**
 * The key an address is limited under: IPv4 as is (IPv4-mapped IPv6 as its
 * IPv4), IPv6 by its /64, since one host usually holds a whole /64.
 */
export function addressKey(address: string): string {
  const v4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (v4) return v4[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

export interface AddressLimiter {
  /** Takes one attempt for the address; throws `rate_limited` (with Retry-After) when none is left. */
  take(address: string): void;
}

export function createAddressLimiter(limits: LoginLimits, clock: Clock): AddressLimiter {
  const limiter: RateLimiter | undefined =
    limits.per_minute > 0
      ? createRateLimiter({ rate: limits.per_minute / 60, burst: limits.burst, now: () => clock.now() })
      : undefined;
  return {
    take(address) {
      if (!limiter) return;
      const wait = limiter.take(addressKey(address));
      if (wait > 0) {
        throw new StrongroomError(
          'rate_limited',
          `too many login attempts from this address; retry in ${wait} s`,
          { details: { retry_after: wait } },
        );
      }
    },
  };
}

/** What `begin` did, for `forgive`. */
export interface Attempt {
  /** The lock this attempt set (ms since the epoch), or 0. */
  locked_until: number;
}

interface LockState {
  /** Attempts since the last success or lockout (counted before the check). */
  failures: number;
  /** Lockouts so far (each doubles the next one). */
  lockouts: number;
  /** ms since the epoch, or 0. */
  locked_until: number;
  /** ms since the epoch of the last counted attempt. */
  last: number;
}

export interface Lockout {
  /**
   * Counts an attempt for `key` before credentials are checked; throws
   * `account_locked` (with Retry-After) when the key is locked.
   */
  begin(key: string): Promise<Attempt>;
  /** The attempt succeeded: forget the key's failures and lockouts. */
  succeeded(key: string): Promise<void>;
  /**
   * The attempt was neither a success nor a failure (the password was right
   * and a second factor is still to come): uncount it, undoing the lock it
   * set if it was the last allowed one. Only ever subtracts, so it cannot
   * erase attempts made in the meantime.
   */
  forgive(key: string, attempt: Attempt): Promise<void>;
  /** Lifts a lock (an admin reset the password). */
  clear(key: string): Promise<void>;
}

/** A storage-backed lockout; `store` is a barrier view, keys are opaque (HMACs of names). */
export function createLockout(store: BarrierStore, clock: Clock, policy: LockoutPolicy): Lockout {
  const read = async (tx: { get(p: string): Promise<Buffer | undefined> }, key: string) => {
    const raw = await tx.get(key);
    return raw ? (JSON.parse(raw.toString('utf8')) as LockState) : undefined;
  };
  const write = (tx: { put(p: string, v: Uint8Array): Promise<void> }, key: string, s: LockState) =>
    tx.put(key, Buffer.from(JSON.stringify(s)));

  return {
    async begin(key) {
      const locked = await store.transaction(async (tx) => {
        const now = clock.now();
        let s = await read(tx, key);
        if (!s || now - s.last > policy.forget_seconds * 1000) {
          s = { failures: 0, lockouts: 0, locked_until: 0, last: 0 };
        }
        if (s.locked_until > now) return { wait: Math.ceil((s.locked_until - now) / 1000), set: 0 };
        s.failures += 1;
        s.last = now;
        if (s.failures >= policy.max_failures) {
          // this attempt is the last one allowed; the lock applies to the next
          const seconds = Math.min(
            policy.max_lock_seconds,
            policy.lock_seconds * 2 ** Math.min(s.lockouts, 20),
          );
          s.lockouts += 1;
          s.failures = 0;
          s.locked_until = now + seconds * 1000;
        }
        await write(tx, key, s);
        return { wait: 0, set: s.failures === 0 ? s.locked_until : 0 };
      });
      if (locked.wait > 0) {
        throw new StrongroomError(
          'account_locked',
          `too many failed logins: this account is locked for ${locked.wait} s; try again later or ask an admin to reset the password`,
          { details: { retry_after: locked.wait } },
        );
      }
      return { locked_until: locked.set };
    },
    async succeeded(key) {
      if (await store.get(key)) await store.delete(key);
    },
    async forgive(key, attempt) {
      await store.transaction(async (tx) => {
        const s = await read(tx, key);
        if (!s) return;
        if (attempt.locked_until !== 0 && s.locked_until === attempt.locked_until) {
          await write(tx, key, {
            ...s,
            lockouts: Math.max(0, s.lockouts - 1),
            locked_until: 0,
            failures: s.failures + policy.max_failures - 1,
          });
        } else if (s.failures > 0) {
          await write(tx, key, { ...s, failures: s.failures - 1 });
        }
      });
    },
    async clear(key) {
      await store.delete(key);
    },
  };
}
